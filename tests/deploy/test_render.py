"""Rendering a GitOps repository, checked with the real tools: kustomize builds every site and every `tests/`
overlay (which fail on drift), kubernetes-validate --strict on the core kinds, the CRDs (InferenceService,
ApplicationSet, Fleet) against their vendored schemas, quadlet units through `quadlet -dryrun`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

import edgebench as eb
from edgebench.deploy.render import Release, render
from edgebench.deploy.sites import load_sites, parse_sites

from ..helpers import strict_crd_schema, tool

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
HUB = "registry.example.com/edge/digits-rf"
DIGEST = "sha256:" + "ab" * 32
#: Kubernetes minor versions checked: the one MicroShift 4.18 is built on, and a recent k3s line
KUBERNETES = ("1.31.0", "1.34.0")

SITES = f"""
gitops: {{repo_url: https://git.example.com/edge/gitops.git, revision: main}}
hub: {HUB}
sites:
  - {{name: plant-7, profile: rpi4-1gb, wave: 0, target: kubernetes, namespace: edge,
     mirror: plant-7-registry.example.com:5000/edge/digits-rf, endpoint: "http://127.0.0.1:1"}}
  - {{name: plant-9, profile: jetson-orin-nano, wave: 0, target: kserve, cluster: "https://plant-9.example.com:6443"}}
  - {{name: depot-3, profile: intel-n100, wave: 1, target: quadlet, disconnected: true}}
  - {{name: kiosk-1, profile: rpi5-4gb, wave: 1, target: quadlet}}
"""


def release(digest=DIGEST, peak=96.0):
    return Release("digits-rf:1", "cd" * 32, HUB, digest, {"amd64": "sha256:" + "01" * 32,
                                                           "arm64": "sha256:" + "02" * 32}, peak,
                   {"amd64": 1.5, "arm64": 6.0})


@pytest.fixture
def sites(tmp_path):
    path = tmp_path / "sites.yaml"
    path.write_text(SITES)
    return load_sites(path)


@pytest.fixture
def repo(tmp_path, sites):
    files = render(sites, {s.name: release() for s in sites.sites}, public_key="-----BEGIN PUBLIC KEY-----\nx\n"
                                                                                 "-----END PUBLIC KEY-----\n")
    folder = tmp_path / "gitops"
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder, files


def test_render_is_deterministic_and_pins_digests_never_tags(sites, repo):
    _, files = repo
    again = render(sites, {s.name: release() for s in reversed(sites.sites)},
                   public_key=files["policy/keys/edgebench.pub"])
    assert again == files  # byte for byte, whatever the order
    overlay = yaml.safe_load(files["sites/plant-7/kustomization.yaml"])
    assert overlay["images"] == [{"name": "edgebench.invalid/model",
                                  "newName": "plant-7-registry.example.com:5000/edge/digits-rf", "digest": DIGEST}]
    assert "newTag" not in files["sites/plant-7/kustomization.yaml"]
    unit = files["sites/depot-3/digits-rf.container"]
    assert f"Image={HUB}@{DIGEST}" in unit and "Pull=never" in unit  # disconnected: preloaded by a bundle
    assert "Pull=missing" in files["sites/kiosk-1/digits-rf.container"]
    # a cut-off device spools its drift counts to a volume its user owns; a connected one is scraped instead
    assert "Volume=digits-rf-spool:/var/lib/edgebench/spool:U" in unit
    assert "Environment=EDGEBENCH_SPOOL_DIR=/var/lib/edgebench/spool" in unit
    assert "EDGEBENCH_SPOOL_DIR" not in files["sites/kiosk-1/digits-rf.container"]
    assert sorted(files) == sorted([
        "base/kserve/inferenceservice.yaml", "base/kserve/kustomization.yaml", "base/kserve/kustomizeconfig.yaml",
        "base/kubernetes/deployment.yaml", "base/kubernetes/kustomization.yaml", "base/kubernetes/service.yaml",
        "fleet/argocd-applicationset.yaml", "fleet/flightctl-fleet.yaml", "policy/containers-policy.json",
        "policy/keys/edgebench.pub", "policy/kyverno-verify-images.yaml", "policy/registries.d/edgebench.yaml",
        "sites/depot-3/digits-rf.container", "sites/kiosk-1/digits-rf.container",
        "sites/plant-7/kustomization.yaml", "sites/plant-9/kustomization.yaml", "tests/plant-7/kustomization.yaml",
        "tests/plant-9/kustomization.yaml"])


def kustomize(folder):
    binary = tool("kustomize", "scripts/tools.sh install fetches a pinned kustomize 5.6")
    return subprocess.run([binary, "build", str(folder)], capture_output=True, text=True, timeout=60)


def test_kustomize_builds_each_site_with_its_limits_arch_and_wave_off_the_pod_template(repo):
    folder, _ = repo
    built = kustomize(folder / "sites" / "plant-7")
    assert built.returncode == 0, built.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(built.stdout)}
    deployment = docs["Deployment"]
    assert deployment["metadata"]["labels"]["edgebench.dev/wave"] == "0"
    template = deployment["spec"]["template"]
    assert "edgebench.dev/wave" not in template["metadata"].get("labels", {})  # a wave change restarts nothing
    container = template["spec"]["containers"][0]
    assert container["image"] == f"plant-7-registry.example.com:5000/edge/digits-rf@{DIGEST}"
    assert template["spec"]["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "96Mi"},
                                      "limits": {"cpu": "4", "memory": "128Mi"}}  # 96 MB + 30%, rounded to 16
    assert container["startupProbe"]["failureThreshold"] == 15
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert deployment["metadata"]["namespace"] == "edge"
    kserve = kustomize(folder / "sites" / "plant-9")
    assert kserve.returncode == 0, kserve.stderr
    isvc = yaml.safe_load(kserve.stdout)
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == f"{HUB}@{DIGEST}"  # the kustomizeconfig works
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"


def test_the_tests_overlays_pass_and_fail_when_the_digest_drifts(repo):
    folder, _ = repo
    for site in ("plant-7", "plant-9"):
        done = kustomize(folder / "tests" / site)
        assert done.returncode == 0, done.stderr
    overlay = folder / "sites" / "plant-7" / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace(DIGEST, "sha256:" + "ef" * 32))  # someone edits the pin
    drifted = kustomize(folder / "tests" / "plant-7")
    assert drifted.returncode != 0 and "test" in drifted.stderr.lower()


@pytest.mark.parametrize("version", KUBERNETES)
def test_core_kinds_are_valid_kubernetes_strictly(repo, version, tmp_path):
    folder, _ = repo
    built = kustomize(folder / "sites" / "plant-7")
    manifest = tmp_path / "plant-7.yaml"
    manifest.write_text(built.stdout)
    validate = tool("kubernetes-validate", "pip install -e .[dev] installs it")
    done = subprocess.run([validate, "--strict", "-k", version, str(manifest)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("INFO") == 2  # a Deployment and a Service, each valid


def crd_schema(name):
    return strict_crd_schema(json.loads((SCHEMAS / name).read_text()))


def resolve_discriminators(node):
    """OpenAPI discriminators as JSON Schema: the branch is the one the discriminating property names."""
    if isinstance(node, dict):
        if "discriminator" in node and "oneOf" in node:
            prop, mapping = node["discriminator"]["propertyName"], node["discriminator"]["mapping"]
            node.pop("oneOf")
            node["allOf"] = [*node.get("allOf", []), *({"if": {"properties": {prop: {"const": value}},
                                                              "required": [prop]}, "then": {"$ref": ref}}
                                                       for value, ref in mapping.items())]
        for value in node.values():
            resolve_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            resolve_discriminators(value)
    return node


def test_crds_match_their_schemas(repo):
    folder, files = repo
    isvc = yaml.safe_load(kustomize(folder / "sites" / "plant-9").stdout)
    jsonschema.validate(isvc, crd_schema("kserve-inferenceservice-v1beta1.schema.json"))
    appset = yaml.safe_load(files["fleet/argocd-applicationset.yaml"])
    jsonschema.validate(appset, crd_schema("argocd-applicationset-v1alpha1.schema.json"))
    assert [e["site"] for e in appset["spec"]["generators"][0]["list"]["elements"]] == ["plant-7", "plant-9"]
    assert [s["matchExpressions"][0]["values"] for s in appset["spec"]["strategy"]["rollingSync"]["steps"]] == [["0"]]
    openapi = resolve_discriminators(json.loads((SCHEMAS / "flightctl-v1beta1.openapi.json").read_text()))
    fleet = yaml.safe_load(files["fleet/flightctl-fleet.yaml"])
    jsonschema.validate(fleet, {**openapi, "$ref": "#/components/schemas/Fleet"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**fleet, "spec": {**fleet["spec"], "rolloutPolicy": {"deviceSelection": {
            "strategy": "BatchSequence", "sequence": []}}}}, {**openapi, "$ref": "#/components/schemas/Fleet"})
    assert [b["selector"]["matchLabels"]["edgebench.dev/wave"] for b in
            fleet["spec"]["rolloutPolicy"]["deviceSelection"]["sequence"]] == ["1"]
    broken = json.loads(json.dumps(appset))
    broken["spec"]["strategy"]["rollingSync"]["steps"][0]["maxUpdates"] = "100%"
    with pytest.raises(jsonschema.ValidationError, match="maxUpdates"):
        jsonschema.validate(broken, crd_schema("argocd-applicationset-v1alpha1.schema.json"))


def test_quadlet_accepts_the_units(repo, tmp_path):
    folder, _ = repo
    quadlet = tool("quadlet", "scripts/tools.sh install fetches podman 5.4's quadlet")
    for site in ("depot-3", "kiosk-1"):
        done = subprocess.run([quadlet, "-dryrun", "-v"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "QUADLET_UNIT_DIRS": str(folder / "sites" / site)})
        assert done.returncode == 0 and "ExecStart=" in done.stdout, done.stderr
        assert "--memory=128m" in done.stdout and "--read-only" in done.stdout, done.stdout
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "digits-rf.container").write_text("[Container]\nImage=x\nMemory=128m\n")  # podman 5.4 refuses it
    done = subprocess.run([quadlet, "-dryrun"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "QUADLET_UNIT_DIRS": str(broken)})
    assert done.returncode != 0 or "unsupported key 'Memory'" in done.stderr


def test_a_device_without_room_for_the_measured_peak_is_refused_with_the_figures(sites):
    with pytest.raises(eb.DeployError) as err:
        render(sites, {s.name: release(peak=700.0) for s in sites.sites})
    assert "site 'plant-7' (rpi4-1gb) has 759 MB usable, but digits-rf:1 needs a limit of 912 MB" in str(err.value)
    assert "measured peak 700 MB + 30%" in str(err.value)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["sites"][0].update(profile="rpi9"), "site 'plant-7', field 'profile': unknown device 'rpi9'"),
    (lambda d: d["sites"].append(dict(d["sites"][0])), "site 'plant-7' is listed twice"),
    (lambda d: d["sites"][2].update(wave=3), "waves must run 0, 1, 2... without gaps: no site is in wave 2"),
    (lambda d: d["sites"][1].update(target="nomad"), "site 'plant-9', field 'target' is 'nomad'; use one of"),
    (lambda d: d["sites"][0].update(replicas=2), "site 'plant-7': unknown field 'replicas'"),
    (lambda d: d["sites"][0].update(wave=-1), "site 'plant-7', field 'wave' must be a whole number >= 0"),
    (lambda d: d["sites"][0].update(name="Plant 7"), "name 'Plant 7' must be a DNS label"),
    (lambda d: d.update(hub="no-repository"), "field 'hub'"),
    (lambda d: d.pop("sites"), "field 'sites' must be a non-empty list"),
])
def test_sites_file_errors_name_the_file_site_and_field(change, message):
    data = yaml.safe_load(SITES)
    change(data)
    with pytest.raises(eb.SitesError) as err:
        parse_sites(data, "sites.yaml")
    assert str(err.value).startswith("sites.yaml: ") and message in str(err.value)
