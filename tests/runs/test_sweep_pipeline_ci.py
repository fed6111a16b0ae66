"""Sweeps on Dask, the notebook-free pipeline, and CI pipeline definitions checked against schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

import edgebench as eb
from edgebench.ci import export_pipeline
from edgebench.publish.registry import RegistryClient
from edgebench.runs import load_grid

from .test_notebooks import TRAIN, cli

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def test_sweep_runs_in_parallel_and_keeps_going_when_a_task_fails(store, tmp_path):
    grid = {"parameters": {"estimator": ["random_forest", "mlp", "svm"]},
            "fixed": {"n_estimators": 5, "model_name": "sweep-{estimator}"}}
    result = eb.sweep(TRAIN, grid, workers=2, output_dir=tmp_path / "s", store=store)
    assert result.scheduler == "LocalCluster(2 workers)" and len(result.rows) == 3
    by_estimator = {r["parameters"]["estimator"]: r for r in result.rows}
    assert by_estimator["random_forest"]["passed"] and by_estimator["mlp"]["passed"]
    failed = by_estimator["svm"]
    assert not failed["passed"] and "unknown estimator 'svm'" in failed["error"]
    assert [r["parameters"]["estimator"] for r in result.failed] == ["svm"]
    assert {c.name for c in store.list()} == {"sweep-random_forest", "sweep-mlp"}
    table = result.table()
    assert "FAILED: notebook train.ipynb failed" in table and "sweep-mlp:1" in table
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["rows"][0]["parameters"]


def test_cli_sweep_exits_1_when_a_task_failed(store, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("parameters:\n  estimator: [logistic_regression, nope]\nfixed:\n  model_name: cli-{estimator}\n")
    done = cli("sweep", str(TRAIN), "--grid", str(grid), "--workers", "1", home=store.home)
    assert done.returncode == 1 and "1 of 2 runs failed" in done.stderr and "logistic_regression" in done.stderr


@pytest.mark.parametrize(
    ("grid", "message"),
    [({"parameters": {}}, "needs a 'parameters' mapping"),
     ({"parameters": {"estimator": "mlp"}}, "parameter 'estimator' needs a non-empty list of values"),
     ({"parameters": {"estimator": []}}, "needs a non-empty list"),
     ({"parameters": {"colour": ["red"]}}, "train.ipynb has no parameter 'colour'"),
     ({"parameters": {"n_estimators": ["ten"]}}, "parameter 'n_estimators' of train.ipynb is int, but 'ten'"),
     ({"parameters": {"n_estimators": [1]}, "extra": 1}, "unknown key 'extra'"),
     ([1, 2], "needs a 'parameters' mapping")],
)
def test_invalid_grids(grid, message):
    with pytest.raises(eb.InvalidInputError) as err:
        load_grid(grid, TRAIN)
    assert message in str(err.value)


def test_grid_file_problems(tmp_path):
    with pytest.raises(eb.InvalidInputError, match="grid file not found"):
        load_grid(tmp_path / "none.yaml", TRAIN)
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [unclosed")
    with pytest.raises(eb.InvalidInputError, match="is not valid YAML"):
        load_grid(bad, TRAIN)


def test_unreachable_dask_scheduler(store):
    with pytest.raises(eb.InvalidInputError, match="no Dask scheduler answers at tcp://127.0.0.1:1"):
        eb.sweep(TRAIN, {"parameters": {"n_estimators": [5]}}, scheduler="tcp://127.0.0.1:1", store=store)


def test_sweep_on_a_real_scheduler_address(store, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        result = eb.sweep(TRAIN, {"parameters": {"n_estimators": [3, 4]}, "fixed": {"model_name": "s-{n_estimators}"}},
                          scheduler=cluster.scheduler_address, output_dir=tmp_path / "s", store=store)
    assert result.scheduler.startswith("tcp://") and not result.failed


def test_pipeline_gates_without_a_notebook(store, digits, digits_rf):
    eb.export_model(digits_rf, digits[0][:10], "digits-rf", store=store)
    ok = eb.run_pipeline("digits-rf", ["rpi4-1gb"], eb.SLO(p99_ms=50), containers=False, store=store,
                         say=lambda _: None)
    assert ok.passed and ok.gates == {"slo": True}
    failing = eb.run_pipeline("digits-rf", ["rpi4-1gb"], eb.SLO(p99_ms=0.00001), store=store, say=lambda _: None)
    assert not failing.passed and "build" not in failing.steps  # stopped at the gate


def test_pipeline_asked_to_publish_without_an_engine_fails_its_gate(store, digits, digits_rf, monkeypatch,
                                                                      tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    eb.export_model(digits_rf, digits[0][:10], "digits-rf", store=store)
    lines = []
    result = eb.run_pipeline("digits-rf", [], eb.SLO(), archive=str(tmp_path / "a.tar"), store=store,
                             say=lines.append)
    assert result.gates == {"engine": False} and "no Docker Engine answers" in lines[-1]
    done = cli("pipeline", "--model", "digits-rf", "--archive", str(tmp_path / "a.tar"), home=store.home)
    assert done.returncode == 1 and "gates engine FAILED" in done.stderr


@pytest.mark.docker
def test_cli_pipeline_end_to_end_to_a_registry(store, engine, registries, digits, digits_rf):
    eb.export_model(digits_rf, digits[0][:10], "pipe-rf", store=store)
    done = cli("pipeline", "--model", "pipe-rf", "--device", "rpi4-1gb", "--slo-p99-ms", "50", "--registry",
               f"{registries['open']}/edge/pipe-rf", "--json", home=store.home)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["gates"] == {"slo": True, "image_test": True}
    assert list(result["steps"]["build"]) == ["linux/arm64"]  # the Pi's architecture, tested under emulation
    assert result["steps"]["test"]["linux/arm64"]["emulated"] is True
    assert result["steps"]["publish"]["digest"].startswith("sha256:")
    both = cli("pipeline", "--model", "pipe-rf", "--device", "rpi4-1gb", "--platform", "linux/amd64", "--platform",
               "arm64", "--registry", f"{registries['open']}/edge/pipe-rf", "--tag", "multi", "--json",
               home=store.home)
    assert both.returncode == 0, both.stderr
    multi = json.loads(both.stdout)
    assert multi["steps"]["publish"]["platforms"] == ["amd64", "arm64"]
    _, index = RegistryClient(registries["open"]).manifest("edge/pipe-rf", "multi")
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    for build in multi["steps"]["build"].values():
        engine.images.remove(build["image"], force=True)


@pytest.mark.docker
def test_cli_pipeline_signs_what_it_publishes(store, engine, registries, digits, digits_rf, signing_keys,
                                              cosign_password):
    eb.export_model(digits_rf, digits[0][:10], "signed-rf", store=store)
    done = cli("pipeline", "--model", "signed-rf", "--platform", "linux/amd64", "--registry",
               f"{registries['open']}/edge/signed-rf", "--sign", signing_keys["private"], "--json", home=store.home)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["gates"] == {"image_test": True, "signed": True} and result["steps"]["publish"]["signed"]
    digest = result["steps"]["publish"]["digest"]
    assert eb.verify(f"{registries['open']}/edge/signed-rf@{digest}", signing_keys["public"]).passed
    published = eb.get_model("signed-rf", store=store)
    from edgebench.state import model_state

    state = model_state(store, published)["published"]
    assert state["signed"] and state["attestations"] == ["image-test", "parity", "sbom"]
    unsigned = cli("pipeline", "--model", "signed-rf", "--platform", "linux/amd64", "--archive",
                   str(store.home / "a.tar"), "--sign", signing_keys["private"], "--json", home=store.home)
    assert unsigned.returncode == 1 and json.loads(unsigned.stdout)["gates"]["signed"] is False
    engine.images.remove(result["steps"]["build"]["linux/amd64"]["image"], force=True)


def test_github_actions_workflow_validates_against_the_schemastore_schema(tmp_path):
    path = tmp_path / "edge.yml"
    path.write_text(export_pipeline("github-actions", registry="ghcr.io/team/digits-rf", devices=["rpi4-1gb"]))
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    workflow = yaml.safe_load(path.read_text())
    runs = [s.get("run", "") for s in workflow["jobs"]["edge"]["steps"]]
    assert any(r.startswith("edgebench run notebooks/train.ipynb") for r in runs)
    assert any(r.startswith("edgebench pipeline --model digits-rf --device rpi4-1gb --slo-p99-ms 20") for r in runs)
    assert "secrets.EDGEBENCH_REGISTRY_PASSWORD" in path.read_text()


def test_broken_workflow_is_caught_by_the_schema(tmp_path):
    workflow = yaml.safe_load(export_pipeline("github-actions"))
    del workflow["jobs"]["edge"]["runs-on"]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(workflow))
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0


def test_tekton_task_and_pipeline_validate_against_the_v1_schema():
    schema = json.loads((SCHEMAS / "tekton-v1.schema.json").read_text())
    documents = list(yaml.safe_load_all(export_pipeline("tekton", devices=["rpi4-1gb", "rk3588"])))
    assert [d["kind"] for d in documents] == ["Task", "Pipeline"]
    for document in documents:
        jsonschema.validate(document, schema)
    script = documents[0]["spec"]["steps"][0]["script"]
    assert "edgebench pipeline --model digits-rf --device rpi4-1gb --device rk3588" in script
    broken = {**documents[1], "spec": {"tasks": [{"name": "edge"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_export_pipeline_bad_format_and_cli_output_file(tmp_path, store):
    with pytest.raises(eb.InvalidInputError, match="unknown pipeline format 'jenkins'"):
        export_pipeline("jenkins")
    done = cli("export-pipeline", "--format", "tekton", "-o", str(tmp_path / "t.yaml"), home=store.home)
    assert done.returncode == 0 and "kind: Pipeline" in (tmp_path / "t.yaml").read_text()
