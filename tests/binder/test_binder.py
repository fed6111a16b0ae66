"""The Binder configuration: its environment, made from binder/ alone in a fresh virtual environment, runs the
demo notebook headless, and the demo says what it skipped because Binder has no Docker Engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_binder_environment_runs_the_demo_notebook(tmp_path):
    for name in ("requirements.txt", "postBuild", "apt.txt"):
        assert (ROOT / "binder" / name).is_file(), name
    assert shutil.which("7zz") or shutil.which("7z"), "binder/apt.txt's 7zip is what calibration needs"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    steps = [["python", "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], ["bash", "binder/postBuild"]]
    for step in steps:
        done = subprocess.run(step, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"
    home = tmp_path / "home"
    out = tmp_path / "run"
    env.update({"EDGEBENCH_HOME": str(home), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    done = subprocess.run(["edgebench", "run", "notebooks/demo.ipynb", "-p", "trees", "10", "--output-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["parity"] == "pass" and results["containers"] == "skipped"
    assert set(results["bench"]) == {"rpi4-1gb", "jetson-orin-nano"}
    assert "Skipped building and testing the image: no Docker Engine answers" in (out / "report.html").read_text()
    installed = subprocess.run(["python", "-c", "import edgebench, jupyterlab, ipywidgets; print(edgebench.__file__)"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert str(venv) in installed.stdout  # edgebench came from postBuild into the fresh environment
