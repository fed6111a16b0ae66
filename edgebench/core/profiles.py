"""Device profiles: the figures that describe an edge device, each with its source, checked when loaded.

A profile is a mapping of text fields (``name``, ``title``, ``arch``, ``cpu``, ``costs``) and *figures*, each written as
``{value: 2330, source: "sbc-bench 3OBF", unverified: false}``. Reading files is the loader's business
(``edgebench.profiles``); this module only checks and computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ProfileError

#: Figures every profile needs (after ``extends`` is applied), with their meaning.
REQUIRED = {
    "cores": "cores the model may use",
    "clock_ghz": "core clock (GHz)",
    "flops_per_cycle": "FP32 FLOPs per cycle per core",
    "ram_mb": "RAM as seen by Linux (MiB)",
    "os_reserved_mb": "RAM the OS and its services keep (MiB)",
    "memcpy_mbps": "memcpy bandwidth, one core (MB/s, tinymembench definition)",
    "sevenzip_single_mips": "7-zip benchmark rating, one thread (MIPS)",
    "speedup_large": "speed-up from 1 thread to all cores, large conv net",
    "speedup_small": "speed-up from 1 thread to all cores, small mobile net",
}
OPTIONAL = {
    "memset_mbps": "memset bandwidth (MB/s)",
    "sevenzip_multi_mips": "7-zip benchmark rating, all threads (MIPS)",
    "dram_bandwidth_gbps": "theoretical DRAM bandwidth (GB/s)",
    "power_w": "power under load (W)",
}
TEXT = ("name", "title", "arch", "cpu", "costs")  # costs: the board of profiles/costs.json that stands for it
ARCHES = ("arm64", "amd64")


@dataclass(frozen=True)
class Figure:
    value: float
    source: str
    unverified: bool = False


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    title: str
    arch: str
    cpu: str
    figures: dict[str, Figure]
    path: str = ""
    extends: str | None = None
    measured: bool = False
    costs: str = ""  # the board whose fitted per-operator costs predict this device ("" = none)

    def value(self, key: str) -> float:
        return self.figures[key].value

    @property
    def cores(self) -> int:
        return int(self.value("cores"))

    @property
    def usable_ram_mb(self) -> float:
        """RAM a model container may use: what Linux sees minus what the OS keeps."""
        return self.value("ram_mb") - self.value("os_reserved_mb")

    @property
    def peak_gflops_core(self) -> float:
        return self.value("clock_ghz") * self.value("flops_per_cycle")

    @property
    def unverified(self) -> list[str]:
        return sorted(k for k, f in self.figures.items() if f.unverified)

    def speedup(self, threads: int, large: bool) -> float:
        """Speed-up at ``threads`` threads: Amdahl's law fitted to the published all-core speed-up."""
        n = self.cores
        s = self.value("speedup_large" if large else "speedup_small")
        threads = max(1, min(threads, n))
        if n == 1 or threads == 1:
            return 1.0
        parallel = (1 - 1 / s) / (1 - 1 / n)
        return 1 / ((1 - parallel) + parallel / threads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "arch": self.arch, "cpu": self.cpu, "path": self.path,
            "extends": self.extends, "measured": self.measured, "usable_ram_mb": self.usable_ram_mb,
            "costs": self.costs,
            "figures": {k: {"value": f.value, "source": f.source, "unverified": f.unverified}
                        for k, f in sorted(self.figures.items())},
        }


def merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``parent`` (``extends``): the child's fields win; ``extends`` is the child's."""
    return {**parent, **child}


def profile_from_dict(data: Any, path: str = "<memory>") -> DeviceProfile:
    """Check a profile mapping (``extends`` already applied) and build the profile; errors name file and field."""
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping of fields, got {type(data).__name__}", path=path)
    for key in ("name", "arch"):
        if key not in data:
            raise ProfileError(f"{path}: missing field {key!r}", path=path, field=key)
    for key in TEXT:
        if key in data and not isinstance(data[key], str):
            raise ProfileError(f"{path}: field {key!r} must be text, got {type(data[key]).__name__}",
                               path=path, field=key)
    if data["arch"] not in ARCHES:
        raise ProfileError(f"{path}: field 'arch' is {data['arch']!r}; use one of {list(ARCHES)}", path=path,
                           field="arch")
    known = set(REQUIRED) | set(OPTIONAL) | set(TEXT) | {"extends"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"{path}: unknown field {unknown[0]!r}; known fields: {sorted(known)}", path=path,
                           field=unknown[0])
    figures = {}
    for key in (*REQUIRED, *OPTIONAL):
        if key not in data:
            if key in REQUIRED:
                raise ProfileError(f"{path}: missing field {key!r} ({REQUIRED[key]})", path=path, field=key)
            continue
        figures[key] = _figure(data[key], key, path)
    if figures["cores"].value < 1 or figures["cores"].value != int(figures["cores"].value):
        raise ProfileError(f"{path}: field 'cores' must be a whole number >= 1", path=path, field="cores")
    if figures["os_reserved_mb"].value >= figures["ram_mb"].value:
        raise ProfileError(f"{path}: field 'os_reserved_mb' leaves no RAM for the model", path=path,
                           field="os_reserved_mb")
    return DeviceProfile(
        name=data["name"], title=str(data.get("title", data["name"])), arch=data["arch"],
        cpu=str(data.get("cpu", "")),
        figures=figures, path=path, extends=data.get("extends"), costs=str(data.get("costs", "")),
    )


def _figure(raw: Any, key: str, path: str) -> Figure:
    if not isinstance(raw, dict) or "value" not in raw or "source" not in raw:
        raise ProfileError(
            f"{path}: field {key!r} must be {{value: NUMBER, source: TEXT}} (optionally unverified: true), "
            f"got {raw!r}", path=path, field=key,
        )
    extra = sorted(set(raw) - {"value", "source", "unverified"})
    if extra:
        raise ProfileError(f"{path}: field {key!r} has unknown part {extra[0]!r} (a source with a comma needs "
                           "quotes)", path=path, field=key)
    value, source = raw["value"], raw["source"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{path}: field {key!r} has value {value!r}; it must be a number", path=path, field=key)
    if value <= 0:
        raise ProfileError(f"{path}: field {key!r} has value {value}; it must be > 0", path=path, field=key)
    if not isinstance(source, str) or not source.strip():
        raise ProfileError(f"{path}: field {key!r} needs a source (where the figure comes from)", path=path,
                           field=key)
    unverified = raw.get("unverified", False)
    if not isinstance(unverified, bool):
        raise ProfileError(f"{path}: field {key!r} has unverified {unverified!r}; use true or false", path=path,
                           field=key)
    return Figure(float(value), source, unverified)


@dataclass(frozen=True)
class SLO:
    """A service-level objective: a p99 latency budget and a RAM budget; ``None`` means no budget."""

    p99_ms: float | None = None
    ram_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .errors import InvalidInputError
        from .numbers import number

        for key in ("p99_ms", "ram_mb"):
            value = getattr(self, key)
            if value is None:
                continue
            try:
                number(value, f"SLO {key}", above=0)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{exc.message} (or None for no budget)", field=key) from None
