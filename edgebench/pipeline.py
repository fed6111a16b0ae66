"""The edge pipeline without a notebook: bench, build, test, publish, with the same gates as the notebooks.

``run_pipeline`` reads like its steps. Each gate (SLO per device, image test) stops the flow when it fails;
``PipelineResult.passed`` is what the CLI turns into an exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .core.profiles import SLO
from .progress import Silent
from .store import Store, open_store

#: Bench verdicts that stop a pipeline; "uncertain" passes with a warning (the interval straddles the budget).
FAILING_VERDICTS = ("fail", "does not fit")


def slo_gate(report: Any) -> bool:
    """The SLO gate of a BenchReport: no device fails or does not fit ("uncertain" passes with a warning)."""
    return not any(d.verdict in FAILING_VERDICTS for d in report.devices)


@dataclass
class PipelineResult:
    model: str
    gates: dict[str, bool] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.gates.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def run_pipeline(
    model: str,
    devices: Sequence[str],
    slo: SLO,
    *,
    registry: str | None = None,
    archive: str | None = None,
    tags: Sequence[str] = (),
    platforms: Sequence[str] | None = None,
    sign: str | None = None,
    containers: bool = True,
    skip_without_engine: bool = False,
    memory: str = "512m",
    store: Store | str | None = None,
    client: Any = None,
    say: Callable[[str], Any] = print,
) -> PipelineResult:
    """Bench ``model`` on ``devices`` against ``slo``; then build, test (under ``memory``) and publish to
    ``registry`` (REGISTRY/REPOSITORY) or ``archive`` (a .tar path) when an engine answers.

    Images are built and tested for the architectures of the devices' profiles (``platforms`` overrides, e.g.
    ``["linux/amd64", "linux/arm64"]``); foreign ones run under emulation. Several platforms publish as one
    multi-arch image. ``sign`` (a cosign private key) signs and attests what was published: gate ``signed``.

    Without an engine, the container steps are skipped with the reason, unless a registry or archive was asked
    for: then the missing engine is a failure (``skip_without_engine=True`` skips anyway, as the demo does).
    """
    from .bench import benchmark

    store = open_store(store)
    card = store.get(model)
    result = PipelineResult(model=card.ref)
    if devices:
        report = benchmark(card.ref, list(devices), slo, seconds=1.0, store=store, progress=Silent())
        assert not isinstance(report, list)
        result.steps["bench"] = {d.device: {"verdict": d.verdict, "p99_ms": d.interval_p99_ms,
                                            "ram_mb": d.ram_needed_mb, "reasons": d.reasons} for d in report.devices}
        for d in report.devices:
            say(f"bench {d.device}: p99 {d.interval_p99_ms[0]:.3f}-{d.interval_p99_ms[1]:.3f} ms, RAM "
                f"{d.ram_needed_mb:.0f}/{d.usable_ram_mb:.0f} MB: {d.verdict}")
            if d.verdict == "uncertain":
                result.warnings.append(f"{d.device}: {'; '.join(d.reasons)}")
        result.gates["slo"] = slo_gate(report)
        if not result.gates["slo"]:
            say("gate slo: failed; stopping before the image steps")
            return result
    if containers:
        chosen = platforms_for(devices, platforms)
        _containers(card.ref, chosen, result, registry, archive, tags, memory, skip_without_engine, store, client,
                    say, sign)
    return result


def platforms_for(devices: Sequence[str], platforms: Sequence[str] | None = None) -> list[str]:
    """The platforms to build: given, else the architectures of the devices' profiles, else this machine's."""
    from .core.images import parse_platform
    from .emulation import host_arch
    from .profiles import load_profile

    if platforms:
        return sorted({parse_platform(p) for p in platforms})
    arches = {load_profile(d).arch for d in devices if d != "host"} or {host_arch()}
    return sorted(f"linux/{a}" for a in arches)


def _containers(ref: str, platforms: list[str], result: PipelineResult, registry: str | None, archive: str | None,
                tags: Sequence[str], memory: str, skip_without_engine: bool, store: Store, client: Any,
                say: Callable[[str], Any], sign: str | None = None) -> None:
    from .core.errors import SigningError
    from .engine import docker_client, engine_available
    from .image.builder import build_image
    from .image.tester import test_image
    from .publish import publish

    if client is None:
        ok, why = engine_available()
        if not ok:
            if (registry or archive) and not skip_without_engine:
                result.gates["engine"] = False
                say(f"gate engine: failed: {why}")
            else:
                result.skipped.append(f"build, test, publish: {why}")
                say(f"build, test, publish: skipped: {why}")
            return
    docker = docker_client(client)
    images = []
    result.steps["build"], result.steps["test"] = {}, {}
    for platform in platforms:
        image = build_image(ref, platform, store=store, client=docker, progress=Silent())
        images.append(image)
        result.steps["build"][platform] = {"image": image.tag, "id": image.id,
                                           "size_mb": round(image.size_bytes / 2**20, 1)}
        say(f"build {platform}: {image.tag}, {image.size_bytes / 2**20:.0f} MiB, {image.build_seconds:.1f} s")
        report = test_image(image, memory=memory, store=store, client=docker, progress=Silent())
        result.steps["test"][platform] = {"passed": report.passed, "emulated": report.emulated,
                                          "summary": report.summary(), "output_differences": report.output_differences}
        say(f"test {platform}: {report.summary()}")
    result.gates["image_test"] = all(t["passed"] for t in result.steps["test"].values())
    if not result.gates["image_test"]:
        return
    destination = registry or (f"oci-archive:{archive}" if archive else None)
    if destination is None:
        result.skipped.append("publish: no registry or archive given")
        return
    if sign and archive and not registry:
        result.gates["signed"] = False
        say("gate signed: failed: a signed archive needs a registry to sign in; give a registry too")
        return
    try:
        published = publish(images if len(images) > 1 else images[0], destination, list(tags), sign=sign,
                            store=store, client=docker, progress=Silent())
    except SigningError as exc:
        result.gates["signed"] = False
        say(f"gate signed: failed: {exc}")
        return
    result.steps["publish"] = {"references": published.references, "digest": published.digest,
                               "platforms": sorted(published.platforms) or [images[0].platform],
                               "signed": published.signed}
    if sign:
        result.gates["signed"] = published.signed
    say("publish: " + ", ".join(published.references) + (" (signed and attested)" if published.signed else ""))
