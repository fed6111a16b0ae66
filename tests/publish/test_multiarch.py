"""Multi-arch images on the real engine and registry: per-arch pushes by digest, one OCI index under each tag, the
test gate per architecture, a registry lost before the index, and archives that carry both images."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgebench as eb
from edgebench.publish.registry import RegistryClient

from ..helpers import tool
from .test_publish import CutAt, Proxy

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def both(engine, image_store, built):
    """digits-rf:1 for amd64 and arm64, each tested (arm64 under emulation)."""
    arm64 = eb.build_image("digits-rf:1", "linux/arm64", store=image_store, client=engine)
    for image in (built, arm64):
        report = eb.test_image(image, store=image_store, client=engine)
        assert report.passed, report.summary()
    yield built, arm64
    engine.images.remove(arm64.id, force=True)


def test_two_arches_become_one_index_that_the_engine_resolves_per_platform(engine, image_store, both, registries):
    amd64, arm64 = both
    repository = "edge/multi"
    result = eb.publish([amd64, arm64], f"{registries['open']}/{repository}", ["1", "latest"], store=image_store,
                        client=engine)
    assert result.verified and set(result.platforms) == {"amd64", "arm64"}
    assert result.platforms["arm64"]["image_id"] == arm64.id and result.platforms["amd64"]["image_id"] == amd64.id
    reader = RegistryClient(registries["open"])
    assert sorted(reader.tags(repository)) == ["1", "1-amd64", "1-arm64", "latest"]
    digest, index = reader.manifest(repository, "latest")
    assert digest == result.digest and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]} == {
        a: p["digest"] for a, p in result.platforms.items()}
    for platform, image in (("linux/arm64", arm64), ("linux/amd64", amd64)):  # what `docker pull --platform` does
        pulled = engine.images.pull(f"{registries['open']}/{repository}", tag="1", platform=platform)
        assert pulled.id == image.id, platform
    run = image_store.runs("digits-rf", step="publish")[0]
    assert run.status == "passed" and run.inputs["platforms"] == ["linux/amd64", "linux/arm64"]


def test_an_untested_architecture_is_refused_unless_forced_and_recorded(engine, image_store, both, registries):
    built, arm64 = both
    derived = engine.images.build(fileobj=_dockerfile(arm64.id), custom_context=True, platform="linux/arm64",
                                  tag="edgebench-test/untested:arm64")[0]  # same model, a new, untested image id
    try:
        with pytest.raises(eb.PublishError) as err:
            eb.publish([built, derived.tags[0]], f"{registries['open']}/edge/gate", ["1"], store=image_store,
                       client=engine)
        assert str(err.value).startswith("linux/arm64: image ")
        assert "has not been tested" in str(err.value) and "the index would name an untested architecture" in str(
            err.value)
        assert RegistryClient(registries["open"]).tags("edge/gate") == []
        forced = eb.publish([built, derived.tags[0]], f"{registries['open']}/edge/gate", ["1"], force=True,
                            store=image_store, client=engine)
        assert forced.forced and forced.platforms["arm64"]["test_run"] is None
        assert image_store.runs("digits-rf", step="publish")[0].inputs["force"] is True
    finally:
        engine.images.remove(derived.id, force=True)


def _dockerfile(base):
    import io
    import tarfile

    data = f'FROM {base}\nLABEL org.example.rebuilt="yes"\n'.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_two_images_of_one_arch_or_of_two_models_are_refused(engine, image_store, both, registries, digits):
    from sklearn.tree import DecisionTreeClassifier

    amd64, _ = both
    with pytest.raises(eb.InvalidInputError, match=r"two images for linux/amd64 .*: an index has one image per "):
        eb.publish([amd64, amd64.id], f"{registries['open']}/edge/x", store=image_store, client=engine)
    x, y = digits
    eb.export_model(DecisionTreeClassifier(max_depth=3).fit(x, y), x[:10], "other-model", store=image_store)
    other = eb.build_image("other-model", "linux/arm64", store=image_store, client=engine)
    try:
        with pytest.raises(eb.InvalidInputError) as err:
            eb.publish([amd64, other], f"{registries['open']}/edge/x", store=image_store, client=engine)
        assert "images of different models in one index: digits-rf:1 (amd64), other-model:1 (arm64)" in str(err.value)
    finally:
        engine.images.remove(other.id, force=True)


def test_a_registry_lost_before_the_index_leaves_no_tag_on_a_partial_index(engine, image_store, both, registries):
    proxy = Proxy(registries["open"], cut_after_bytes=None)
    repository = "edge/cut"
    try:
        with pytest.raises(eb.PublishError) as err:
            eb.publish(list(both), f"127.0.0.1:{proxy.port}/{repository}", ["1"], store=image_store, client=engine,
                       progress=CutAt(proxy, "writing the index"))
    finally:
        proxy.close()
    message = str(err.value)
    assert "Pushed so far: amd64 sha256:" in message and "arm64 sha256:" in message
    assert "no tag points at an index that names them" in message
    assert sorted(RegistryClient(registries["open"]).tags(repository)) == ["1-amd64", "1-arm64"]  # no "1"
    assert image_store.runs("digits-rf", step="publish")[0].status == "failed"


def test_an_archive_carries_both_and_load_takes_this_engines_unless_told(engine, image_store, both, tmp_path):
    amd64, arm64 = both
    archive = tmp_path / "site.tar"
    pulled_name = "127.0.0.1:5999/edge/pulled:2-amd64"  # a pull from a registry tags the same image
    engine.images.get(amd64.id).tag(pulled_name)
    try:
        result = eb.publish([amd64, arm64], f"oci-archive:{archive}", store=image_store, client=engine)
    finally:
        engine.images.remove(pulled_name)
    assert set(result.platforms) == {"amd64", "arm64"}
    skopeo = tool("skopeo", "scripts/services.sh installs Debian's skopeo")
    inspected = subprocess.run([skopeo, "inspect", "--raw", f"oci-archive:{archive}"], capture_output=True, text=True)
    assert inspected.returncode == 0, inspected.stderr  # one name in the layout, so skopeo need not be told which
    index = json.loads(inspected.stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    done = subprocess.run([sys.executable, "-m", "edgebench", "load", str(archive), "--json"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["image_id"] == amd64.id and loaded["platform"] == "linux/amd64"
    assert loaded["others"] == ["linux/arm64"]
    other = eb.load_archive(archive, platform="linux/arm64", client=engine)
    assert other.image_id == arm64.id and other.platform == "linux/arm64"
    with pytest.raises(eb.InvalidInputError, match="unknown platform 'linux/riscv64'"):
        eb.load_archive(archive, platform="linux/riscv64", client=engine)


def test_cli_publishes_several_images_to_one_destination(engine, image_store, both, registries):
    amd64, arm64 = both
    done = subprocess.run([sys.executable, "-m", "edgebench", "--home", str(image_store.home), "publish", amd64.tags[0],
                           arm64.tags[0], f"{registries['open']}/edge/cli-multi", "--tag", "7", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["platforms"]) == {"amd64", "arm64"}
