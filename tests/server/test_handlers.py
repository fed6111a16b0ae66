"""Every REST handler through a real Jupyter server: authentication, models, profiles, runs, errors."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

import edgebench as eb


async def call(jp_fetch, *path, method="GET", body=None, expect=200):
    kwargs = {"method": method}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body)
    try:
        response = await jp_fetch("edgebench", *path, **kwargs)
        status, payload = response.code, json.loads(response.body)
    except HTTPClientError as exc:
        status, payload = exc.code, json.loads(exc.response.body)
    assert status == expect, payload
    return payload


async def wait_for(jp_fetch, run_id, timeout=120):
    for _ in range(int(timeout * 10)):
        run = await call(jp_fetch, "runs", str(run_id))
        if run["status"] != "running" and run["finished"]:  # a cancelled run finishes when its child has stopped
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} still running")


@pytest.fixture
def exported(store, digits, digits_rf):
    return eb.export_model(digits_rf, digits[0][:10], "digits-rf", store=store)


async def test_without_a_token_every_route_is_forbidden(jp_fetch, jp_http_port, jp_base_url):
    client = AsyncHTTPClient()
    for path in ("status", "models", "profiles", "runs", "models/digits-rf"):
        with pytest.raises(HTTPClientError) as err:
            await client.fetch(f"http://localhost:{jp_http_port}{jp_base_url}edgebench/{path}")
        assert err.value.code == 403, path
    with pytest.raises(HTTPClientError) as err:
        await client.fetch(f"http://localhost:{jp_http_port}{jp_base_url}edgebench/runs", method="POST",
                           body=json.dumps({"model": "digits-rf", "step": "bench"}))
    assert err.value.code == 403


async def test_status_reports_the_store_and_the_engine(jp_fetch, store):
    status = await call(jp_fetch, "status")
    assert status["store"] == str(store.home) and status["version"] == eb.__version__
    assert isinstance(status["engine"]["available"], bool) and status["engine"]["message"]


async def test_empty_store_lists_no_models(jp_fetch):
    assert await call(jp_fetch, "models") == {"models": []}


async def test_a_model_exported_in_a_kernel_shows_up_with_its_state(jp_fetch, exported):
    (model,) = (await call(jp_fetch, "models"))["models"]
    assert model["ref"] == "digits-rf:1" and model["parity"] == "pass"
    assert model["bench"] is None and model["image"] is None and model["published"] is None
    detail = await call(jp_fetch, "models", "digits-rf")
    assert detail["card"]["inputs"][0]["shape"] == [-1, 64] and detail["runs"][0]["step"] == "export"


async def test_unknown_model_is_404_with_a_message(jp_fetch):
    payload = await call(jp_fetch, "models", "ghost", expect=404)
    assert "no model named 'ghost'" in payload["error"] and payload["type"] == "ModelNotFoundError"
    payload = await call(jp_fetch, "runs", method="POST", body={"model": "ghost", "step": "bench"}, expect=404)
    assert "no model named 'ghost'" in payload["error"]


async def test_profiles(jp_fetch):
    names = [p["name"] for p in (await call(jp_fetch, "profiles"))["profiles"]]
    assert "rpi4-1gb" in names and "jetson-orin-nano" in names


async def test_bench_run_from_the_panel_completes_and_is_recorded(jp_fetch, exported, store):
    run = await call(jp_fetch, "runs", method="POST", expect=202,
                     body={"model": "digits-rf", "step": "bench",
                           "params": {"devices": ["rpi4-1gb"], "slo_p99_ms": 50, "seconds": 0.2}})
    assert run["status"] == "running" and run["step"] == "bench"
    done = await wait_for(jp_fetch, run["id"])
    assert done["status"] == "passed", done
    assert done["result"]["devices"][0]["verdict"] == "pass"
    assert any(line.startswith("[") for line in done["log"])  # progress lines
    listed = await call(jp_fetch, "runs")
    assert listed["runs"][0]["id"] == run["id"]  # a reloaded panel finds it
    state = (await call(jp_fetch, "models"))["models"][0]
    assert state["bench"]["devices"] == {"rpi4-1gb": "pass"}


async def test_two_runs_on_one_model_at_once_conflict(jp_fetch, exported):
    first = await call(jp_fetch, "runs", method="POST", expect=202,
                       body={"model": "digits-rf", "step": "bench", "params": {"seconds": 3}})
    second = await call(jp_fetch, "runs", method="POST", expect=409,
                        body={"model": "digits-rf", "step": "bench", "params": {}})
    assert f"a bench run for digits-rf is already running (run {first['id']})" in second["error"]
    cancelled = await call(jp_fetch, "runs", str(first["id"]), method="DELETE")
    assert cancelled["status"] == "cancelled"


async def test_a_run_for_a_model_deleted_meanwhile_is_cancelled_with_the_reason(jp_fetch, exported):
    run = await call(jp_fetch, "runs", method="POST", expect=202,
                     body={"model": "digits-rf", "step": "bench", "params": {"seconds": 5}})
    deleted = await call(jp_fetch, "models", "digits-rf", method="DELETE")
    assert deleted["removed"] == [1] and deleted["cancelled_runs"] == [run["id"]]
    done = await wait_for(jp_fetch, run["id"])
    assert done["status"] == "cancelled" and done["error"] == "cancelled: the model was deleted"
    assert (await call(jp_fetch, "models")) == {"models": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [("{not json", "request body is not valid JSON"),
     ("[1, 2]", "request body must be a JSON object"),
     ({"model": "digits-rf", "step": "deploy"}, "unknown step 'deploy'"),
     ({"model": "digits-rf", "step": "bench", "params": []}, "params must be a JSON object"),
     ({"model": "digits-rf", "step": "bench", "params": {"devices": "rpi4-1gb"}}, "devices must be a list"),
     ({"model": "digits-rf", "step": "bench", "params": {"slo_p99_ms": -1}}, "slo_p99_ms must be a finite number > 0"),
     ('{"model": "digits-rf", "step": "bench", "params": {"seconds": Infinity}}',
      "seconds must be a finite number > 0, got inf"),
     ({"model": "../etc", "step": "bench"}, "contains a path separator")],
)
async def test_malformed_bodies_are_400_with_a_message(jp_fetch, exported, body, message):
    payload = await call(jp_fetch, "runs", method="POST", body=body, expect=400)
    assert message in payload["error"]


async def test_unknown_run_is_404(jp_fetch):
    payload = await call(jp_fetch, "runs", "999", expect=404)
    assert "no run 999" in payload["error"]


async def test_docker_steps_without_an_engine_say_why(jp_fetch, exported, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    payload = await call(jp_fetch, "runs", method="POST", body={"model": "digits-rf", "step": "build"}, expect=503)
    assert "build needs a Docker Engine: no Docker Engine answers" in payload["error"]
    status = await call(jp_fetch, "status")
    assert status["engine"]["available"] is False and "DOCKER_HOST" in status["engine"]["message"]


async def test_test_and_publish_need_an_image_first(jp_fetch, exported, engine):
    payload = await call(jp_fetch, "runs", method="POST", body={"model": "digits-rf", "step": "test"}, expect=400)
    assert "digits-rf:1 has no image yet: build it first" in payload["error"]


async def test_build_then_test_from_the_panel_for_each_architecture_of_the_devices(jp_fetch, exported, engine):
    run = await call(jp_fetch, "runs", method="POST", expect=202,
                     body={"model": "digits-rf", "step": "build", "params": {"devices": ["rpi4-1gb", "intel-n100"]}})
    done = await wait_for(jp_fetch, run["id"], timeout=300)
    assert done["status"] == "passed", done
    assert [image["platform"] for image in done["result"]] == ["linux/amd64", "linux/arm64"]
    run = await call(jp_fetch, "runs", method="POST", body={"model": "digits-rf", "step": "test"}, expect=202)
    done = await wait_for(jp_fetch, run["id"], timeout=300)
    assert done["status"] == "passed" and [r["passed"] for r in done["result"]] == [True, True]
    state = (await call(jp_fetch, "models"))["models"][0]
    try:
        assert {p: (i["tag"], i["test"]["status"], i["test"]["emulated"]) for p, i in state["images"].items()} == {
            "linux/amd64": ("edgebench/digits-rf:1-amd64", "passed", False),
            "linux/arm64": ("edgebench/digits-rf:1-arm64", "passed", True)}
        assert state["image"]["tag"] == "edgebench/digits-rf:1-amd64" and state["image_test"]["status"] == "passed"
    finally:
        for image in state["images"].values():
            engine.images.remove(image["tag"], force=True)


async def test_build_with_an_unknown_platform_is_400(jp_fetch, exported, engine):
    payload = await call(jp_fetch, "runs", method="POST", expect=400,
                         body={"model": "digits-rf", "step": "build", "params": {"platforms": ["linux/riscv64"]}})
    assert "unknown platform 'linux/riscv64'" in payload["error"]


async def test_cancel_stops_the_child_and_removes_the_container_it_started(jp_fetch, jp_serverapp, exported, engine,
                                                                          store):
    from ..helpers import derived_image

    image = eb.build_image("digits-rf:1", "linux/amd64", store=store, client=engine)
    hang = derived_image(engine, image.id, "edgebench-test/hangs:1",
                         'ENTRYPOINT ["python3", "-c", "import time; time.sleep(600)"]')
    try:
        run = await call(jp_fetch, "runs", method="POST", expect=202,
                         body={"model": "digits-rf", "step": "test", "params": {"image": hang}})
        child = jp_serverapp.web_app.settings["edgebench_runs"].get(run["id"]).process
        for _ in range(600):  # the step is waiting for a server that never becomes ready
            if engine.containers.list(filters={"label": "org.edgebench.test"}):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the test step never started its container")
        cancelled = await call(jp_fetch, "runs", str(run["id"]), method="DELETE")
        assert cancelled["status"] == "cancelled"
        done = await wait_for(jp_fetch, run["id"], timeout=30)
        assert done["status"] == "cancelled" and done["error"] == "cancelled"
        assert child.poll() is not None  # the edgebench child is gone...
        assert not engine.containers.list(all=True, filters={"label": "org.edgebench.test"})  # ...and its container
        assert any("containers it started were removed" in line for line in done["log"])
    finally:
        engine.images.remove(hang, force=True)
        engine.images.remove(image.tag, force=True)


def _spool(card, folder, rows):
    from edgebench.serve.monitor import Monitor

    site = Monitor(card.to_dict(), str(folder))
    site.observe({"X": rows.astype("float32")}, {}, len(rows))
    site.save()
    return folder


async def test_monitor_from_the_panel_needs_a_source(jp_fetch, exported, monkeypatch):
    monkeypatch.delenv("EDGEBENCH_MONITOR_SOURCE", raising=False)
    payload = await call(jp_fetch, "runs", method="POST", body={"model": "digits-rf", "step": "monitor"}, expect=400)
    assert payload["error"] == ("monitor needs a source (a Prometheus URL, a /metrics URL or a spool), or "
                                "EDGEBENCH_MONITOR_SOURCE set before starting JupyterLab")
    payload = await call(jp_fetch, "runs", method="POST", expect=400,
                         body={"model": "digits-rf", "step": "monitor", "params": {"source": "x", "windows": 0}})
    assert "windows" in payload["error"]


ALERTMANAGER = {  # the webhook body Alertmanager (v0.2x) posts: version 4, grouped alerts
    "version": "4", "groupKey": "{}:{alertname=\"EdgebenchDriftCheck\"}", "truncatedAlerts": 0, "status": "firing",
    "receiver": "edgebench", "groupLabels": {"alertname": "EdgebenchDriftCheck"}, "commonLabels": {},
    "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "EdgebenchDriftCheck", "model": "digits-rf", "version": "1"},
         "annotations": {}, "startsAt": "2026-11-28T02:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus.example:9090/graph", "fingerprint": "a1"},
        {"status": "resolved", "labels": {"alertname": "EdgebenchDriftCheck", "model": "digits-rf"},
         "annotations": {}, "startsAt": "2026-11-28T01:00:00Z", "endsAt": "2026-11-28T01:30:00Z",
         "generatorURL": "", "fingerprint": "a2"},
        {"status": "firing", "labels": {"alertname": "EdgebenchDriftCheck", "model": "ghost"}, "annotations": {},
         "startsAt": "2026-11-28T02:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
         "fingerprint": "a3"},
    ],
}


async def test_an_alertmanager_webhook_starts_a_drift_check_and_the_report_shows(jp_fetch, exported, digits,
                                                                                  monkeypatch, tmp_path):
    spool = _spool(exported, tmp_path / "spool", digits[0][300:900])
    monkeypatch.setenv("EDGEBENCH_MONITOR_SOURCE", str(spool))
    answer = await call(jp_fetch, "alerts", method="POST", body=ALERTMANAGER, expect=202)
    (started,) = answer["started"]
    assert started["step"] == "monitor" and started["model"] == "digits-rf"
    assert [i["labels"].get("model") for i in answer["ignored"]] == ["digits-rf", "ghost"]
    assert answer["ignored"][0]["why"] == "not firing, or no model label"
    assert "ghost" in answer["ignored"][1]["why"]
    done = await wait_for(jp_fetch, started["id"])
    assert done["status"] in ("passed", "failed"), done  # failed: drift (exit 1), said in the report
    detail = await call(jp_fetch, "models", "digits-rf")
    assert detail["drift"]["model"] == "digits-rf:1" and detail["drift"]["windows"][-1]["rows"] == 600
    assert detail["state"]["drift"]["summary"] == detail["drift"]["summary"]


@pytest.mark.parametrize(("body", "message"), [
    ({"version": "4"}, "not an Alertmanager webhook: the body has no 'alerts' list"),
    ([1, 2], "request body must be a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "request body nests too deeply to parse"),
])
async def test_a_body_that_is_not_alertmanagers_is_400(jp_fetch, body, message):
    assert (await call(jp_fetch, "alerts", method="POST", body=body, expect=400))["error"] == message
