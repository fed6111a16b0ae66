"""``edgebench doctor``: what this machine can do for each step, found by trying, and how to fix the rest.

Parts: the store, the Docker Engine, running each image architecture (natively or under emulation, tried with the
base image when the engine has it), the base images, the registries named with ``--registry`` (reached with the
credentials publish would use), and the outside tools the later steps call.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import config
from .core import render
from .core.errors import EdgebenchError
from .emulation import HOW, emulation

#: Outside tools: name -> (what needs it, version flag, how to get it)
TOOLS = {
    "cosign": ("signing and verifying images", ["version"], "scripts/tools.sh install (Debian 13's cosign 2.5)"),
    "kustomize": ("rendering deploy manifests", ["version"], "scripts/tools.sh install (Debian 13's kustomize 5.6)"),
    "quadlet": ("checking podman quadlet units", ["-version"], "scripts/tools.sh install (podman 5.4's quadlet)"),
    "skopeo": ("reading archives with an outside tool", ["--version"], "apt-get install skopeo"),
    "7zz": ("the host calibration of the benchmark", ["i"], "apt-get install 7zip"),
}


@dataclass(frozen=True)
class Finding:
    part: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class DoctorReport:
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def summary(self) -> str:
        width = max(len(f.part) for f in self.findings)
        lines = []
        for f in self.findings:
            lines.append(f"{'ok  ' if f.ok else 'FIX '} {f.part:<{width}}  {f.detail}")
            if f.fix:
                lines.append(f"     {'':<{width}}  fix: {f.fix}")
        failed = sum(not f.ok for f in self.findings)
        lines.append("everything works" if not failed else f"{failed} part(s) need attention")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [asdict(f) for f in self.findings]}

    def _repr_html_(self) -> str:
        rows = [(f.part, "ok" if f.ok else "fix", f.detail + (f" (fix: {f.fix})" if f.fix else ""))
                for f in self.findings]
        return render.table(["part", "state", "detail"], rows)


def doctor(registries: Sequence[str] = (), *, client: Any = None) -> DoctorReport:
    """Try each part edgebench relies on and say what works and how to fix the rest."""
    findings = [_store()]
    docker = None
    try:
        from .engine import docker_client

        docker = docker_client(client, timeout=30)
        info = docker.info()
        findings.append(Finding("engine", True, f"Docker Engine {info.get('ServerVersion')} at "
                                f"{config.docker_host()} ({info.get('Architecture')}, {info.get('Driver')}, cgroup "
                                f"v{info.get('CgroupVersion')})"))
    except EdgebenchError as exc:
        findings.append(Finding("engine", False, "no Docker Engine answers", exc.message))
    for arch in ("amd64", "arm64"):
        findings.append(_architecture(arch, docker))
    for registry in registries:
        findings.append(_registry(registry))
    for name, (purpose, flags, how) in TOOLS.items():
        findings.append(_tool(name, purpose, flags, how))
    return DoctorReport(findings)


def _store() -> Finding:
    from .store import Store

    try:
        report = Store().check(full=False)
    except EdgebenchError as exc:
        return Finding("store", False, exc.message, "set EDGEBENCH_HOME to a writable folder")
    if report.ok:
        return Finding("store", True, f"{report.home}: {report.versions} versions, {report.runs} step runs")
    return Finding("store", False, f"{report.home}: {report.problems[0].message}", report.problems[0].fix)


def _architecture(arch: str, docker: Any) -> Finding:
    """Whether linux/``arch`` images run here: the kernel's registration, then a real run of the base image."""
    part = f"run linux/{arch}"
    state = emulation(arch)
    if not state.usable:
        return Finding(part, False, state.detail, state.fix)
    if docker is None:
        return Finding(part, True, state.detail + " (not tried: no engine)")
    base = config.base_image().format(arch=arch)
    try:
        image = docker.images.get(base)
    except Exception:
        return Finding(part, True, f"{state.detail}; not tried: {base} is not in the engine")
    if image.attrs.get("Architecture") != arch:
        return Finding(part, True, f"{state.detail}; not tried: {base} is {image.attrs.get('Architecture')}")
    try:
        out = docker.containers.run(base, ["python3", "-c", "import platform; print(platform.machine())"],
                                    remove=True, network_mode="none").decode().strip()
    except Exception as exc:
        return Finding(part, False, f"{base} did not run: {str(exc).splitlines()[0][:200]}", HOW)
    return Finding(part, True, f"{state.detail}; {base} ran and saw {out}")


def _registry(registry: str) -> Finding:
    from .publish.registry import RegistryClient, find_credentials

    part = f"registry {registry}"
    try:
        creds = find_credentials(registry)
        RegistryClient(registry, creds).ping()
    except EdgebenchError as exc:
        fix = ("check the address, and that the registry is running and reachable from here"
               if "unreachable" in exc.message else "`docker login REGISTRY` stores credentials (or a credential "
               "helper, or EDGEBENCH_REGISTRY_USERNAME / EDGEBENCH_REGISTRY_PASSWORD)")
        return Finding(part, False, exc.message.split(": check")[0], fix)
    who = f"as {creds.username!r}" if creds else "anonymously"
    return Finding(part, True, f"answers at /v2/ {who}")


def _tool(name: str, purpose: str, flags: list[str], how: str) -> Finding:
    part = f"tool {name}"
    path = config.tool(name)
    if path is None:
        return Finding(part, False, f"missing (needed for {purpose})", how)
    try:
        done = subprocess.run([path, *flags], capture_output=True, text=True, timeout=30)
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        first = next((line for line in lines if "version" in line.lower()), lines[0] if lines else "")
    except (OSError, subprocess.SubprocessError) as exc:
        return Finding(part, False, f"{path} does not run: {exc}", how)
    return Finding(part, True, f"{path}: {first[:80]}")


__all__ = ["DoctorReport", "Finding", "doctor"]
