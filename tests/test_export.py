"""export_model: every supported kind of estimator, parity, and every bad input a user can give."""

from __future__ import annotations

import numpy as np
import pytest

import edgebench as eb

from .helpers import require


def test_classifier_exports_labels_and_probabilities(store, digits, digits_rf):
    x, _ = digits
    card = eb.export_model(digits_rf, x[:100], "digits-rf", held_out=x[100:150], metadata={"accuracy": 0.97})
    assert card.ref == "digits-rf:1"
    assert [(t.name, t.datatype, t.shape) for t in card.inputs] == [("X", "FP32", [-1, 64])]
    assert [(t.name, t.datatype) for t in card.outputs] == [("label", "INT64"), ("probabilities", "FP32")]
    assert card.opset["ai.onnx"] == 17
    assert card.parity.passed and card.parity.rows == 100 and card.parity.held_out_rows == 50
    assert card.parity.label_agreement == 1.0
    assert card.metadata == {"accuracy": 0.97}
    assert set(card.versions) >= {"onnx", "skl2onnx", "scikit-learn", "onnxruntime"}
    assert card.size_bytes == store.model_path(card).stat().st_size
    # golden samples replay: the first row's label is the model's prediction for it
    first = card.golden[0]
    assert first.inputs[0]["shape"] == [1, 64]
    assert first.outputs[0]["data"] == [int(digits_rf.predict(x[:1])[0])]
    assert len(card.golden) == eb.export.GOLDEN_ROWS


def test_export_is_recorded_as_a_step_run(store, digits, digits_rf):
    x, _ = digits
    card = eb.export_model(digits_rf, x[:20], "digits-rf")
    (run,) = store.runs("digits-rf", step="export")
    assert run.status == "passed" and run.version == card.version
    assert run.outputs["parity"]["passed"] is True


def test_mlp_regressor_isolation_forest_and_pipelines(store, digits):
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import Ridge
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = digits
    models = {
        "mlp": MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0).fit(x, y),
        "ridge": Ridge().fit(x, y.astype(float)),
        "iforest": IsolationForest(n_estimators=10, random_state=0).fit(x),
        "scaled-pca-mlp": make_pipeline(
            StandardScaler(), PCA(16), MLPClassifier(max_iter=200, random_state=0)
        ).fit(x, y),
    }
    outputs = {}
    for name, model in models.items():
        card = eb.export_model(model, x[:50], name)
        assert card.parity.passed, (name, card.parity.summary())
        outputs[name] = [o.name for o in card.outputs]
    assert outputs["ridge"] == ["variable"]
    assert outputs["iforest"] == ["label", "scores"]
    assert eb.get_model("scaled-pca-mlp").estimator == "Pipeline(StandardScaler, PCA, MLPClassifier)"


def test_column_transformer_on_mixed_columns(store, rng):
    pd = require("pandas", "pip install -e .[dev] installs it")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    n = 120
    frame = pd.DataFrame({
        "temperature": rng.normal(60, 10, n),
        "vibration": rng.normal(0.2, 0.05, n),
        "machine": rng.choice(["press", "lathe", "mill"], n),
    })
    y = (frame.temperature > 62).astype(int) ^ (frame.machine == "mill")
    model = Pipeline([
        ("prep", ColumnTransformer([("num", StandardScaler(), ["temperature", "vibration"]),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["machine"])])),
        ("clf", LogisticRegression()),
    ]).fit(frame, y)
    card = eb.export_model(model, frame.iloc[:80], "machines", held_out=frame.iloc[80:])
    assert [(t.name, t.datatype, t.shape) for t in card.inputs] == [
        ("temperature", "FP32", [-1, 1]), ("vibration", "FP32", [-1, 1]), ("machine", "BYTES", [-1, 1])]
    assert card.parity.passed, card.parity.summary()
    assert card.golden[0].inputs[2]["data"] == [frame.machine[0]]


def test_reexporting_identical_bytes_keeps_the_version(store, digits, digits_rf):
    x, _ = digits
    first = eb.export_model(digits_rf, x[:20], "digits-rf")
    again = eb.export_model(digits_rf, x[:20], "digits-rf")
    assert again.version == first.version == 1
    assert [c.version for c in store.list("digits-rf")] == [1]


def test_versions_increase_per_name(store, digits):
    from sklearn.tree import DecisionTreeClassifier

    x, y = digits
    versions = [eb.export_model(DecisionTreeClassifier(max_depth=d).fit(x, y), x[:20], "tree").version
                for d in (2, 3, 4)]
    assert versions == [1, 2, 3]
    assert eb.get_model("tree:2").version == 2
    assert eb.get_model("tree").version == 3


def test_failing_parity_raises_stores_the_report_and_no_model(store, digits):
    from sklearn.neural_network import MLPClassifier

    x, y = digits
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=100, random_state=0).fit(x, y)
    strict = eb.Tolerance(atol=0.0, rtol=0.0)
    with pytest.raises(eb.ParityError) as err:
        eb.export_model(mlp, x[:100], "strict-mlp", tolerance=strict)
    message = str(err.value)
    assert "parity failed for 'strict-mlp'" in message
    assert "probabilities: max abs diff" in message and "Nothing was stored" in message
    assert err.value.report.outputs[1].max_abs_diff > 0
    assert store.list() == []
    (run,) = store.runs("strict-mlp")
    assert run.status == "failed" and run.outputs["parity"]["passed"] is False


