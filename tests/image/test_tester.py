"""Testing images under limits on the real engine: the passing case and every way an image can fail."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import edgebench as eb

from ..helpers import derived_image, kernel_view

pytestmark = pytest.mark.docker


class LookInside:
    """A progress that, while the golden samples replay, reads the running container from the kernel's side."""

    def __init__(self, engine):
        self.engine, self.seen = engine, None

    def step(self, done, total, message):
        if message.startswith("replaying"):
            (container,) = self.engine.containers.list(filters={"label": "org.edgebench.test"})
            self.seen = kernel_view(container)
            self.seen.pop("interfaces")  # the host's: the test container shares the host network

    def log(self, line):
        pass

    def close(self):
        pass


def test_image_passes_under_memory_and_cpu_limits(engine, built, image_store):
    inside = LookInside(engine)
    report = eb.test_image(built, memory="256m", cpuset="0", store=image_store, client=engine, progress=inside)
    assert report.passed, report.summary()
    assert [c.name for c in report.checks] == ["start", "metadata", "golden", "malformed"]
    assert inside.seen == {"uid": 65532, "no_new_privs": True, "capabilities": 0, "cpus": "0",
                           "memory": 256 * 2**20, "memory_and_swap": 256 * 2**20, "root_read_only": True}
    assert report.limits["applied"] == {
        "memory_bytes": 256 * 2**20, "swap": "none", "cpuset": "0", "read_only": True, "no_new_privileges": True,
        "cap_drop": ["ALL"], "network": "host", "user": "65532:65532"}
    assert 0 < report.cold_start_s < 30
    assert report.latency_ms["p50"] > 0 and report.latency_ms["p99"] >= report.latency_ms["p50"]
    assert 10 < report.peak_memory_mb < 256
    assert "ready on" in report.logs
    assert not engine.containers.list(all=True, filters={"label": "org.edgebench.test"})  # always removed
    run = image_store.runs("digits-rf", step="test")[0]
    assert run.status == "passed" and run.outputs["passed"] is True
    assert "image test" in report._repr_html_() or "Image test" in report._repr_html_()


def test_container_that_exits_at_start_reports_its_logs(engine, built, image_store):
    tag = derived_image(engine, built.id, "edgebench-test/broken:exits", "ENV EDGEBENCH_MODEL_DIR=/nowhere")
    try:
        report = eb.test_image(tag, store=image_store, client=engine, timeout=30)
    finally:
        engine.images.remove(tag, force=True)
    assert not report.passed
    (start,) = report.failures
    assert start.name == "start"
    assert "container exited with code 1 before it was ready" in start.message
    assert "cannot load the model from /nowhere" in start.message
    assert "cannot load the model" in report.logs


def test_container_never_ready_times_out_with_logs(engine, built, image_store):
    tag = derived_image(engine, built.id, "edgebench-test/broken:sleeps",
                        'ENTRYPOINT ["python3", "-c", "import time; print(\'sleeping\', flush=True); time.sleep(600)"]')
    try:
        report = eb.test_image(tag, store=image_store, client=engine, timeout=3)
    finally:
        engine.images.remove(tag, force=True)
    assert [c.name for c in report.failures] == ["start"]
    assert "not ready after 3 s" in report.failures[0].message and "sleeping" in report.failures[0].message
    assert not engine.containers.list(all=True, filters={"label": "org.edgebench.test"})


def test_golden_mismatch_names_the_output(engine, built, image_store, digits):
    from sklearn.tree import DecisionTreeClassifier

    x, y = digits
    other = eb.export_model(DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y), x[:5], "other-tree",
                            store=image_store)
    onnx = image_store.model_path(other).read_bytes()
    tag = derived_image(engine, built.id, "edgebench-test/broken:swapped", "COPY model.onnx /opt/edgebench/model/",
                        files={"model.onnx": onnx})
    try:
        report = eb.test_image(tag, store=image_store, client=engine)
    finally:
        engine.images.remove(tag, force=True)
    failed = {c.name: c for c in report.failures}
    assert "golden" in failed
    assert "output 'probabilities' is" in failed["golden"].message
    assert "golden:" in report.summary()


