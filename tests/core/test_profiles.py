"""Profile checking and the SLO: the pure half of the device catalog."""

from __future__ import annotations

import pytest

import edgebench as eb
from edgebench.core.profiles import profile_from_dict


def minimal(**changes):
    data = {"name": "board", "arch": "arm64"}
    for key in ("cores", "clock_ghz", "flops_per_cycle", "ram_mb", "os_reserved_mb", "memcpy_mbps",
                "sevenzip_single_mips", "speedup_large", "speedup_small"):
        data[key] = {"value": {"cores": 4, "ram_mb": 1000, "os_reserved_mb": 100}.get(key, 2), "source": "test"}
    data.update(changes)
    return data


def test_a_minimal_profile_and_its_derived_figures():
    profile = profile_from_dict(minimal(), "board.yaml")
    assert profile.usable_ram_mb == 900 and profile.peak_gflops_core == 4
    assert profile.speedup(1, large=True) == 1.0
    assert profile.speedup(4, large=True) == pytest.approx(2.0)
    assert 1.0 < profile.speedup(2, large=True) < 2.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cores": None}, "board.yaml: field 'cores' must be {value: NUMBER, source: TEXT}"),
        ({"memcpy_mbps": {"value": "fast", "source": "x"}},
         "field 'memcpy_mbps' has value 'fast'; it must be a number"),
        ({"memcpy_mbps": {"value": 10}}, "field 'memcpy_mbps' must be {value: NUMBER, source: TEXT}"),
        ({"memcpy_mbps": {"value": 10, "source": ""}}, "field 'memcpy_mbps' needs a source"),
        ({"memcpy_mbps": {"value": -1, "source": "x"}}, "it must be > 0"),
        ({"memcpy_mbps": {"value": 1, "source": "x", "one core)": None}}, "a source with a comma needs quotes"),
        ({"arch": "riscv"}, "field 'arch' is 'riscv'"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"cores": {"value": 2.5, "source": "x"}}, "field 'cores' must be a whole number"),
        ({"os_reserved_mb": {"value": 2000, "source": "x"}}, "leaves no RAM for the model"),
    ],
)
def test_bad_profiles_name_the_file_and_the_field(changes, message):
    data = minimal(**{k: v for k, v in changes.items() if v is not None})
    for key, value in changes.items():
        if value is None:
            data[key] = "4"
    with pytest.raises(eb.ProfileError) as err:
        profile_from_dict(data, "board.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("board.yaml")


def test_missing_field_is_named_with_its_meaning():
    data = minimal()
    del data["sevenzip_single_mips"]
    with pytest.raises(eb.ProfileError, match=r"board.yaml: missing field 'sevenzip_single_mips' \(7-zip"):
        profile_from_dict(data, "board.yaml")


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "20", True])
def test_slo_budgets_must_be_positive_numbers(bad):
    with pytest.raises(eb.InvalidInputError, match="SLO p99_ms must be a finite number > 0"):
        eb.SLO(p99_ms=bad)
    with pytest.raises(eb.InvalidInputError, match="SLO ram_mb must be a finite number > 0"):
        eb.SLO(ram_mb=bad)


def test_slo_without_budgets_is_allowed():
    assert eb.SLO().p99_ms is None