def test_allow_mismatch_stores_the_failing_report(store, digits):
    from sklearn.neural_network import MLPClassifier

    x, y = digits
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=100, random_state=0).fit(x, y)
    card = eb.export_model(mlp, x[:100], "loose-mlp", tolerance=eb.Tolerance(atol=0, rtol=0), allow_mismatch=True)
    assert card.parity.passed is False
    assert store.runs("loose-mlp")[0].status == "mismatch-allowed"


def test_float32_label_flips_are_reported_not_hidden(store):
    from sklearn.linear_model import LogisticRegression

    x = np.r_[np.linspace(-1, 1, 50)].reshape(-1, 1)
    y = (x[:, 0] > 0.1).astype(int)
    model = LogisticRegression(C=1e6).fit(x, y)
    boundary = -model.intercept_[0] / model.coef_[0, 0]
    near = boundary + np.arange(-200, 200) * np.spacing(boundary) * 4
    with pytest.raises(eb.ParityError) as err:
        eb.export_model(model, near.reshape(-1, 1), "boundary")
    report = err.value.report
    assert report.outputs[0].mismatched_rows > 0
    assert report.float32_rows > 0
    assert "float32" in str(err.value)


# -- bad input -----------------------------------------------------------------------------------------


def test_unfitted_estimator(store, digits):
    from sklearn.ensemble import RandomForestClassifier

    with pytest.raises(eb.ExportError, match=r"RandomForestClassifier is not fitted: call \.fit\(X, y\)"):
        eb.export_model(RandomForestClassifier(), digits[0][:5], "unfitted")


def test_unsupported_custom_estimator_names_itself_and_what_is_supported(store, digits):
    from sklearn.base import BaseEstimator, ClassifierMixin

    class MedianVote(ClassifierMixin, BaseEstimator):
        def fit(self, x, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, x):
            return np.full(len(x), self.classes_[0])

    x, y = digits
    with pytest.raises(eb.ExportError) as err:
        eb.export_model(MedianVote().fit(x, y), x[:5], "custom")
    assert "cannot convert MedianVote to ONNX" in str(err.value)
    assert "edgebench exports scikit-learn classifiers, regressors and outlier detectors" in str(err.value)
    assert store.list() == [] and store.runs() == []  # nothing partial stored


def test_not_an_estimator(store):
    with pytest.raises(eb.ExportError, match="expected a fitted scikit-learn estimator or Pipeline, got dict"):
        eb.export_model({"weights": [1, 2]}, np.zeros((2, 2)), "dict")


def test_transformer_alone_is_refused(store, digits):
    from sklearn.preprocessing import StandardScaler

    x, _ = digits
    expected = "StandardScaler has no predict method .* edgebench exports scikit-learn classifiers"
    with pytest.raises(eb.ExportError, match=expected):
        eb.export_model(StandardScaler().fit(x), x[:5], "scaler")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.inf, "has inf at row 3, column 7"),
        (np.nan, "has nan at row 3, column 7"),
    ],
)
def test_sample_with_nan_or_inf(store, digits, digits_rf, bad, message):
    x = digits[0][:10].copy()
    x[3, 7] = bad
    with pytest.raises(eb.SampleError) as err:
        eb.export_model(digits_rf, x, "digits-rf")
    assert message in str(err.value) and "finite numbers only" in str(err.value)


def test_sample_of_strings_where_numbers_are_expected(store, digits_rf):
    with pytest.raises(eb.SampleError, match="holds text .* where the model expects numbers"):
        eb.export_model(digits_rf, np.full((3, 64), "seven"), "digits-rf")


def test_dataframe_with_text_column_where_numbers_are_expected(store, digits, digits_rf):
    pd = require("pandas", "pip install -e .[dev] installs it")
    frame = pd.DataFrame(digits[0][:5], columns=[f"p{i}" for i in range(64)])
    frame["p3"] = "high"
    with pytest.raises(eb.SampleError, match="RandomForestClassifier rejected the sample"):
        eb.export_model(digits_rf, frame, "digits-rf")


def test_zero_row_sample(store, digits_rf):
    with pytest.raises(eb.SampleError, match="sample has no rows"):
        eb.export_model(digits_rf, np.zeros((0, 64)), "digits-rf")


def test_one_dimensional_sample(store, digits, digits_rf):
    with pytest.raises(eb.SampleError, match=r"has shape \(64,\); it must be 2-D"):
        eb.export_model(digits_rf, digits[0][0], "digits-rf")


def test_sample_with_wrong_feature_count(store, digits_rf):
    with pytest.raises(eb.SampleError, match="rejected the sample: X has 3 features"):
        eb.export_model(digits_rf, np.zeros((2, 3)), "digits-rf")


def test_held_out_with_other_columns(store, digits, digits_rf):
    x = digits[0]
    with pytest.raises(eb.SampleError, match="held_out has columns X FP32\\[-1, 10\\]"):
        eb.export_model(digits_rf, x[:5], "digits-rf", held_out=x[:5, :10])


@pytest.mark.parametrize("name", ["", "a/b", "..", "x\x07"])
def test_bad_names_are_refused_before_any_work(store, digits, digits_rf, name):
    with pytest.raises(eb.InvalidNameError):
        eb.export_model(digits_rf, digits[0][:5], name)
    assert store.runs() == []


def test_metadata_must_be_json(store, digits, digits_rf):
    with pytest.raises(eb.InvalidInputError, match="metadata must be JSON-serialisable"):
        eb.export_model(digits_rf, digits[0][:5], "digits-rf", metadata={"when": object()})
