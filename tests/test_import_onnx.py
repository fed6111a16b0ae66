"""import_onnx: ONNX files made elsewhere enter the store with golden samples."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgebench as eb


@pytest.fixture
def conv_onnx(tmp_path):
    """A small convolutional network as a PyTorch export would write it: NCHW image in, scores out."""
    rng = np.random.default_rng(1)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 1, 3, 3], rng.normal(size=36).astype(np.float32))
    fc = helper.make_tensor("fc", TensorProto.FLOAT, [4 * 6 * 6, 3], rng.normal(size=432).astype(np.float32))
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny-cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, fc],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch",
                              producer_version="2.3")
    model.ir_version = 8
    path = tmp_path / "tiny-cnn.onnx"
    onnx.save(model, path)
    return path


def test_import_keeps_schema_and_golden_outputs(store, conv_onnx):
    sample = np.random.default_rng(2).normal(size=(3, 1, 8, 8))
    card = eb.import_onnx(conv_onnx, sample, "tiny-cnn", metadata={"framework": "pytorch"})
    assert card.ref == "tiny-cnn:1" and card.source == "onnx"
    assert card.estimator == "ONNX from pytorch 2.3"
    assert card.parity is None
    assert [(t.name, t.datatype, t.shape) for t in card.inputs] == [("image", "FP32", [-1, 1, 8, 8])]
    assert [(t.name, t.shape) for t in card.outputs] == [("scores", [-1, 3])]
    assert len(card.golden) == 3 and card.golden[0].outputs[0]["shape"] == [1, 3]
    assert store.runs("tiny-cnn")[0].step == "import"


def test_sample_as_dict_by_input_name(store, conv_onnx):
    card = eb.import_onnx(conv_onnx, {"image": np.zeros((1, 1, 8, 8), np.float32)}, "tiny-cnn")
    assert card.golden[0].outputs[0]["data"] == [0.0, 0.0, 0.0]


def test_file_that_is_not_onnx(store, tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model")
    with pytest.raises(eb.ExportError, match="is not a valid ONNX model"):
        eb.import_onnx(path, np.zeros((1, 2)), "notes")


def test_truncated_onnx_file(store, conv_onnx, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(conv_onnx.read_bytes()[:700])
    with pytest.raises(eb.ExportError, match=r"cut.onnx is not a valid ONNX model \(truncated, or not ONNX"):
        eb.import_onnx(cut, np.zeros((1, 1, 8, 8)), "cut")
    assert store.list() == []


def test_missing_file(store, tmp_path):
    with pytest.raises(eb.ExportError, match="ONNX file not found: .*absent.onnx"):
        eb.import_onnx(tmp_path / "absent.onnx", np.zeros((1, 2)), "absent")


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (np.zeros((2, 64)), r"input 'image' expects shape \[-1, 1, 8, 8\] but the sample has \[2, 64\]"),
        ({"pixels": np.zeros((1, 1, 8, 8))}, r"sample inputs \['pixels'\] do not match the model's inputs"),
        (np.full((1, 1, 8, 8), "x"), "input 'image' expects tensor\\(float\\) but the sample holds <U1"),
        (np.zeros((0, 1, 8, 8)), "input 'image' has no rows"),
    ],
)
def test_sample_that_does_not_match_the_inputs(store, conv_onnx, sample, message):
    with pytest.raises(eb.SampleError, match=message):
        eb.import_onnx(conv_onnx, sample, "tiny-cnn")
