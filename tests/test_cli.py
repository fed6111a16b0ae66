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


def test_parity_failure_exits_1_with_json_report(tmp_path, files):
    model, sample = files
    done = edgebench("export", str(model), "--sample", str(sample), "--name", "strict", "--atol", "0",
                     "--rtol", "0", "--json", home=tmp_path)
    if done.returncode == 0:  # a forest's float32 probabilities can match float64 exactly
        pytest.skip("probabilities matched exactly; covered by test_export's MLP case")
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
    rebuilt = edgebench("store", "rebuild", home=home)
    assert rebuilt.returncode == 0 and "1 models" in rebuilt.stdout
    assert "digits-rf" in edgebench("models", "list", home=home).stdout


def test_no_command_prints_help_and_exits_2(tmp_path):
    done = edgebench(home=tmp_path)
    assert done.returncode == 2 and "commands" in done.stdout
