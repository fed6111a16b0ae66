import edgebench as eb
from edgebench.demo import run_demo


def test_demo_trains_exports_and_reports(store):
    lines = []
    summary = run_demo(store, trees=10, devices=["rpi4-1gb"], containers=False, say=lines.append)
    assert summary["model"] == "digits-rf:1" and summary["parity"] == "pass"
    assert summary["accuracy"] > 0.8
    assert eb.get_model("digits-rf").metadata["dataset"] == "sklearn.datasets.load_digits"
    assert any(line.startswith("export: digits-rf:1") for line in lines)
    assert summary["steps"]["bench"]["rpi4-1gb"]["verdict"] in {"pass", "uncertain"}
    assert summary["gates"] == {"slo": True}
    assert store.runs("digits-rf", step="bench")[0].status in {"passed", "failed"}


def test_demo_without_an_engine_says_what_it_skipped_and_how_to_enable_it(store, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    lines = []
    summary = run_demo(store, trees=5, devices=[], say=lines.append)
    assert summary["skipped"][0].startswith("build, test, publish:")
    skipped = next(line for line in lines if line.startswith("  build, test, publish: skipped"))
    assert "DOCKER_HOST" in skipped


def test_demo_with_the_engine_builds_tests_and_archives(store, engine):
    lines = []
    summary = run_demo(store, trees=10, devices=[], say=lines.append)
    assert summary["gates"] == {"image_test": True} and summary["passed"]
    assert (store.home / "exports" / "digits-rf-1.tar").stat().st_size > 50 * 2**20
    engine.images.remove(summary["steps"]["build"]["linux/amd64"]["image"], force=True)
