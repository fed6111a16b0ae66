"""Every command of the CLI, given a failing input: edgebench's own one-line error, never a traceback, the right
exit code (1 failed or refused, 2 wrong usage), and valid JSON under --json."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from edgebench.cli import build_parser

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# command -> (arguments after the command, exit code, what the user must read on stderr)
CASES = {
    "export": (["{custom}", "--sample", "{sample}", "--name", "w"], 1,
               "NotAnEstimator is not a scikit-learn estimator (it does not derive from sklearn.base.BaseEstimator)"),
    "import-onnx": (["{garbage}", "--sample", "{sample}", "--name", "x"], 1, "garbage.onnx"),
    "serve": (["dt:1", "--port", "{taken_port}"], 1, "the port is taken by another program; choose another --port"),
    "build": (["dt:2", "--context-only", "{tmp}/ctx"], 1,
              "the ONNX file of dt:2 is missing"),
    "test-image": (["edgebench/dt:1-amd64"], 1, "Docker Engine"),
    "publish": (["edgebench/dt:1-amd64"], 1, "give either REGISTRY/REPOSITORY or --to oci-archive:FILE.tar"),
    "load": (["{sample}"], 1, "is not an image archive"),
    "run": (["{corrupt}"], 1, "is not a readable notebook (Notebook does not appear to be JSON"),
    "sweep": ([str(NOTEBOOKS / "train.ipynb"), "--grid", "{grid}"], 1,
              "model_name template 'x-{{nope}}' names 'nope' that is not a parameter of the grid"),
    "pipeline": (["--model", "ghost"], 1, "no model named 'ghost'"),
    "export-pipeline": (["--format", "tekton", "-o", "{tmp}/missing/p.yaml"], 1,
                        "the folder {tmp}/missing does not exist (create it first)"),
    "profiles list": ([], 1, "broken.yaml"),
    "profiles show": (["rpi-9000"], 1, "rpi-9000"),
    "profiles calibrate": ([], 1, "cannot keep the host calibration in {tmp}/a-file/cache/calibration: Not a "
                                  "directory; set EDGEBENCH_CACHE to a writable folder"),
    "bench": (["dt:1", "--seconds", "inf"], 2, "argument --seconds: must be a finite number > 0, got 'inf'"),
    "demo": (["--no-containers"], 1, "cannot use {tmp}/a-file/home as the edgebench store"),
    "doctor": (["--registry", "127.0.0.1:1"], 1, "part(s) need attention"),
    "deploy render": (["digits-rf", "--sites", "{tmp}/missing.yaml", "--repo", "{tmp}/gitops"], 1,
                      "sites file not found: {tmp}/missing.yaml"),
    "deploy bundle": (["--site", "plant-7", "--sites", "{sites}", "--repo", "{tmp}/gitops", "--out", "{tmp}/b.tar"], 1,
                      "site 'plant-7' is not pinned to any digest yet: promote its wave first"),
    "deploy status": (["--sites", "{bad_sites}", "--repo", "{tmp}/gitops"], 1,
                      "site 'plant-7', field 'profile': unknown device 'rpi-9000'"),
    "promote": (["127.0.0.1:5000/edge/digits-rf:1", "--sites", "{sites}", "--repo", "{tmp}", "--wave", "0"], 1,
                "is a tag: promote a digest"),
    "keys generate": (["--out", "{tmp}/keys"], 1, "set COSIGN_PASSWORD (the password that protects the private key)"),
    "sign": (["127.0.0.1:1/edge/x:1", "--key", "{tmp}/missing.key"], 1,
             "'127.0.0.1:1/edge/x:1' is not a reference by digest: sign and verify REGISTRY/REPOSITORY@sha256"),
    "monitor": (["dt:1", "--source", "http://127.0.0.1:1/metrics"], 1,
                "http://127.0.0.1:1/metrics is unreachable"),
    "trust-policy": (["--key", "{tmp}/missing.pub", "--repository", "127.0.0.1:5000/edge/x", "--out", "{tmp}/p"], 1,
                     "public key not found: {tmp}/missing.pub"),
    "verify": ([f"127.0.0.1:1/edge/x@sha256:{'0' * 64}", "--key", "{tmp}/missing.pub"], 1,
               "public key not found: {tmp}/missing.pub"),
    "models list": ([], 1, "is empty or missing, but the store holds 4 blobs"),
    "models show": (["ghost"], 1, "no model named 'ghost'"),
    "models rm": (["dt:7"], 1, "model 'dt' has no version 7"),
    "store check": ([], 1, "the ONNX file of dt:2 is missing"),
    "store rebuild": ([], 1, "nothing to rebuild"),
}


def commands(parser=None, prefix=()):
    """Every runnable command of the parser, as 'models list' style names."""
    import argparse

    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, (*prefix, name))
    if not found and prefix:
        found.append(" ".join(prefix))
    return found


def test_every_command_has_a_failing_case():
    assert sorted(commands()) == sorted(CASES)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with dt:1 and dt:2 (dt:2's ONNX file deleted) and the bad files each case names."""
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    import edgebench as eb

    tmp = tmp_path_factory.mktemp("cli-failures")
    home = tmp / "home"
    store = eb.Store(home)
    x, y = load_digits(return_X_y=True)
    for depth in (2, 3):
        eb.export_model(DecisionTreeClassifier(max_depth=depth, random_state=0).fit(x, y), x[:5], "dt", store=store)
    store.blob_path(store.get("dt:2").sha256).unlink()
    emptied = eb.Store(tmp / "emptied")  # a store whose index lost everything while its blobs remain
    for depth in (2, 3):
        eb.export_model(DecisionTreeClassifier(max_depth=depth, random_state=0).fit(x, y), x[:5], "dt", store=emptied)
    emptied.index_path.write_bytes(b"")
    np.save(tmp / "sample.npy", x[:5])
    (tmp / "custom.py").write_text("class NotAnEstimator:\n    def fit(self, x, y): return self\n"
                                   "    def predict(self, x): return x\n")
    sys.path.insert(0, str(tmp))
    try:
        import custom

        joblib.dump(custom.NotAnEstimator(), tmp / "custom.joblib")
    finally:
        sys.path.remove(str(tmp))
    (tmp / "garbage.onnx").write_bytes(b"\x08\x07 not onnx")
    (tmp / "corrupt.ipynb").write_text('{"cells": [')
    (tmp / "grid.yaml").write_text('parameters: {estimator: [random_forest]}\nfixed: {model_name: "x-{nope}"}\n')
    (tmp / "profiles").mkdir()
    (tmp / "profiles" / "broken.yaml").write_text("name: [unclosed\n")
    (tmp / "a-file").write_text("not a folder")
    (tmp / "sites.yaml").write_text("hub: 127.0.0.1:5000/edge/digits-rf\nsites:\n"
                                    "  - {name: plant-7, profile: rpi4-1gb, wave: 0, target: kubernetes}\n")
    (tmp / "bad-sites.yaml").write_text("hub: 127.0.0.1:5000/edge/digits-rf\nsites:\n"
                                        "  - {name: plant-7, profile: rpi-9000, wave: 0, target: kubernetes}\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield {"tmp": tmp, "home": home, "listener": listener}
    listener.close()


@pytest.mark.parametrize("command", sorted(CASES))
def test_failing_input_gives_a_message_exit_code_and_json_never_a_traceback(world, command):
    args, code, message = CASES[command]
    tmp = world["tmp"]
    values = {"tmp": tmp, "sample": tmp / "sample.npy", "custom": tmp / "custom.joblib",
              "garbage": tmp / "garbage.onnx", "corrupt": tmp / "corrupt.ipynb", "grid": tmp / "grid.yaml",
              "taken_port": world["listener"].getsockname()[1], "sites": tmp / "sites.yaml",
              "bad_sites": tmp / "bad-sites.yaml"}
    home = {"demo": tmp / "a-file" / "home", "models list": tmp / "emptied"}.get(command, world["home"])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "DOCKER_HOST": f"unix://{tmp}/no-engine.sock",
           "PYTHONPATH": str(tmp), "EDGEBENCH_CACHE": str(tmp / "a-file" / "cache"),
           "EDGEBENCH_PROFILES": str(tmp / "profiles") if command == "profiles list" else ""}
    argv = [sys.executable, "-m", "edgebench", "--home", str(home), *command.split(),
            *(a.format(**values) for a in args), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    assert message.format(**values) in done.stderr
    assert "unexpected" not in done.stderr  # the safety net in cli.main did not have to catch it
    payload = json.loads(done.stdout)
    assert isinstance(payload, dict) and payload["error"], payload
