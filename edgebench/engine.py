"""The Docker Engine seam: one place that connects the docker SDK and explains what to do when it cannot."""

from __future__ import annotations

import time
import uuid
from typing import Any

from . import config
from .core.errors import EngineUnavailableError


def docker_client(client: Any = None, timeout: int = 600) -> Any:
    """``client`` if given, else a docker SDK client for ``$DOCKER_HOST`` that has answered a ping."""
    if client is not None:
        return client
    try:
        import docker
    except ImportError as exc:
        raise EngineUnavailableError("the docker SDK is not installed: pip install 'edgebench[docker]'") from exc
    host = config.docker_host()
    try:
        found = docker.DockerClient(base_url=host, timeout=timeout)
        found.ping()
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise EngineUnavailableError(
            f"no Docker Engine answers at {host} ({reason}). Start dockerd, or point DOCKER_HOST at a running "
            "engine, e.g. export DOCKER_HOST=unix:///var/run/docker.sock (or tcp://HOST:2375)",
            docker_host=host,
        ) from exc
    return found


def engine_available() -> tuple[bool, str]:
    """Whether an engine answers, and if not, the message that says how to fix it (for UIs)."""
    try:
        docker_client(timeout=5).close()
    except EngineUnavailableError as exc:
        return False, str(exc)
    return True, f"Docker Engine at {config.docker_host()}"


def run_limited(docker: Any, image: str, *, memory: int, cpuset: str | None, network: str, name: str,
                labels: dict[str, str], **options: Any) -> Any:
    """Start ``image`` detached the way every edgebench container runs: read-only root, RAM with no swap
    (``--memory`` = ``--memory-swap``), the given CPU set, no new privileges, no capabilities."""
    return docker.containers.run(
        image, detach=True, network_mode=network, read_only=True, mem_limit=memory, memswap_limit=memory,
        cpuset_cpus=cpuset, security_opt=["no-new-privileges"], cap_drop=["ALL"], name=name, labels=labels,
        **options,
    )


def applied_limits(container: Any) -> dict[str, Any]:
    """What the engine applies to ``container``, read back from it (not from what was asked)."""
    container.reload()
    host, config_ = container.attrs["HostConfig"], container.attrs["Config"]
    return {
        "memory_bytes": host.get("Memory") or None,
        "swap": "none" if host.get("Memory") and host.get("MemorySwap") == host.get("Memory") else "allowed",
        "cpuset": host.get("CpusetCpus") or None,
        "read_only": bool(host.get("ReadonlyRootfs")),
        "no_new_privileges": "no-new-privileges" in (host.get("SecurityOpt") or []),
        "cap_drop": host.get("CapDrop") or [],
        "network": host.get("NetworkMode"),
        "user": config_.get("User") or "root",
    }


def peak_memory_mb(container: Any) -> float | None:
    """The high-water mark of a running container's memory cgroup, in MB (None when the engine has none)."""
    try:
        stats = container.stats(stream=False)["memory_stats"]
    except Exception:
        return None
    peak = stats.get("max_usage") or stats.get("peak")
    return round(peak / 2**20, 1) if peak else None


def emulator_baseline(docker: Any, image: Any, memory: int) -> float | None:
    """Peak memory of an idle ``python3`` from the image's base under the same emulation: what QEMU and the
    interpreter cost before any model, to read an emulated peak against."""
    base = (image.labels or {}).get("org.opencontainers.image.base.name") or image.id
    container = None
    try:
        container = run_limited(docker, base, memory=memory, cpuset=None, network="none",
                                name=f"edgebench-baseline-{uuid.uuid4().hex[:12]}",
                                labels={"org.edgebench.test": "baseline"}, entrypoint=["python3"],
                                command=["-c", "print('up', flush=True); import time; time.sleep(60)"])
        deadline = time.monotonic() + 60
        while b"up" not in container.logs() and time.monotonic() < deadline:  # python3 is up and idle
            time.sleep(0.2)
        time.sleep(0.5)
        return peak_memory_mb(container)
    except Exception:  # a base no longer in the engine: the report says "-"
        return None
    finally:
        if container is not None:
            container.remove(force=True)
