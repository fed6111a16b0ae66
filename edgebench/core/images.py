"""Results of the image steps: a built image (ImageRef) and what testing it found (ImageTestReport)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any

from . import render
from .errors import InvalidInputError

#: Platforms edgebench builds for, with the wheel tag pip resolves the runtime for (glibc 2.28: Debian 10+,
#: Ubuntu 20.04+, Raspberry Pi OS Bookworm arm64, JetPack 5). There are no onnxruntime wheels for 32-bit ARM
#: or musl (Alpine).
PLATFORMS = {"linux/amd64": "manylinux_2_28_x86_64", "linux/arm64": "manylinux_2_28_aarch64"}


_MACHINES = {"x86_64": "amd64", "aarch64": "arm64"}


def arch_name(machine: str) -> str:
    """The OCI architecture name of a kernel machine name (``x86_64`` -> ``amd64``); others unchanged."""
    return _MACHINES.get(machine, machine)


def parse_platform(platform: object) -> str:
    """Normalise ``linux/amd64``, ``amd64``, ``linux/arm64``, ``arm64``, ``aarch64``, ``x86_64``."""
    aliases = {"amd64": "linux/amd64", "x86_64": "linux/amd64", "arm64": "linux/arm64", "aarch64": "linux/arm64",
               "linux/arm64/v8": "linux/arm64", "linux/x86_64": "linux/amd64", "linux/aarch64": "linux/arm64"}
    if isinstance(platform, str):
        value = aliases.get(platform.strip().lower(), platform.strip().lower())
        if value in PLATFORMS:
            return value
    raise InvalidInputError(
        f"unknown platform {platform!r}: edgebench builds {' and '.join(PLATFORMS)} (onnxruntime publishes no "
        "wheels for 32-bit ARM or musl/Alpine)",
        platform=str(platform),
    )


@dataclass(frozen=True)
class ImageRef:
    """A built image: engine id, tags, size, labels, and how it was built."""

    id: str
    tags: list[str]
    size_bytes: int
    platform: str
    model: str
    labels: dict[str, str]
    context_digest: str
    base_image: str
    build_seconds: float
    build_log: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return self.tags[0] if self.tags else self.id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRef:
        return cls(**data)

    def _repr_html_(self) -> str:
        return (
            f"<div><b>{escape(self.tag)}</b> ({escape(self.platform)}), {self.size_bytes / 2**20:.1f} MiB, "
            f"model {escape(self.model)}, built in {self.build_seconds:.1f} s from {escape(self.base_image)}"
            f"<br><code>{escape(self.id)}</code></div>"
        )


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageTestReport:
    """Outcome of running an image under limits and checking it against its model card."""

    image: str
    model: str
    platform: str
    limits: dict[str, Any]
    checks: list[Check]
    cold_start_s: float | None
    latency_ms: dict[str, float]
    peak_memory_mb: float | None
    logs: str
    emulated: bool = False  # ran under QEMU: functional checks hold, timings and memory say nothing of a board
    emulator_baseline_mb: float | None = None  # idle python3 of the same base under the same emulation

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def output_differences(self) -> dict[str, float]:
        """Per output, the largest difference between this image's answers and the host's golden outputs (for
        labels: how many differed). Under emulation, that is what the target's kernels change."""
        golden = next((c for c in self.checks if c.name == "golden"), None)
        return dict(golden.details.get("max_abs_diff", {})) if golden else {}

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if not self.passed:
            return "image test failed: " + "; ".join(f"{c.name}: {c.message}" for c in self.failures)
        lat = self.latency_ms
        timing = (f"cold start {self.cold_start_s:.2f} s, p50 {lat.get('p50', 0):.2f} ms, p99 "
                  f"{lat.get('p99', 0):.2f} ms")
        if not self.emulated:
            return f"image test passed: {len(self.checks)} checks, {timing}"
        diffs = ", ".join(f"{k} {v:.3g}" for k, v in self.output_differences.items())
        return (f"image test passed under emulation ({self.platform}): {len(self.checks)} functional checks; "
                f"largest difference from the host's outputs: {diffs or '-'}; emulated, not a board's: {timing}, "
                f"peak {_mb(self.peak_memory_mb)} (QEMU and python3 idle: {_mb(self.emulator_baseline_mb)})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageTestReport:
        fields = {k: v for k, v in data.items() if k != "passed"}
        fields["checks"] = [Check(**c) for c in data["checks"]]
        return cls(**fields)

    def _repr_html_(self) -> str:
        rows = [(c.name, "pass" if c.passed else "fail", c.message) for c in self.checks]
        lat = ", ".join(f"{k} {v:.2f} ms" for k, v in self.latency_ms.items())
        emulated = " (emulated: says nothing of a board)" if self.emulated else ""
        diffs = "".join(f"<li>{escape(k)}: {v:.3g}</li>" for k, v in self.output_differences.items())
        return (
            f"<div><p>Image test {render.verdict(self.passed)}: {escape(self.image)} ({escape(self.model)}, "
            f"{escape(self.platform)}{', under emulation' if self.emulated else ''}); cold start "
            f"{render.fmt(self.cold_start_s)} s; latency {escape(lat or '-')}; peak memory "
            f"{_mb(self.peak_memory_mb)}{emulated}</p>"
            + (f"<p>Largest difference from the host's golden outputs:</p><ul>{diffs}</ul>" if diffs else "")
            + render.table(["check", "verdict", "message"], rows)
            + "</div>"
        )


def _mb(value: float | None) -> str:
    return f"{value:.0f} MB" if value is not None else "-"
