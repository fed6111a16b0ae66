"""scripts/tools.sh: pinned Debian 13 binaries, checked and cached, and the arm64 registration with its limits."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgebench import config

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "tools.sh"


def run(*args):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_a_second_install_downloads_nothing():
    first = run("install")
    assert first.returncode == 0, first.stderr
    again = run("install")
    assert again.returncode == 0 and "downloading" not in again.stderr
    bin_dir = Path(again.stdout.strip())
    for name in ("qemu-aarch64", "cosign", "kustomize", "quadlet"):
        assert os.access(bin_dir / name, os.X_OK), name


def test_a_deb_whose_sha256_differs_from_the_pin_is_refused(tmp_path):
    if shutil.which("apt-get") is None:
        pytest.fail("apt-get is needed to fetch Debian 13 packages") if config.in_ci() else pytest.skip("no apt-get")
    script = tmp_path / "tools.sh"
    text = SCRIPT.read_text()
    pin = "552bbe5563b522685b10f75a9a226bfbee9778fc313b205d595fdbb7e9c70e33"  # kustomize's
    assert pin in text
    script.write_text(text.replace(pin, "0" * 64))
    script.chmod(0o755)
    done = subprocess.run([str(script), "install"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EDGEBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 1
    assert "kustomize_5.6.0+ds-1+b2_amd64.deb has sha256 552bbe" in done.stderr
    assert f"not the pinned {'0' * 64}: refusing it" in done.stderr
    assert not (tmp_path / "cache" / "bin" / "kustomize").exists()


def test_registering_arm64_without_root_says_so(without_arm64_emulation):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:  # in /tmp itself: pytest's folders and the clone may be root's
        os.chmod(folder, 0o777)
        script = Path(folder) / "tools.sh"
        shutil.copy(SCRIPT, script)
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(script),
                               "register-arm64"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "EDGEBENCH_CACHE": folder, "HOME": folder})
    assert done.returncode == 1
    assert "not root: cannot register arm64 emulation with binfmt_misc" in done.stderr
    assert "Docker Desktop" in done.stderr
