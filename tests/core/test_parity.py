import numpy as np
import pytest

from edgebench.core.errors import InvalidInputError
from edgebench.core.parity import ParityReport, Tolerance, compare


def test_equal_outputs_pass():
    ref = {"label": np.array([1, 2, 3]), "p": np.array([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0]])}
    report = compare(ref, dict(ref), {"label": "label", "p": "values"}, Tolerance(), rows=3)
    assert report.passed and report.verdict == "pass"
    assert report.label_agreement == 1.0
    assert report.outputs[1].max_abs_diff == 0.0


def test_one_label_off_fails_and_names_the_row():
    ref = {"label": np.array([1, 2, 3, 4])}
    got = {"label": np.array([1, 2, 9, 4])}
    report = compare(ref, got, {"label": "label"}, Tolerance(), rows=4)
    assert not report.passed
    out = report.outputs[0]
    assert out.label_agreement == 0.75 and out.worst_row == 2 and out.mismatched_rows == 1


def test_label_agreement_tolerance_forgives_what_it_says():
    ref = {"label": np.arange(100)}
    got = {"label": np.r_[np.arange(99), 7]}
    assert compare(ref, got, {"label": "label"}, Tolerance(min_label_agreement=0.99), rows=100).passed
    assert not compare(ref, got, {"label": "label"}, Tolerance(min_label_agreement=1.0), rows=100).passed


def test_values_use_isclose_semantics_and_report_worst_row():
    ref = {"v": np.array([[1.0], [100.0], [0.0]])}
    got = {"v": np.array([[1.0005], [100.05], [0.0]], dtype=np.float32)}
    tol = Tolerance(atol=1e-4, rtol=1e-3)
    report = compare(ref, got, {"v": "values"}, tol, rows=3)
    out = report.outputs[0]
    assert report.passed, out
    assert out.worst_row == 1
    assert out.max_abs_diff == pytest.approx(0.05, rel=1e-3)
    strict = compare(ref, got, {"v": "values"}, Tolerance(atol=0, rtol=1e-4), rows=3)
    assert not strict.passed and strict.outputs[0].mismatched_rows == 2


def test_mismatches_on_the_decision_boundary_are_counted_as_float32_rows():
    ref = {"label": np.array([0, 1, 1, 0])}
    got = {"label": np.array([0, 0, 1, 1])}
    margins = {"label": np.array([0.5, 3e-6, 0.2, 0.4])}
    report = compare(ref, got, {"label": "label"}, Tolerance(), rows=4, margins=margins)
    assert report.float32_rows == 1
    assert report.outputs[0].mismatched_rows == 2
    assert "float32" in report.notes[0]
    assert not report.passed  # reported, not forgiven


def test_shape_mismatch_is_a_failure_with_a_note():
    report = compare({"v": np.zeros((3, 2))}, {"v": np.zeros((3, 3))}, {"v": "values"}, Tolerance(), rows=3)
    assert not report.passed
    assert "shape" in report.notes[0]


def test_report_round_trips_through_json_dict():
    report = compare({"label": np.array([1, 2])}, {"label": np.array([1, 3])}, {"label": "label"},
                     Tolerance(), rows=1, held_out_rows=1)
    again = ParityReport.from_dict(report.to_dict())
    assert again == report
    assert "fail" in report._repr_html_()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"atol": -1}, "atol must be a finite number >= 0"), ({"rtol": float("nan")}, "rtol must be"),
     ({"min_label_agreement": 1.5}, "min_label_agreement must be a finite number >= 0 and <= 1, got 1.5")],
)
def test_bad_tolerance(kwargs, message):
    with pytest.raises(InvalidInputError) as err:
        Tolerance(**kwargs)
    assert message in str(err.value)