def test_too_little_memory_is_reported_not_raised(engine, built, image_store):
    report = eb.test_image(built, memory="12m", store=image_store, client=engine, timeout=20)
    assert not report.passed
    start, memory = report.failures
    assert start.name == "start" and start.message.startswith(
        "out of memory: the container was killed before it was ready, so the image does not fit in 12m")
    assert memory.name == "memory" and memory.message == "killed for running out of memory (limit 12m)"


def test_unknown_image_and_bad_limits(engine, image_store):
    with pytest.raises(eb.ContainerTestError, match="image 'edgebench/nothing:1' is not in the engine"):
        eb.test_image("edgebench/nothing:1", store=image_store, client=engine)
    with pytest.raises(eb.InvalidInputError, match="memory limit 'lots' is not a size like 512m"):
        eb.test_image("edgebench/nothing:1", memory="lots", store=image_store, client=engine)


@pytest.fixture(scope="module")
def arm64_image(engine, image_store):
    image = eb.build_image("digits-rf:1", "linux/arm64", store=image_store, client=engine)
    yield image
    engine.images.remove(image.id, force=True)


def test_arm64_image_runs_under_emulation_with_every_functional_check(engine, arm64_image, image_store):
    inside = LookInside(engine)
    report = eb.test_image(arm64_image, memory="512m", store=image_store, client=engine, progress=inside)
    assert report.passed, report.summary()
    assert report.emulated and report.platform == "linux/arm64"
    assert [c.name for c in report.checks] == ["start", "metadata", "golden", "malformed"]
    assert inside.seen["memory"] == 512 * 2**20 and inside.seen["root_read_only"] and inside.seen["uid"] == 65532
    # what ARM kernels change, per output: labels exact, probabilities within the card's tolerance
    assert report.output_differences["label"] == 0
    assert 0 <= report.output_differences["probabilities"] <= image_store.get("digits-rf:1").parity.tolerance.atol
    assert 5 < report.emulator_baseline_mb < report.peak_memory_mb < 512
    assert report.summary().startswith("image test passed under emulation (linux/arm64): 4 functional checks")
    assert "emulated, not a board's" in report.summary() and "emulated: says nothing" in report._repr_html_()
    run = image_store.runs("digits-rf", step="test")[0]
    assert run.status == "passed" and run.inputs["emulated"] is True


def test_without_emulation_the_report_says_not_run_and_how_to_enable_it(engine, arm64_image, image_store,
                                                                         without_arm64_emulation):
    report = eb.test_image(arm64_image, store=image_store, client=engine)
    assert not report.passed and [c.name for c in report.checks] == ["emulation"]
    assert report.checks[0].message.startswith("not run: no emulator is registered for arm64 binaries")
    assert "scripts/tools.sh register-arm64" in report.checks[0].message
    assert not engine.containers.list(all=True, filters={"label": "org.edgebench.test"})
    assert image_store.runs("digits-rf", step="test")[0].status == "failed"


def test_cli_test_image_exit_codes(engine, built, image_store):
    base = [sys.executable, "-m", "edgebench", "--home", str(image_store.home), "test-image"]
    done = subprocess.run([*base, built.tags[0], "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"] is True
    done = subprocess.run([*base, "edgebench/nothing:1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "is not in the engine" in done.stderr


def test_cli_serve_runs_the_same_server_locally(image_store, tmp_path):
    from edgebench.image.tester import Http, free_port

    from ..serve.conftest import stop_server

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "edgebench", "--home", str(image_store.home), "serve",
                                "digits-rf:1", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        import time

        card = image_store.get("digits-rf:1")
        deadline = time.monotonic() + 60
        while True:
            try:
                client = Http(port)
                status, answer = client.request("POST", "/v2/models/digits-rf/infer",
                                                json.dumps({"inputs": card.golden[0].inputs}).encode())
                client.close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert status == 200
        assert np.array_equal(answer["outputs"][0]["data"], card.golden[0].outputs[0]["data"])
    finally:
        stop_server(process)
