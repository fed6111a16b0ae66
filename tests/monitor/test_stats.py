"""The drift statistics on counts, checked against scipy, and the calibration that keeps false alarms rare."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from edgebench.core.errors import InvalidInputError
from edgebench.monitor import stats
from edgebench.monitor.sources import seconds


def test_chi_square_equals_scipy_on_random_counts(rng):
    for _ in range(50):
        bins = int(rng.integers(3, 14))
        reference = rng.integers(0, 400, bins)
        window = rng.integers(0, 60, bins)
        reference[rng.integers(0, bins)] = 0  # a bin the reference never saw (kept when the window has it)
        statistic, p, dof = stats.chi_square(reference, window)
        table = np.vstack([reference, window])
        table = table[:, table.sum(axis=0) > 0]
        want = chi2_contingency(table, correction=False)
        assert statistic == pytest.approx(want.statistic, rel=1e-9)
        assert p == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)
        assert dof == want.dof


def test_chi_square_with_nothing_to_compare_is_not_significant():
    assert stats.chi_square(np.array([5, 0, 0]), np.array([0, 0, 0])) == (0.0, 1.0, 0)
    assert stats.chi_square(np.array([5, 0]), np.array([7, 0])) == (0.0, 1.0, 0)  # one bin holds everything


def test_jensen_shannon_equals_scipy_on_the_smoothed_shares(rng):
    reference, window = rng.integers(0, 200, (2, 30, 9))
    got = stats.js_distance(reference, window)
    want = [jensenshannon(stats.shares(r), stats.shares(w), base=2) for r, w in zip(reference, window, strict=True)]
    assert got == pytest.approx(want, rel=1e-9)
    assert ((got >= 0) & (got <= 1)).all()


def test_psi_is_zero_for_equal_shares_symmetric_and_grows_with_the_shift():
    reference = np.array([100, 200, 300, 200, 100])
    assert stats.psi(reference, reference * 3) == pytest.approx(0.0, abs=1e-5)  # smoothing only
    window = np.array([50, 150, 300, 250, 150])
    assert stats.psi(reference, window) == pytest.approx(stats.psi(window, reference))
    farther = np.array([10, 90, 250, 350, 200])
    assert stats.psi(reference, farther) > stats.psi(reference, window) > 0.02
    # by hand: sum((q - p) * ln(q / p)) on the smoothed shares
    p, q = (reference + 0.5) / (900 + 2.5), (window + 0.5) / (900 + 2.5)
    assert stats.psi(reference, window) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))


def test_holm_adjusts_step_down_and_keeps_the_order():
    # by hand: sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> 0.06 (monotone)
    assert stats.holm(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])


def test_calibrated_thresholds_shrink_with_the_window_and_hold_their_rate(rng):
    reference = [rng.integers(50, 500, 12) for _ in range(20)]
    found = stats.calibrate(reference, (100, 1000), repeats=400)
    assert found["100"]["psi"] > 3 * found["1000"]["psi"]  # PSI of pure noise falls like 1/N
    # fresh unshifted windows of 100 rows exceed the 99% threshold about 1% of the time
    fresh = np.random.default_rng(7)
    over = [stats.psi(r, fresh.multinomial(100, r / r.sum(), size=500)) > found["100"]["psi"] for r in reference]
    assert 0.002 < np.mean(over) < 0.03
    assert stats.threshold(found, 120) == found["100"] and stats.threshold(found, 5000) == found["1000"]


@pytest.mark.parametrize(("text", "want"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800),
                                            ("1.5h", 5400), (45, 45.0)])
def test_window_durations(text, want):
    assert seconds(text) == want


@pytest.mark.parametrize("bad", ["", "1w", "h", "-1h", "0s", 0, -5, True, None])
def test_a_window_that_is_not_a_duration_is_refused(bad):
    with pytest.raises(InvalidInputError, match="is not a duration like 90s, 30m, 1h or 2d"):
        seconds(bad)
