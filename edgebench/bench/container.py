"""Container mode: the model's own image under what containers enforce exactly for a device: usable RAM
(``--memory`` = ``--memory-swap``, no swap), core count (``--cpuset-cpus`` with onnxruntime threads matched)
and OOM behaviour. Latency in the container is the host's, not the device's: only limits are simulated."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from ..core.card import ModelCard
from ..core.errors import BenchError
from ..core.images import arch_name
from ..core.profiles import DeviceProfile
from ..engine import applied_limits, run_limited
from ..store import Store


def model_image(card: ModelCard, store: Store, docker: Any, progress: Any = None) -> str:
    """The newest image built for ``card`` on this host's architecture, built now if there is none."""
    from ..image.builder import build_image, image_tag

    arch = arch_name(docker.info().get("Architecture", ""))
    tag = image_tag(card.name, card.version, arch)
    try:
        docker.images.get(tag)
        return tag
    except Exception:
        return build_image(card.ref, f"linux/{arch}", store=store, client=docker, progress=progress).tag


def run_in_container(image: str, device: DeviceProfile, docker: Any, seconds: float = 2.0) -> dict[str, Any]:
    """Run the in-image benchmark under the device's limits; an OOM kill is a result, not an error."""
    host_cores = len(os.sched_getaffinity(0))
    cores = min(device.cores, host_cores)
    memory = int(device.usable_ram_mb * 2**20)
    limits = {"memory_mb": round(device.usable_ram_mb), "cpuset": f"0-{cores - 1}" if cores > 1 else "0",
              "threads": cores, "cores_capped": device.cores > host_cores}
    container = run_limited(
        docker, image, memory=memory, cpuset=limits["cpuset"], network="none",
        name=f"edgebench-bench-{uuid.uuid4().hex[:12]}", labels={"org.edgebench.bench": device.name},
        command=["-m", "edgebench_serve.bench", "--threads", str(cores), "--seconds", str(seconds)],
        entrypoint=["python3"],
    )
    try:
        limits["applied"] = applied_limits(container)
        status = container.wait(timeout=max(120, seconds * 20))
        container.reload()
        logs = container.logs().decode(errors="replace")
        if container.attrs["State"].get("OOMKilled") or status.get("StatusCode") == 137:
            return {**limits, "status": "oom",
                    "message": f"does not fit in {limits['memory_mb']} MB: killed for running out of memory"}
        if status.get("StatusCode") != 0:
            return {**limits, "status": "error",
                    "message": f"the benchmark exited with code {status.get('StatusCode')}: {logs.strip()[-500:]}"}
        try:
            result = json.loads(logs.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise BenchError(f"the in-container benchmark printed no result: {logs[-500:]}") from exc
        return {**limits, "status": "ok", **result}
    finally:
        container.remove(force=True)
