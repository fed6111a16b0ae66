"""The shipped notebooks, run headless with papermill through edgebench: parameters, reports, gates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import edgebench as eb
from edgebench.runs import check_parameters, notebook_parameters

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TRAIN, PIPELINE, DEMO, RETRAIN = (NOTEBOOKS / f"{n}.ipynb" for n in ("train", "edge_pipeline", "demo", "retrain"))


def cli(*args, home):
    return subprocess.run([sys.executable, "-m", "edgebench", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("notebook", [TRAIN, PIPELINE, DEMO, RETRAIN])
def test_parameter_cells_are_typed_and_documented(notebook):
    params = notebook_parameters(notebook)
    assert params
    for p in params.values():
        assert p.type in {"str", "int", "float", "bool", "list", "dict"}, p
        assert p.help, f"{notebook.name}: parameter {p.name} has no comment saying what it is"


def test_train_headless_writes_report_results_and_records_the_run(store, tmp_path):
    run = eb.run_notebook(TRAIN, {"n_estimators": 10, "model_name": "digits-rf"}, output_dir=tmp_path / "out",
                          store=store)
    assert run.passed and run.gates == {"parity": True}
    assert run.results["model"] == "digits-rf:1" and run.results["accuracy"] > 0.8
    assert store.get("digits-rf").metadata["estimator"] == "random_forest"
    html = Path(run.report).read_text()
    assert "test accuracy" in html and "import edgebench" not in html  # inputs hidden
    executed = nbformat.read(run.executed, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    (recorded,) = store.runs("digits-rf", step="notebook")
    assert recorded.status == "passed" and recorded.outputs["results"]["parity"] == "pass"


def test_cli_run_with_list_parameter_and_a_failing_gate_exits_1(store, tmp_path):
    trained = cli("run", str(TRAIN), "-p", "n_estimators", "5", "-p", "model_name", "tiny", home=store.home)
    assert trained.returncode == 0
    done = cli("run", str(PIPELINE), "-p", "model", "tiny", "-p", "devices", '["rpi4-1gb"]', "-p", "slo_p99_ms",
               "0.00001", "-p", "containers", "false", "--output-dir", str(tmp_path / "p"), home=store.home)
    assert done.returncode == 1, done.stderr
    assert "gate slo: FAILED" in done.stderr and "report:" in done.stderr
    results = json.loads((tmp_path / "p" / "results.json").read_text())
    assert results["bench"] == {"rpi4-1gb": "fail"} and results["gates"] == {"slo": False}
    assert (tmp_path / "p" / "report.html").exists()


def test_failing_cell_gives_a_nonzero_exit_and_the_cells_error(store):
    done = cli("run", str(TRAIN), "-p", "estimator", "svm", home=store.home)
    assert done.returncode == 1
    assert "notebook train.ipynb failed in cell" in done.stderr
    assert "ValueError: unknown estimator 'svm'" in done.stderr
    assert store.runs(step="notebook")[0].status == "failed"


@pytest.mark.parametrize(
    ("given", "message"),
    [({"colour": "red"}, "train.ipynb has no parameter 'colour'; its parameters are dataset, estimator"),
     ({"n_estimators": "many"}, "parameter 'n_estimators' of train.ipynb is int, but 'many' is str"),
     ({"hidden_layer_sizes": "64"}, "parameter 'hidden_layer_sizes' of train.ipynb is list, but 64 is int"),
     ({"test_size": True}, "parameter 'test_size' of train.ipynb is float, but True is bool")],
)
def test_unknown_parameter_or_wrong_type_is_an_error_before_running(given, message):
    with pytest.raises(eb.InvalidInputError) as err:
        check_parameters(TRAIN, given, from_text=isinstance(next(iter(given.values())), str))
    assert message in str(err.value)


def test_missing_notebook(store, tmp_path):
    with pytest.raises(eb.InvalidInputError, match="notebook not found: .*nowhere.ipynb"):
        eb.run_notebook(tmp_path / "nowhere.ipynb", store=store)
    done = cli("run", str(tmp_path / "nowhere.ipynb"), home=store.home)
    assert done.returncode == 1 and "notebook not found" in done.stderr


def test_the_store_is_the_run_store_inside_the_kernel(store, tmp_path):
    run = eb.run_notebook(TRAIN, {"n_estimators": 5, "model_name": "inside"}, output_dir=tmp_path / "o", store=store)
    assert run.passed and [c.name for c in store.list()] == ["inside"]


@pytest.mark.docker
def test_edge_pipeline_notebook_builds_tests_and_publishes(store, engine, registries, tmp_path, signing_keys,
                                                          cosign_password):
    eb.run_notebook(TRAIN, {"n_estimators": 10, "model_name": "nb-rf"}, output_dir=tmp_path / "t", store=store)
    run = eb.run_notebook(PIPELINE, {"model": "nb-rf", "devices": ["rpi4-1gb"],
                                     "registry": f"{registries['open']}/edge/nb-rf",
                                     "sign_key": signing_keys["private"]},
                          output_dir=tmp_path / "p", store=store)
    try:
        assert run.passed and run.gates == {"slo": True, "image_test": True, "signed": True}
        from ..conftest import SIGNING_PASSWORD

        for path in (tmp_path / "p").rglob("*"):  # the executed notebook, its report, its results: no secret
            if path.is_file():
                assert SIGNING_PASSWORD.encode() not in path.read_bytes(), path
                assert Path(signing_keys["private"]).read_bytes() not in path.read_bytes(), path
        assert f"{registries['open']}/edge/nb-rf:1" in run.results["published"]
        assert run.results["images"] == ["edgebench/nb-rf:1-arm64"]  # the Pi's architecture, under emulation
        assert run.results["output_differences"]["linux/arm64"]["label"] == 0
        # newest first: the steps the notebook ran, then the notebook run itself (started first)
        assert [r.step for r in store.runs("nb-rf")][:5] == ["publish", "test", "build", "bench", "notebook"]
    finally:
        for image in run.results.get("images", []):
            engine.images.remove(image, force=True)
