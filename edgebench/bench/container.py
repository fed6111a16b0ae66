"""Container mode: the model's own image, for the device's architecture, under what containers enforce exactly
for a device: usable RAM (``--memory`` = ``--memory-swap``, no swap), core count (``--cpuset-cpus`` with
onnxruntime threads matched) and OOM behaviour. Latency in the container is the host's, not the device's: only
limits are simulated; an arm64 image on an amd64 host runs under emulation and gives a memory fit only."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from ..core.card import ModelCard
from ..core.errors import BenchError
from ..core.images import arch_name
from ..core.profiles import DeviceProfile
from ..engine import applied_limits, emulator_baseline, run_limited
from ..store import Store


def model_image(card: ModelCard, store: Store, docker: Any, progress: Any = None, arch: str | None = None) -> str:
    """The newest image built for ``card`` for ``arch`` (default: this engine's), built now if there is none."""
    from ..image.builder import build_image, image_tag

    arch = arch or arch_name(docker.info().get("Architecture", ""))
    tag = image_tag(card.name, card.version, arch)
    try:
        docker.images.get(tag)
        return tag
    except Exception:
        return build_image(card.ref, f"linux/{arch}", store=store, client=docker, progress=progress).tag


def run_in_container(image: str, device: DeviceProfile, docker: Any, seconds: float = 2.0,
                     cores_available: int | None = None) -> dict[str, Any]:
    """Run the in-image benchmark under the device's limits; an OOM kill is a result, not an error.

    An image of another architecture runs under emulation: it checks that the model fits the device's RAM (the
    limit is raised by the measured idle memory of QEMU and python3, so the model gets the device's RAM) and
    never reports latency, which under QEMU says nothing of a board."""
    host_cores = cores_available or len(os.sched_getaffinity(0))  # the engine's machine (a board over SSH)
    cores = min(device.cores, host_cores)
    found = docker.images.get(image)
    emulated = found.attrs.get("Architecture") != arch_name(docker.info().get("Architecture", ""))
    memory = int(device.usable_ram_mb * 2**20)
    baseline = emulator_baseline(docker, found, memory) if emulated else None
    limit = memory + int((baseline or 0) * 2**20)
    limits = {"memory_mb": round(device.usable_ram_mb), "cpuset": f"0-{cores - 1}" if cores > 1 else "0",
              "threads": cores, "cores_capped": device.cores > host_cores, "emulated": emulated,
              "emulator_baseline_mb": baseline}
    container = run_limited(
        docker, image, memory=limit, cpuset=limits["cpuset"], network="none",
        name=f"edgebench-bench-{uuid.uuid4().hex[:12]}", labels={"org.edgebench.bench": device.name},
        command=["-m", "edgebench_serve.bench", "--threads", str(cores), "--seconds",
                 str(min(seconds, 0.5) if emulated else seconds), *(["--warmup", "2"] if emulated else [])],
        entrypoint=["python3"],
    )
    try:
        limits["applied"] = applied_limits(container)
        status = container.wait(timeout=max(120, seconds * 20) * (5 if emulated else 1))
        container.reload()
        logs = container.logs().decode(errors="replace")
        under = f" under emulation (the limit raised by QEMU's idle {baseline or 0:.0f} MB)" if emulated else ""
        if container.attrs["State"].get("OOMKilled") or status.get("StatusCode") == 137:
            return {**limits, "status": "oom",
                    "message": f"does not fit in {limits['memory_mb']} MB: killed for running out of memory{under}"}
        if status.get("StatusCode") != 0:
            return {**limits, "status": "error",
                    "message": f"the benchmark exited with code {status.get('StatusCode')}: {logs.strip()[-500:]}"}
        try:
            result = json.loads(logs.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise BenchError(f"the in-container benchmark printed no result: {logs[-500:]}") from exc
        if emulated:  # a memory fit only: no latency from an emulator
            result = {"peak_memory_mb": result.get("peak_memory_mb"), "threads": result.get("threads")}
        return {**limits, "status": "ok", **result}
    finally:
        container.remove(force=True)
