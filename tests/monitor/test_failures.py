"""What a user sees when monitoring cannot go on: an old card, a source that is unreachable or not Prometheus,
counts of another model, a spool that is not one, bad windows."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest

import edgebench as eb
from edgebench.core.card import ModelCard
from edgebench.serve.monitor import Monitor

from .load import readings


@pytest.fixture
def dt(store, digits):
    from sklearn.tree import DecisionTreeClassifier

    x, y = digits
    return eb.export_model(DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y), x[:50], "dt",
                           held_out=x[50:300])


@pytest.fixture
def web(tmp_path):
    """A plain web server over ``tmp_path/web``: answers, but is neither Prometheus nor edgebench."""
    root = tmp_path / "web"
    (root / "api" / "v1").mkdir(parents=True)
    (root / "api" / "v1" / "query").write_text("<html>a wiki</html>")
    (root / "metrics").write_text("<html>a wiki</html>\n")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_card_from_before_monitoring_says_how_to_re_export(store, dt):
    old = {k: v for k, v in dt.to_dict().items() if k != "monitoring"}
    old_card = ModelCard.from_dict({**old, "card_version": 1, "name": "old"})
    assert old_card.monitoring is None and old_card.card_version == 1
    store.add_version(store.model_path(dt).read_bytes(), old_card)
    with pytest.raises(eb.MonitorError) as caught:
        eb.monitor("old", "http://127.0.0.1:1/metrics")
    assert str(caught.value) == (
        "old:1 has no drift reference (its card is version 1, from before monitoring): export the model again with "
        "held-out rows (eb.export_model(..., held_out=X_holdout)) and deploy that version")


def test_an_unreachable_source(dt):
    with pytest.raises(eb.MonitorError, match=r"^http://127.0.0.1:1 is unreachable \(\[Errno 111\] Connection "
                                              r"refused\): check the address$"):
        eb.monitor("dt", "http://127.0.0.1:1")


def test_a_source_that_is_not_prometheus(dt, web):
    with pytest.raises(eb.MonitorError, match=r"is not a Prometheus HTTP API \(its answer is not JSON\)$"):
        eb.monitor("dt", web)
    with pytest.raises(eb.MonitorError, match=r"/nothing/here answered HTTP 404 to /api/v1/query\?.*: is it a "
                                              r"Prometheus HTTP API\?$"):
        eb.monitor("dt", f"{web}/nothing/here")
    with pytest.raises(eb.MonitorError, match=r"/metrics is not Prometheus text: "):
        eb.monitor("dt", f"{web}/metrics")


def test_a_spool_of_another_model_or_version(store, dt, machines_store, tmp_path):
    site = Monitor(machines_store.get("machines:1").to_dict(), str(tmp_path / "spool"))
    site.observe({k: v.reshape(-1, 1) for k, v in readings(5, np.random.default_rng(0)).items()}, {}, 5)
    site.save()
    with pytest.raises(eb.MonitorError, match=r"spool holds counts of machines:1 \(model bytes [0-9a-f]{12}\.\.\.\), "
                                              r"not dt:1: monitor the version that site ran$"):
        eb.monitor("dt", tmp_path / "spool")
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(0).normal(size=(60, 64))
    eb.export_model(DecisionTreeClassifier(max_depth=2).fit(x, x[:, 0] > 0), x, "dt")
    Monitor(store.get("dt:1").to_dict(), str(tmp_path / "v1")).save()  # a site still on version 1
    with pytest.raises(eb.MonitorError, match=r"v1 holds counts of dt:1 \(model bytes [0-9a-f]{12}\.\.\.\), not dt:2"):
        eb.monitor("dt", tmp_path / "v1")


def test_a_file_that_is_not_a_spool(dt, tmp_path):
    with pytest.raises(eb.MonitorError, match=r"missing.tar is not a spool \(spool.jsonl, its folder, or "
                                              r"`edgebench monitor export` output\): "):
        eb.monitor("dt", tmp_path / "missing.tar")
    (tmp_path / "empty.jsonl").write_text("{cut by a cras")
    with pytest.raises(eb.MonitorError, match=r"empty.jsonl holds no snapshot yet$"):
        eb.monitor("dt", tmp_path / "empty.jsonl")


@pytest.mark.parametrize(("window", "windows", "message"), [
    ("1w", 2, "window '1w' is not a duration like 90s, 30m, 1h or 2d"),
    ("1h", 0, "windows must be a whole number >= 1, got 0"),
    ("1h", 1.5, "windows must be a whole number >= 1, got 1.5"),
])
def test_bad_windows(dt, window, windows, message):
    with pytest.raises(eb.InvalidInputError) as caught:
        eb.monitor("dt", "http://127.0.0.1:1", window=window, windows=windows)
    assert str(caught.value) == message


def test_export_refuses_a_missing_spool_or_folder(tmp_path):
    from edgebench.monitor import export_spool

    with pytest.raises(eb.MonitorError, match="is not a spool"):
        export_spool(tmp_path / "nowhere", tmp_path / "out.tar")
    (tmp_path / "spool.jsonl").write_text('{"time": 1, "model": "m", "version": "1", "sha256": "ab", "rows": 0, '
                                          '"bins": []}\n')
    with pytest.raises(eb.InvalidInputError, match=r"folder .*/no/such does not exist"):
        export_spool(tmp_path, tmp_path / "no" / "such" / "out.tar")
