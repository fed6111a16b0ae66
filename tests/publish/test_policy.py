"""The site's verification configuration: the node policy read by containers/image's own parser (skopeo) and the
Kyverno policy checked against Kyverno's ClusterPolicy CRD schema (vendored in tests/schemas/)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

import edgebench as eb
from edgebench.publish.policy import trust_policy

from ..helpers import strict_crd_schema, tool

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


@pytest.fixture
def public_key(tmp_path):
    key = tmp_path / "cosign.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n")
    return key


def test_files_for_the_site(public_key, tmp_path):
    written = trust_policy(public_key, ["127.0.0.1:5000/edge/digits-rf", "registry.example.com/team"],
                           tmp_path / "site", strict=True)
    assert sorted(p.relative_to(tmp_path / "site").as_posix() for p in written) == [
        "containers-policy.json", "keys/edgebench.pub", "kyverno-verify-images.yaml", "registries.d/edgebench.yaml"]
    policy = json.loads((tmp_path / "site" / "containers-policy.json").read_text())
    assert policy["default"] == [{"type": "reject"}]
    assert policy["transports"]["docker"]["127.0.0.1:5000/edge/digits-rf"][0]["type"] == "sigstoreSigned"


def test_kyverno_policy_matches_the_clusterpolicy_crd(public_key, tmp_path):
    trust_policy(public_key, ["127.0.0.1:5000/edge/digits-rf"], tmp_path)
    document = yaml.safe_load((tmp_path / "kyverno-verify-images.yaml").read_text())
    schema = strict_crd_schema(json.loads((SCHEMAS / "kyverno-clusterpolicy-v1.schema.json").read_text()))
    jsonschema.validate(document, schema)
    document["spec"]["rules"][0]["verifyImages"][0]["mutateDigests"] = True  # a typo Kyverno would prune
    with pytest.raises(jsonschema.ValidationError, match="mutateDigests"):
        jsonschema.validate(document, schema)


@pytest.mark.docker
def test_containers_image_parses_the_node_policy(public_key, tmp_path, registries):
    skopeo = tool("skopeo", "scripts/services.sh installs Debian's skopeo")
    repository = f"{registries['open']}/edge/policy"
    trust_policy(public_key, [repository], tmp_path)

    def copy(policy):
        return subprocess.run([skopeo, "--policy", str(policy), "--registries.d", str(tmp_path / "registries.d"),
                               "copy", "--src-tls-verify=false", f"docker://{repository}:nothing",
                               f"dir:{tmp_path / 'out'}"], capture_output=True, text=True, timeout=120)

    done = copy(tmp_path / "containers-policy.json")
    # containers/image loaded the policy and reached the sigstore check (which Debian's build leaves out, or the
    # registry answers for the missing image): the policy file itself is valid
    assert "Error loading trust policy" not in done.stderr, done.stderr
    broken = tmp_path / "broken.json"
    data = json.loads((tmp_path / "containers-policy.json").read_text())
    data["transports"]["docker"][repository][0]["keyPaths"] = data["transports"]["docker"][repository][0].pop(
        "keyPath")
    broken.write_text(json.dumps(data))
    assert "Error loading trust policy" in copy(broken).stderr


def test_a_private_key_or_no_repository_is_refused(tmp_path, public_key):
    private = tmp_path / "cosign.key"
    private.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n"
                       "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    with pytest.raises(eb.InvalidInputError, match="is not a PEM public key .* never give a site the private key"):
        trust_policy(private, ["127.0.0.1:5000/edge/x"], tmp_path / "out")
    with pytest.raises(eb.InvalidInputError, match="name at least one REGISTRY/REPOSITORY"):
        trust_policy(public_key, [], tmp_path / "out")
    with pytest.raises(eb.InvalidInputError, match="public key not found"):
        trust_policy(tmp_path / "missing.pub", ["127.0.0.1:5000/edge/x"], tmp_path / "out")
