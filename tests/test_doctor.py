"""`edgebench doctor` on the real machine: each part found by trying it, and the fix for what fails."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgebench.doctor import doctor


def by_part(report):
    return {f.part: f for f in report.findings}


@pytest.mark.docker
def test_with_the_services_every_architecture_runs(engine, registries):
    report = by_part(doctor([registries["open"]], client=engine))
    assert report["engine"].ok and "Docker Engine" in report["engine"].detail
    assert report["run linux/amd64"].ok and report["run linux/amd64"].detail.endswith("ran and saw x86_64")
    arm64 = report["run linux/arm64"]
    assert arm64.ok and "QEMU 10" in arm64.detail and arm64.detail.endswith("ran and saw aarch64"), arm64.detail
    assert report[f"registry {registries['open']}"].ok
    assert report["tool cosign"].ok and report["tool kustomize"].ok and report["tool quadlet"].ok


@pytest.mark.docker
def test_without_emulation_arm64_is_flagged_with_the_fix(engine, without_arm64_emulation):
    arm64 = by_part(doctor(client=engine))["run linux/arm64"]
    assert not arm64.ok and arm64.detail == "no emulator is registered for arm64 binaries"
    assert "scripts/tools.sh register-arm64" in arm64.fix and "qemu-user-binfmt" in arm64.fix


def test_no_engine_a_missing_tool_and_an_unreachable_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    monkeypatch.setenv("EDGEBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/nonexistent")
    report = by_part(doctor(["127.0.0.1:1"]))
    assert not report["engine"].ok and "DOCKER_HOST" in report["engine"].fix
    assert report["tool cosign"].detail == "missing (needed for signing and verifying images)"
    assert report["tool cosign"].fix.startswith("scripts/tools.sh install")
    registry = report["registry 127.0.0.1:1"]
    assert not registry.ok and "is unreachable" in registry.detail and registry.fix.startswith("check the address")
    assert report["store"].ok


def test_cli_json_and_exit_code(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgebench", "--home", str(tmp_path), "doctor", "--registry",
                           "127.0.0.1:1", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "part(s) need attention" in done.stderr
    payload = json.loads(done.stdout)
    assert payload["ok"] is False
    assert any(f["part"] == "registry 127.0.0.1:1" and not f["ok"] for f in payload["findings"])
