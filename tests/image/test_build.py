"""Building images on the real Docker Engine."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

import edgebench as eb

from ..helpers import derived_image

pytestmark = pytest.mark.docker


def test_built_image_has_labels_user_healthcheck_and_is_recorded(engine, built, image_store):
    card = image_store.get("digits-rf:1")
    assert built.tags[0] == "edgebench/digits-rf:1-amd64" and built.platform == "linux/amd64"
    image = engine.images.get(built.id)
    config = image.attrs["Config"]
    assert image.attrs["Architecture"] == "amd64"
    assert config["User"] == "65532:65532"
    assert "8080/tcp" in config["ExposedPorts"]
    assert "edgebench_serve.health" in " ".join(config["Healthcheck"]["Test"])
    assert built.labels["org.edgebench.model.sha256"] == card.sha256
    assert built.labels["org.opencontainers.image.version"] == "1"
    assert built.size_bytes == image.attrs["Size"] and built.context_digest.startswith("sha256:")
    run = next(r for r in image_store.runs("digits-rf", step="build") if r.outputs.get("id") == built.id)
    assert run.status == "passed" and run.version == 1 and run.log_path
    container = engine.containers.create(built.id)
    try:
        stream, _ = container.get_archive("/opt/edgebench/model/sbom.cdx.json")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            sbom = json.load(tar.extractfile("sbom.cdx.json"))
    finally:
        container.remove()
    assert sbom["metadata"]["component"]["hashes"][0]["content"] == card.sha256
    assert {"onnxruntime", "numpy", "edgebench-serve"} <= {c["name"] for c in sbom["components"]}


@pytest.fixture(scope="module")
def multi_layer_base(engine):
    """A base of several layers, built offline: python:3.11-slim-bookworm has four, ours has one."""
    from edgebench import config

    base = config.base_image().format(arch="amd64")
    tag = derived_image(engine, base, "edgebench-test/base:multi-layer", "COPY one /opt/one", "COPY two /opt/two",
                        "ENV LANG=C.UTF-8", files={"one": b"1", "two": b"2"})
    yield tag
    engine.images.remove(tag, force=True)


@pytest.mark.parametrize("base", ["default", "multi-layer"])
def test_rebuild_after_a_model_only_change_reuses_base_runtime_and_server_layers(engine, image_store, digits,
                                                                                base, multi_layer_base):
    from sklearn.tree import DecisionTreeClassifier

    from edgebench import config

    base_image = multi_layer_base if base == "multi-layer" else config.base_image().format(arch="amd64")
    base_layers = engine.images.get(base_image).attrs["RootFS"]["Layers"]
    x, y = digits
    store = eb.Store(image_store.home.parent / f"rebuild-{base}")
    eb.export_model(DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y), x[:20], "dt", store=store)
    first = eb.build_image("dt", base_image=base_image, store=store, client=engine)
    eb.export_model(DecisionTreeClassifier(max_depth=5, random_state=0).fit(x, y), x[:20], "dt", store=store)
    second = eb.build_image("dt", base_image=base_image, store=store, client=engine)
    try:
        first_layers = engine.images.get(first.id).attrs["RootFS"]["Layers"]
        second_layers = engine.images.get(second.id).attrs["RootFS"]["Layers"]
        n = len(base_layers)
        assert first_layers[:n] == second_layers[:n] == base_layers
        assert len(first_layers) == len(second_layers) == n + 3  # runtime, server, model on top of the base
        assert first_layers[n:n + 2] == second_layers[n:n + 2]  # runtime and server reused
        assert first_layers[n + 2] != second_layers[n + 2]  # only the model layer differs
        assert any("Using cache" in line for line in second.build_log)
    finally:
        for image in (first, second):
            engine.images.remove(image.id, force=True)


def test_arm64_image_builds_on_this_host_with_aarch64_wheels(engine, image_store):
    image = eb.build_image("digits-rf:1", "linux/arm64", store=image_store, client=engine)
    try:
        assert engine.images.get(image.id).attrs["Architecture"] == "arm64"
        container = engine.containers.create(image.id)
        try:
            stream, _ = container.get_archive("/opt/edgebench/runtime/onnxruntime/capi")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                module = next(m for m in tar.getmembers() if "pybind11_state" in m.name)
                assert tar.extractfile(module).read(20)[18] == 183  # ELF machine: AArch64
        finally:
            container.remove()
    finally:
        engine.images.remove(image.id, force=True)


def test_model_not_in_the_store(engine, image_store):
    with pytest.raises(eb.ModelNotFoundError, match="no model named 'ghost'"):
        eb.build_image("ghost", store=image_store, client=engine)


def test_engine_unreachable_says_how_to_set_docker_host(image_store, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(eb.EngineUnavailableError) as err:
        eb.build_image("digits-rf", store=image_store)
    assert f"no Docker Engine answers at unix://{tmp_path}/no-docker.sock" in str(err.value)
    assert "export DOCKER_HOST=" in str(err.value)


def test_missing_base_image(engine, image_store):
    with pytest.raises(eb.BuildError) as err:
        eb.build_image("digits-rf", base_image="localhost:1/edgebench/no-such-base:1", store=image_store, client=engine)
    message = str(err.value)
    assert "base image 'localhost:1/edgebench/no-such-base:1' is not in the engine and could not be pulled" in message
    assert "scripts/build-base-image.sh" in message
    assert image_store.runs("digits-rf", step="build")[0].status == "failed"


def test_base_image_of_the_wrong_architecture(engine, image_store):
    amd64_base = eb.image.context.BuildSpec("linux/amd64").base_image
    with pytest.raises(eb.BuildError, match="is amd64, but the target platform is linux/arm64"):
        eb.build_image("digits-rf", "linux/arm64", base_image=amd64_base, store=image_store, client=engine)


def test_failing_build_step_carries_its_output(engine, image_store):
    with pytest.raises(eb.BuildError) as err:
        eb.build_image("digits-rf", run=["sh -c 'echo boom-from-the-step >&2; exit 3'"], store=image_store,
                       client=engine)
    message = str(err.value)
    assert "image build for linux/amd64 failed" in message
    assert "boom-from-the-step" in message and "returned a non-zero code: 3" in message


def test_invalid_extra_tag(engine, image_store):
    with pytest.raises(eb.InvalidInputError, match="invalid image tag 'Bad Tag'"):
        eb.build_image("digits-rf", tags=["Bad Tag"], store=image_store, client=engine)
