"""The build context: platforms, Dockerfile, labels, runtime wheels for the target. No engine needed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgebench as eb
from edgebench.core.images import parse_platform
from edgebench.image.context import BuildSpec, dockerfile, runtime_dir


@pytest.mark.parametrize(
    ("given", "expected"),
    [("linux/amd64", "linux/amd64"), ("amd64", "linux/amd64"), ("x86_64", "linux/amd64"),
     ("linux/arm64", "linux/arm64"), ("aarch64", "linux/arm64"), ("linux/arm64/v8", "linux/arm64")],
)
def test_platform_aliases(given, expected):
    assert parse_platform(given) == expected


@pytest.mark.parametrize("bad", ["linux/arm/v7", "windows/amd64", "", None, 64])
def test_unknown_platform_names_what_is_supported(bad):
    with pytest.raises(eb.InvalidInputError) as err:
        parse_platform(bad)
    assert "edgebench builds linux/amd64 and linux/arm64" in str(err.value)


def test_context_only_writes_a_dockerfile_with_no_run_step(image_store, tmp_path):
    folder = eb.write_build_context("digits-rf:1", tmp_path / "ctx", "linux/arm64", store=image_store,
                                    base_image="example.org/python:3.11-{arch}")
    text = (folder / "Dockerfile").read_text()
    assert text.splitlines()[1] == "FROM example.org/python:3.11-arm64"
    assert "\nRUN " not in text
    assert "USER 65532:65532" in text and "EXPOSE 8080" in text and "HEALTHCHECK" in text
    assert '"org.edgebench.model"="digits-rf:1"' in text and "org.opencontainers.image.version" in text
    # layers from the least to the most often changed: runtime, server, model
    assert text.index("COPY runtime/") < text.index("COPY server/") < text.index("COPY model/")
    card = json.loads((folder / "model" / "card.json").read_text())  # version 1
    assert card["sha256"] == image_store.get("digits-rf:1").sha256
    assert (folder / "server" / "__main__.py").exists()
    pybind = list((folder / "runtime" / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so"))
    assert pybind and "aarch64" in pybind[0].name
    assert pybind[0].read_bytes()[18] == 183  # ELF e_machine EM_AARCH64
    sbom = json.loads((folder / "model" / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["metadata"]["component"]["hashes"][0]["content"] == card["sha256"]
    versions = {c["name"]: c.get("version") for c in sbom["components"]}
    assert versions["onnxruntime"] == eb.image.context.runtime_pins()["onnxruntime"]
    assert versions["numpy"] == eb.image.context.runtime_pins()["numpy"]
    assert "example.org/python:3.11-arm64" in versions


def test_runtime_is_cached_and_trimmed():
    spec = BuildSpec("linux/amd64", "base")
    site = runtime_dir(spec) / "site-packages"
    assert runtime_dir(spec) / "site-packages" == site
    assert (site / "onnxruntime" / "__init__.py").exists() and (site / "numpy" / "__init__.py").exists()
    assert not list(site.glob("onnxruntime/capi/libonnxruntime.so*"))
    assert not (site / "onnxruntime" / "transformers").exists() and not (site / "bin").exists()


def test_user_run_steps_come_before_the_runtime(image_store):
    card = image_store.get("digits-rf")
    text = dockerfile(card, BuildSpec("linux/amd64", "base", run=("apt-get install -y libgomp1",)), {"a": "b"})
    assert text.index("RUN apt-get install -y libgomp1") < text.index("COPY runtime/")


def test_context_folder_must_be_empty(image_store, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(eb.BuildError, match="is not empty"):
        eb.write_build_context("digits-rf", tmp_path, store=image_store)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_context_only(image_store, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "edgebench", "--home", str(image_store.home), "build", "digits-rf",
         "--context-only", str(tmp_path / "ctx")], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote the build context to" in done.stdout and (tmp_path / "ctx" / "Dockerfile").exists()


def test_cli_unknown_platform_exits_1(image_store, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "edgebench", "--home", str(image_store.home), "build", "digits-rf",
         "--platform", "linux/riscv64", "--context-only", str(tmp_path / "ctx")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1 and "unknown platform 'linux/riscv64'" in done.stderr
