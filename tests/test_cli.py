"""The edgebench command: exit codes, --json output and the messages users see."""

from __future__ import annotations

import json
import subprocess
import sys

import joblib
import numpy as np
import pytest


def edgebench(*args, home):
    return subprocess.run(
        [sys.executable, "-m", "edgebench", "--home", str(home), *args],
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def files(tmp_path, digits, digits_rf):
    model = tmp_path / "rf.joblib"
    joblib.dump(digits_rf, model)
    sample = tmp_path / "sample.npy"
    np.save(sample, digits[0][:30])
    return model, sample


def test_export_list_show_rm_with_json(tmp_path, files):
    model, sample = files
    home = tmp_path / "home"
    done = edgebench("export", str(model), "--sample", str(sample), "--name", "digits-rf", "--json", home=home)
    assert done.returncode == 0, done.stderr
    card = json.loads(done.stdout)
    assert card["name"] == "digits-rf" and card["version"] == 1 and card["parity"]["passed"] is True

    listed = edgebench("models", "list", "--json", home=home)
    assert [c["name"] for c in json.loads(listed.stdout)] == ["digits-rf"]
    text = edgebench("models", "list", home=home).stdout
    assert "digits-rf" in text and "pass" in text

    shown = edgebench("models", "show", "digits-rf:1", home=home)
    assert "input  X FP32 [-1, 64]" in shown.stdout

    removed = edgebench("models", "rm", "digits-rf", "--json", home=home)
    assert json.loads(removed.stdout) == {"name": "digits-rf", "removed": [1]}
    assert "no models yet" in edgebench("models", "list", home=home).stdout


def test_export_help_warns_that_pickles_run_code(tmp_path):
    out = edgebench("export", "--help", home=tmp_path).stdout
    assert "runs code" in out


def test_missing_pickle_path(tmp_path, files):
    _, sample = files
    done = edgebench("export", str(tmp_path / "nope.joblib"), "--sample", str(sample), "--name", "x", home=tmp_path)
    assert done.returncode == 1
    assert "error: model file not found: " in done.stderr and "nope.joblib" in done.stderr


def test_file_that_is_not_a_pickle(tmp_path, files):
    _, sample = files
    bogus = tmp_path / "model.joblib"
    bogus.write_text("hello")
    done = edgebench("export", str(bogus), "--sample", str(sample), "--name", "x", home=tmp_path)
    assert done.returncode == 1 and "cannot load a model from" in done.stderr


def test_parity_failure_exits_1_with_json_report(tmp_path, files, digits):
    from sklearn.neural_network import MLPRegressor

    _, sample = files
    x, y = digits
    model = tmp_path / "mlp.joblib"  # float64 in scikit-learn, float32 in ONNX: never equal at zero tolerance
    joblib.dump(MLPRegressor(hidden_layer_sizes=(16,), max_iter=50, random_state=0).fit(x, y), model)
    done = edgebench("export", str(model), "--sample", str(sample), "--name", "strict", "--atol", "0",
                     "--rtol", "0", "--json", home=tmp_path)
    payload = json.loads(done.stdout)
    assert done.returncode == 1 and payload["type"] == "ParityError" and payload["parity"]["passed"] is False


def test_bad_name_and_unknown_model(tmp_path, files):
    model, sample = files
    done = edgebench("export", str(model), "--sample", str(sample), "--name", "../evil", home=tmp_path)
    assert done.returncode == 1 and "contains a path separator" in done.stderr
    done = edgebench("models", "show", "ghost", "--json", home=tmp_path)
    assert done.returncode == 1
    assert json.loads(done.stdout)["type"] == "ModelNotFoundError"


def test_sample_file_with_unknown_suffix(tmp_path, files):
    model, _ = files
    other = tmp_path / "sample.parquet"
    other.write_bytes(b"PAR1")
    done = edgebench("export", str(model), "--sample", str(other), "--name", "x", home=tmp_path)
    assert done.returncode == 1 and "use .npy, .npz or .csv" in done.stderr


def test_damaged_index_then_store_rebuild(tmp_path, files):
    model, sample = files
    home = tmp_path / "home"
    assert edgebench("export", str(model), "--sample", str(sample), "--name", "digits-rf", home=home).returncode == 0
    (home / "index.sqlite").write_bytes(b"garbage" * 1000)
    done = edgebench("models", "list", home=home)
    assert done.returncode == 1 and "is damaged" in done.stderr
    checked = edgebench("store", "check", "--json", home=home)
    assert checked.returncode == 1 and json.loads(checked.stdout)["problems"][0]["kind"] == "index-damaged"
    rebuilt = edgebench("store", "rebuild", home=home)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "1 versions and 1 step runs recovered (from the old index 0, the journal 1, card blobs 0)" in rebuilt.stdout
    assert "digits-rf" in edgebench("models", "list", home=home).stdout
    again = edgebench("store", "rebuild", home=home)
    assert again.returncode == 1 and "nothing to rebuild" in again.stderr and "--force" in again.stderr
    assert edgebench("store", "check", home=home).stdout.rstrip().endswith("healthy")


def test_a_model_whose_onnx_file_is_gone_is_flagged_in_list_and_show(tmp_path, files):
    model, sample = files
    home = tmp_path / "home"
    done = edgebench("export", str(model), "--sample", str(sample), "--name", "digits-rf", "--json", home=home)
    sha = json.loads(done.stdout)["sha256"]
    (home / "blobs" / "sha256" / sha[:2] / sha).unlink()
    listed = edgebench("models", "list", home=home)
    assert "[ONNX FILE MISSING]" in listed.stdout and "run `edgebench store check` for the fix" in listed.stdout
    assert json.loads(edgebench("models", "list", "--json", home=home).stdout)[0]["onnx_missing"] is True
    assert "ONNX FILE MISSING" in edgebench("models", "show", "digits-rf", home=home).stdout


def test_no_command_prints_help_and_exits_2(tmp_path):
    done = edgebench(home=tmp_path)
    assert done.returncode == 2 and "commands" in done.stdout
