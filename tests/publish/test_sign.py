"""Signing, attesting and verifying with the real cosign (2.5, key pair, offline) on the real registries: what
cosign accepts of ours and we of cosign's, every way a signature can fail to prove anything, and archives."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import edgebench as eb
from edgebench.publish.registry import RegistryClient
from edgebench.publish.signing import PREDICATES, sign_and_attest, verify

from ..conftest import SIGNING_PASSWORD as PASSWORD
from ..helpers import derived_image, tool
from .test_publish import CutAt, Proxy

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cosign():
    return tool("cosign", "scripts/tools.sh install fetches a pinned cosign 2.5")


@pytest.fixture(scope="module")
def keys(signing_keys):
    return signing_keys


@pytest.fixture
def password(cosign_password):
    pass


@pytest.fixture(scope="module")
def tested(engine, built, image_store):
    assert eb.test_image(built, store=image_store, client=engine).passed
    return built


@pytest.fixture(scope="module")
def signed(engine, tested, image_store, registries, keys):
    os.environ["COSIGN_PASSWORD"] = PASSWORD
    try:
        result = eb.publish(tested, f"{registries['open']}/signed/digits-rf", ["1"], sign=keys["private"],
                            store=image_store, client=engine)
    finally:
        del os.environ["COSIGN_PASSWORD"]
    return result


def cli_cosign(cosign, *args):
    return subprocess.run([cosign, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_cosign_accepts_what_edgebench_signed(cosign, signed, keys):
    reference = f"{signed.destination}@{signed.digest}"
    assert signed.signed and signed.attestations[signed.digest] == ["sbom", "image-test", "parity"]
    done = cli_cosign(cosign, "verify", "--key", keys["public"], "--insecure-ignore-tlog", reference)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == signed.digest
    done = cli_cosign(cosign, "verify-attestation", "--key", keys["public"], "--insecure-ignore-tlog", "--type",
                      "cyclonedx", reference)
    assert done.returncode == 0, done.stderr
    done = cli_cosign(cosign, "verify-attestation", "--key", keys["public"], "--insecure-ignore-tlog", "--type",
                      PREDICATES["image-test"], reference)
    assert done.returncode == 0, done.stderr
    # stored the way cosign stores them without the referrers API: tags next to the image
    tags = RegistryClient(signed.destination.split("/")[0]).tags("signed/digits-rf")
    hexdigest = signed.digest.split(":")[1]
    assert {f"sha256-{hexdigest}.sig", f"sha256-{hexdigest}.att"} <= set(tags)


def test_edgebench_verifies_every_attestation_and_the_sbom_model_hash(signed, keys, image_store):
    card = image_store.get("digits-rf:1")
    report = verify(f"{signed.destination}@{signed.digest}", keys["public"], ["sbom", "image-test", "parity"],
                    expected_sha256=card.sha256)
    assert report.passed, report.summary()
    assert [c.name for c in report.checks] == ["signature", "sbom", "image-test", "parity"]
    assert report.checks[2].message == "passed on linux/amd64"
    other = verify(f"{signed.destination}@{signed.digest}", keys["public"], ["sbom"], expected_sha256="ab" * 32)
    assert not other.passed and "the SBOM's model hash" in other.failures[0].message
    assert "Verification" in report._repr_html_()


def test_edgebench_accepts_what_cosign_signed(cosign, engine, tested, image_store, registries, keys, tmp_path):
    plain = eb.publish(tested, f"{registries['open']}/by-cosign/digits-rf", ["1"], store=image_store, client=engine)
    reference = f"{plain.destination}@{plain.digest}"
    env = {**os.environ, "COSIGN_PASSWORD": PASSWORD}
    done = subprocess.run([cosign, "sign", "--key", keys["private"], "--tlog-upload=false", "--yes", reference],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []}))
    done = subprocess.run([cosign, "attest", "--key", keys["private"], "--tlog-upload=false", "--yes", "--type",
                           "cyclonedx", "--predicate", str(sbom), reference], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    report = verify(reference, keys["public"], ["sbom"])
    assert report.passed, report.summary()
    missing = verify(reference, keys["public"], ["sbom", "image-test"])
    assert not missing.passed and missing.failures[0].name == "image-test"
    assert missing.failures[0].message.startswith("missing or not signed by this key")


def test_another_key_a_tampered_tag_and_a_tag_instead_of_a_digest(signed, keys, tmp_path, engine, tested,
                                                                   image_store, registries, password):
    other = eb.generate_keys(tmp_path / "other")
    report = verify(f"{signed.destination}@{signed.digest}", other["public"], ["sbom"])
    assert not report.passed and report.checks[0].name == "signature"
    assert "no signature by this key" in report.checks[0].message or "signature" in report.checks[0].message
    # the same tag moved to another image: its digest carries no signature
    tag = derived_image(engine, tested.id, "edgebench-test/tampered:1", 'LABEL tampered="yes"')
    try:
        moved = eb.publish(tag, signed.destination, ["1"], force=True, store=image_store, client=engine)
    finally:
        engine.images.remove(tag, force=True)
    assert RegistryClient(registries["open"]).manifest("signed/digits-rf", "1")[0] == moved.digest
    tampered = verify(f"{signed.destination}@{moved.digest}", keys["public"], ["sbom"])
    assert not tampered.passed and tampered.checks[0].name == "signature"
    with pytest.raises(eb.InvalidInputError, match="is not a reference by digest: sign and verify"):
        verify(f"{signed.destination}:1", keys["public"])
    with pytest.raises(eb.InvalidInputError, match="is not a reference by digest"):
        eb.sign(f"{signed.destination}:1", keys["private"], store=image_store, client=engine)


def test_an_attestation_whose_subject_is_another_digest_is_refused(signed, keys, engine, tested, image_store,
                                                                    registries, password):
    registry, repository = registries["open"], "signed/digits-rf"
    tag = derived_image(engine, tested.id, "edgebench-test/other-subject:1", 'LABEL other="yes"')
    try:
        other = eb.publish(tag, f"{registry}/{repository}", ["other"], force=True, store=image_store, client=engine)
    finally:
        engine.images.remove(tag, force=True)
    sign_and_attest(f"{registry}/{repository}@{other.digest}", keys["private"], {})  # signed, no attestation
    client = RegistryClient(registry)
    status, headers, body = client.request(f"/v2/{repository}/manifests/sha256-{signed.digest.split(':')[1]}.att",
                                           ["application/vnd.oci.image.manifest.v1+json"])
    assert status == 200
    client.put_manifest(repository, f"sha256-{other.digest.split(':')[1]}.att", body,
                        headers["content-type"].split(";")[0])  # the first image's attestations, under the second
    report = verify(f"{registry}/{repository}@{other.digest}", keys["public"], ["image-test"])
    assert not report.passed
    assert report.failures[0].message == f"signed, but its subject is another digest, not {other.digest}"


def test_wrong_password_unsafe_key_and_missing_cosign_sign_nothing(engine, tested, image_store, registries, keys,
                                                                   monkeypatch, tmp_path):
    destination = f"{registries['open']}/refused/digits-rf"
    monkeypatch.setenv("COSIGN_PASSWORD", "not the password")
    with pytest.raises(eb.SigningError) as err:
        eb.publish(tested, destination, ["1"], sign=keys["private"], store=image_store, client=engine)
    assert "the key's password is wrong (set COSIGN_PASSWORD" in str(err.value)
    assert "was pushed, but signing it failed" in str(err.value) and "It is not recorded as signed" in str(err.value)
    run = image_store.runs("digits-rf", step="publish")[0]
    assert run.status == "failed" and not (run.outputs or {}).get("signed")
    assert not [t for t in RegistryClient(registries["open"]).tags("refused/digits-rf") if t.endswith(".sig")]

    loose = tmp_path / "loose.key"
    loose.write_bytes(Path(keys["private"]).read_bytes())
    loose.chmod(0o644)
    refused = r"loose.key is readable by others \(mode 644\): refusing to use it; run `chmod 600"
    with pytest.raises(eb.SigningError, match=refused):
        eb.publish(tested, f"{registries['open']}/loose/digits-rf", sign=loose, store=image_store, client=engine)
    assert RegistryClient(registries["open"]).tags("loose/digits-rf") == []  # refused before the push

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(eb.SigningError, match="cosign is not installed: scripts/tools.sh install"):
        verify(f"{destination}@sha256:{'0' * 64}", keys["public"])


def test_a_registry_lost_while_signing_records_nothing_as_signed(engine, tested, image_store, registries, keys,
                                                                 password):
    proxy = Proxy(registries["open"], cut_after_bytes=None)
    try:
        with pytest.raises(eb.SigningError) as err:
            eb.publish(tested, f"127.0.0.1:{proxy.port}/cut-signing/digits-rf", ["1"], sign=keys["private"],
                       store=image_store, client=engine, progress=CutAt(proxy, "signing"))
    finally:
        proxy.close()
    assert "was pushed, but signing it failed" in str(err.value)
    assert image_store.runs("digits-rf", step="publish")[0].status == "failed"


def test_an_sbom_that_names_another_model_is_not_signed(engine, tested, image_store, registries, keys, password):
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": [],
            "metadata": {"component": {"type": "machine-learning-model", "name": "digits-rf",
                                       "hashes": [{"alg": "SHA-256", "content": "ab" * 32}]}}}
    tag = derived_image(engine, tested.id, "edgebench-test/wrong-sbom:1", "COPY sbom.cdx.json /opt/edgebench/model/",
                        files={"sbom.cdx.json": json.dumps(sbom).encode()})
    try:
        with pytest.raises(eb.SigningError, match=r"names model sha256 abababababab\.\.\., but digits-rf:1 is"):
            eb.publish(tag, f"{registries['open']}/wrong-sbom/digits-rf", force=True, sign=keys["private"],
                       store=image_store, client=engine)
    finally:
        engine.images.remove(tag, force=True)


def test_a_signed_archive_verifies_offline_and_refuses_a_removed_signature(engine, tested, image_store, registries,
                                                                           keys, password, tmp_path):
    archive = tmp_path / "site.tar"
    result = eb.publish(tested, f"oci-archive:{archive}", ["1"], sign=keys["private"],
                        via=f"{registries['open']}/hub/digits-rf", store=image_store, client=engine)
    assert result.signed
    done = subprocess.run([sys.executable, "-m", "edgebench", "load", str(archive), "--verify", keys["public"],
                           "--to", f"{registries['open']}/site-7/digits-rf", "--json"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verification"]["passed"] is True
    assert verify(f"{registries['open']}/site-7/digits-rf@{result.digest}", keys["public"]).passed
    # the same archive without its signature: refused, nothing loaded
    stripped = tmp_path / "stripped.tar"
    with tarfile.open(archive) as source, tarfile.open(stripped, "w") as target:
        index = json.load(source.extractfile("index.json"))
        index["manifests"] = [m for m in index["manifests"] if not m["annotations"]["kind"].endswith("/sigs")]
        for member in source.getmembers():
            if member.name == "index.json":
                data = json.dumps(index).encode()
                member.size = len(data)
                target.addfile(member, io.BytesIO(data))
            else:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    done = subprocess.run([sys.executable, "-m", "edgebench", "load", str(stripped), "--verify", keys["public"],
                           "--to", f"{registries['open']}/site-8/digits-rf"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "failed verification, nothing was loaded" in done.stderr
    assert RegistryClient(registries["open"]).tags("site-8/digits-rf") == []
    with pytest.raises(eb.InvalidInputError, match="a signed archive needs a registry to sign in"):
        eb.publish(tested, f"oci-archive:{tmp_path / 'x.tar'}", sign=keys["private"], store=image_store,
                   client=engine)


def test_no_secret_in_the_store_or_the_logs(signed, image_store, keys):
    private = Path(keys["private"]).read_bytes()
    for path in image_store.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and private not in data, path
