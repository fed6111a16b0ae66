"""Running images of another architecture on this engine: what the kernel's binfmt_misc registration says,
which QEMU it points to, and the message that says how to enable it.

arm64 images run on an amd64 engine when QEMU's user-mode emulator is registered for aarch64 binaries with the
``F`` flag (the kernel opens the interpreter at registration, so it works inside containers whose root has no
QEMU). QEMU 7.2 (Debian 12) crashes importing onnxruntime; QEMU 10 (Debian 13) runs the whole image.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .core.images import arch_name

BINFMT = Path("/proc/sys/fs/binfmt_misc")
#: binfmt_misc entry names QEMU's packages and scripts use, per target architecture.
ENTRIES = {"arm64": ("qemu-aarch64", "qemu-aarch64-static"), "amd64": ("qemu-x86_64", "qemu-x86_64-static")}
#: The oldest QEMU seen to run onnxruntime under emulation (reference: Debian 13's 10.0; 7.2 crashes).
MIN_QEMU = (10, 0)
HOW = ("run `scripts/tools.sh install && scripts/tools.sh register-arm64` as root (a pinned QEMU 10 from Debian 13, "
       "registered machine-wide with the F flag); Docker Desktop has emulation built in; on Debian 13 or Ubuntu "
       "24.04+, `apt-get install qemu-user-binfmt` does the same")


@dataclass(frozen=True)
class Emulation:
    """Whether this machine's kernel runs ``arch`` binaries, and through what."""

    arch: str
    native: bool
    registered: bool
    interpreter: str | None
    fix_binary: bool
    qemu_version: tuple[int, ...] | None

    @property
    def usable(self) -> bool:
        return self.native or (self.registered and self.fix_binary and self.qemu_version is not None
                               and self.qemu_version >= MIN_QEMU)

    @property
    def detail(self) -> str:
        """How ``arch`` runs here, or what is wrong."""
        if self.native:
            return f"{self.arch} runs natively on this machine"
        if not self.registered:
            return f"no emulator is registered for {self.arch} binaries"
        version = ".".join(map(str, self.qemu_version)) if self.qemu_version else "unknown"
        if not self.fix_binary:
            return f"{self.interpreter} is registered for {self.arch} without the F flag, so containers cannot use it"
        if self.qemu_version is None or self.qemu_version < MIN_QEMU:
            return (f"{self.interpreter} (QEMU {version}) is registered for {self.arch}, but QEMU before 10 crashes "
                    "importing onnxruntime")
        return f"{self.arch} runs under emulation: {self.interpreter} (QEMU {version}, flag F)"

    @property
    def fix(self) -> str | None:
        return None if self.usable else HOW

    def explain(self) -> str:
        """One sentence: how this arch runs here, or what is wrong and how to fix it."""
        return self.detail + (f": {self.fix}" if self.fix else "")


def host_arch() -> str:
    import platform

    return arch_name(platform.machine())


def emulation(arch: str) -> Emulation:
    """Read this machine's binfmt_misc for ``arch`` (``arm64`` or ``amd64``)."""
    if arch == host_arch():
        return Emulation(arch, True, True, None, True, None)
    for name in ENTRIES.get(arch, ()):
        entry = BINFMT / name
        try:
            text = entry.read_text()
        except OSError:
            continue
        if not text.startswith("enabled"):
            continue
        interpreter = re.search(r"^interpreter (.+)$", text, re.M)
        flags = re.search(r"^flags: (.*)$", text, re.M)
        path = interpreter[1].strip() if interpreter else None
        return Emulation(arch, False, True, path, bool(flags and "F" in flags[1]), _qemu_version(path))
    return Emulation(arch, False, False, None, False, None)


def _qemu_version(path: str | None) -> tuple[int, ...] | None:
    if not path:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"version (\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2])) if found else None
