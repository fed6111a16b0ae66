import edgebench as eb
from edgebench.demo import run_demo


def test_demo_trains_exports_and_reports(store):
    lines = []
    summary = run_demo(store, trees=10, say=lines.append)
    assert summary["model"] == "digits-rf:1" and summary["parity"] == "pass"
    assert summary["accuracy"] > 0.8
    assert eb.get_model("digits-rf").metadata["dataset"] == "sklearn.datasets.load_digits"
    assert any(line.startswith("export: digits-rf:1") for line in lines)
