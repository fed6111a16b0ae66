"""The JupyterLab "Edge" panel in a real JupyterLab, driven by Playwright in Debian's Chromium.

Screenshots go to artifacts/screenshots/ (CI keeps that folder)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import edgebench as eb
from edgebench import config
from edgebench.image.tester import free_port
from edgebench.publish.registry import RegistryClient

from ..helpers import stop_process

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PANEL_TAB = '[title="Edge: models, devices, images"]'


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if config.in_ci():
            pytest.fail("CI=true and Debian's chromium is missing: scripts/services.sh installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def lab(store, tmp_path, request):
    """A real JupyterLab server over the test's store; stopped at the end. Parametrized indirectly with
    ``{"theme": "JupyterLab Dark", "env": {...}}`` for another theme or environment."""
    options = getattr(request, "param", {})
    token, port = secrets.token_hex(16), free_port()
    log = (tmp_path / "lab.log").open("w")
    settings = tmp_path / "lab-settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the screenshots
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false"}')
    (settings / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings").write_text(
        json.dumps({"theme": options.get("theme", "JupyterLab Light")}))
    env = {**os.environ, **options.get("env", {}), "EDGEBENCH_HOME": str(store.home),
           "EDGEBENCH_CACHE": str(config.cache_dir()),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--ServerApp.allow_root=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            assert process.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            time.sleep(0.1)
    yield f"{url}/lab?token={token}"
    stop_process(process)
    log.close()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def open_panel(browser, lab):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(lab)
    page.locator(PANEL_TAB).first.click(timeout=60_000)
    page.locator(".eb-panel").wait_for(state="visible")
    return page


def test_empty_store_then_an_exported_model_appears_and_a_bench_shows_its_verdict(browser, lab, store, digits,
                                                                                 digits_rf):
    page = open_panel(browser, lab)
    empty = page.locator('[data-eb="empty"]')
    empty.wait_for(timeout=30_000)
    assert "No models yet" in empty.inner_text() and "eb.export_model" in empty.inner_text()
    shot(page, "01-empty-store")

    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store)  # as a notebook would
    row = page.locator('[data-eb-model="digits-rf"]')
    row.wait_for(timeout=15_000)
    assert "parity pass" in row.inner_text()
    shot(page, "02-model-listed")

    row.click()
    page.locator('[data-eb="model-title"]').wait_for()
    assert page.locator('[data-eb="bench"]').inner_text() == "Not benched yet: pick devices below and Bench."
    assert page.locator('[data-eb-pick="rpi4-1gb"]').is_checked()
    page.locator('[data-eb-step="bench"]').click()
    page.locator('[data-eb="run-status"][data-eb-status="passed"]').wait_for(timeout=180_000)
    verdict = page.locator('[data-eb-device="rpi4-1gb"]')
    verdict.wait_for(timeout=15_000)
    assert "pass" in verdict.inner_text()
    assert "rpi4-1gb: pass" in row.inner_text()
    shot(page, "03-bench-verdict")
    page.close()


def test_a_failing_step_shows_its_message(browser, lab, store, digits, digits_rf):
    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store)
    page = open_panel(browser, lab)
    page.locator('[data-eb-model="digits-rf"]').click(timeout=30_000)
    page.locator('[data-eb="slo-p99"]').fill("-5")
    page.locator('[data-eb-step="bench"]').click()
    error = page.locator('[data-eb="error"]')
    page.wait_for_function("document.querySelector('[data-eb=\"error\"]').textContent.length > 0", timeout=15_000)
    assert "slo_p99_ms must be a finite number > 0" in error.inner_text()
    shot(page, "04-step-error")
    page.close()


def test_a_long_name_and_description_keep_the_layout(browser, lab, store, digits, digits_rf):
    name = "a-very-long-model-name-for-the-plant-floor-gateway-number-0042"
    eb.export_model(digits_rf, digits[0][:20], name, store=store, metadata={"description": "word " * 300})
    page = open_panel(browser, lab)
    page.locator(f'[data-eb-model="{name}"]').click(timeout=30_000)
    page.locator('[data-eb="model-title"]').wait_for()
    overflow = page.evaluate("() => { const p = document.querySelector('.eb-panel');"
                             " return p.scrollWidth - p.clientWidth; }")
    assert overflow <= 1, f"the panel scrolls sideways by {overflow} px"
    shot(page, "05-long-name")
    page.close()


def test_markup_in_a_description_shows_as_text(browser, lab, store, digits, digits_rf):
    text = '<b>bold</b><img src="x" onerror="window.__injected = 1"> & <script>window.__injected = 2</script>'
    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store, metadata={"description": text})
    page = open_panel(browser, lab)
    page.locator('[data-eb-model="digits-rf"]').click(timeout=30_000)
    description = page.locator(".eb-description")
    description.wait_for()
    assert description.inner_text() == text
    assert description.locator("b, img, script").count() == 0
    assert page.evaluate("() => window.__injected === undefined")
    page.close()


def wait_run(page, step, status, timeout=180_000):
    page.locator(f'[data-eb="run-status"][data-eb-status="{status}"]:has-text("{step} {status}")').wait_for(
        timeout=timeout)
    return page.locator('[data-eb="run"]').inner_text()


def test_build_test_and_publish_from_the_panel_then_cancel_a_test(browser, cosign_password, signing_keys, lab, store,
                                                                   digits, digits_rf, engine, registries):
    from ..helpers import derived_image

    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store)
    page = open_panel(browser, lab)
    page.locator('[data-eb-model="digits-rf"]').click(timeout=30_000)
    tag = "edgebench/digits-rf:1-arm64"  # the panel builds for the picked device, a Raspberry Pi 4
    try:
        page.locator('[data-eb-step="build"]').click()
        log = wait_run(page, "build", "passed")
        assert "build passed" in log and "[1/" in log  # progress lines reached the panel
        page.locator('[data-eb-step="test"]:not([disabled])').click(timeout=30_000)
        log = wait_run(page, "test", "passed")
        assert "test passed" in log and "replaying" in log and "under emulation" in log
        assert "arm64 image test passed (emulated)" in page.locator('[data-eb-model="digits-rf"]').inner_text()
        destination = f"{registries['open']}/ui/digits-rf"
        page.locator('[data-eb="destination"]').fill(destination)
        page.locator('[data-eb="sign-key"]').fill(signing_keys["private"])
        page.locator('[data-eb-step="publish"]:not([disabled])').click(timeout=30_000)
        log = wait_run(page, "publish", "passed")
        assert "publish passed" in log
        row = page.locator('[data-eb-model="digits-rf"]')
        row.locator("text=signed, verified").wait_for(timeout=15_000)
        assert "published sha256:" in row.inner_text()
        assert "signed, verified (image-test, parity, sbom)" in row.inner_text()
        shot(page, "06-published")
        digest = store.runs("digits-rf", step="publish")[0].outputs["digest"]
        assert RegistryClient(registries["open"]).manifest("ui/digits-rf", "1")[0] == digest
        assert eb.verify(f"{destination}@{digest}", signing_keys["public"]).passed

        # the same tag now hangs at start: the test waits for readiness until cancelled from the panel
        derived_image(engine, tag, tag, 'ENTRYPOINT ["python3", "-c", "import time; time.sleep(600)"]',
                      platform="linux/arm64")
        page.locator('[data-eb-step="test"]:not([disabled])').click(timeout=30_000)
        page.locator('[data-eb="cancel"]').click(timeout=30_000)
        wait_run(page, "test", "cancelled", timeout=60_000)
        for _ in range(300):  # the step unwinds and removes its container
            if not engine.containers.list(all=True, filters={"label": "org.edgebench.test"}):
                break
            time.sleep(0.1)
        assert not engine.containers.list(all=True, filters={"label": "org.edgebench.test"})
        shot(page, "07-cancelled")
    finally:
        page.close()
        with contextlib.suppress(Exception):
            engine.images.remove(tag, force=True)


@pytest.fixture
def deployment(tmp_path, monkeypatch, registries):
    """A sites file and a GitOps repository the Jupyter server is told about (before it starts)."""
    hub = f"{registries['open']}/ui-hub/digits-rf"
    sites = tmp_path / "sites.yaml"
    sites.write_text(f"hub: {hub}\nsites:\n  - {{name: plant-7, profile: intel-n100, wave: 0, target: kubernetes}}\n")
    repo = tmp_path / "gitops"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("gitops\n")
    from edgebench.deploy import gitops

    gitops.commit(repo, "start")
    monkeypatch.setenv("EDGEBENCH_SITES", str(sites))
    monkeypatch.setenv("EDGEBENCH_GITOPS", str(repo))
    return {"hub": hub, "sites": sites, "repo": repo}


def test_sites_and_waves_with_promote_from_the_panel(browser, cosign_password, signing_keys, deployment, lab, store,
                                                     digits, digits_rf, engine):
    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store)
    image = eb.build_image("digits-rf", "linux/amd64", store=store, client=engine)
    try:
        assert eb.test_image(image, store=store, client=engine).passed
        published = eb.publish(image, deployment["hub"], ["1"], sign=signing_keys["private"], store=store,
                               client=engine)
        page = open_panel(browser, lab)
        page.locator('[data-eb-model="digits-rf"]').click(timeout=30_000)
        row = page.locator('[data-eb-site="plant-7"]')
        row.wait_for(timeout=15_000)
        assert "-" in row.inner_text()  # not promoted yet
        page.locator('[data-eb-step="promote"][data-eb-wave="0"]').click()
        wait_run(page, "promote", "failed")  # no key: the gate says so
        assert "give the public key" in page.locator('[data-eb="run"]').inner_text()
        page.locator('[data-eb="promote-key"]').fill(signing_keys["public"])
        page.locator('[data-eb-step="promote"][data-eb-wave="0"]').click()
        wait_run(page, "promote", "passed")
        page.locator(f'[data-eb-site="plant-7"]:has-text("{published.digest[7:19]}")').wait_for(timeout=15_000)
        shot(page, "08-sites-promoted")
        assert gitops_pins(deployment) == published.digest
    finally:
        engine.images.remove(image.id, force=True)


def gitops_pins(deployment):
    from edgebench.deploy import gitops, load_sites

    return gitops.pins(deployment["repo"], load_sites(deployment["sites"]))["plant-7"]


def test_check_drift_from_the_panel_shows_the_report_and_its_bars(browser, lab, store, digits, digits_rf, tmp_path):
    from ..monitor.load import spool_windows

    x = digits[0][np.random.default_rng(0).permutation(len(digits[0]))]  # the data set's writers, mixed
    card = eb.export_model(digits_rf, x[:200], "digits-rf", store=store, held_out=x[200:1000])
    shifted = x[1000:1600].copy()
    shifted[:, 21] = shifted[:, 21] + 9  # a pixel brighter than any the reference saw
    spool = spool_windows(card, tmp_path / "spool", {"X": shifted[:300]}, {"X": shifted[300:]})
    page = open_panel(browser, lab)
    page.locator('[data-eb-model="digits-rf"]').click(timeout=30_000)
    assert "No drift report yet: Check drift reads" in page.locator('[data-eb="drift"]').inner_text()
    page.locator('[data-eb="drift-source"]').fill(str(spool))
    page.locator('[data-eb="drift-window"]').fill("1000s")
    page.locator('[data-eb-step="monitor"]').click()
    wait_run(page, "monitor", "failed")  # drift exits 1, like a failing gate (its JSON report is > 64 KiB)
    summary = page.locator('[data-eb="drift-summary"]')
    summary.wait_for(timeout=15_000)
    assert "digits-rf:1: DRIFT in X[21] (significant and above" in summary.inner_text()
    feature = page.locator('[data-eb-feature="X[21]"]')
    assert "eb-drifted" in feature.get_attribute("class") and feature.locator(".eb-win").count() > 3
    assert page.locator('[data-eb-model="digits-rf"]').inner_text().endswith("drift: X[21]")
    page.locator('[data-eb="drift"]').scroll_into_view_if_needed()
    shot(page, "09-drift-report")
    page.close()


def contrast(page, selector):
    """WCAG contrast ratio of an element's text against the first opaque background behind it."""
    return page.evaluate("""(selector) => {
        const rgb = s => s.match(/[\\d.]+/g).map(Number);
        const lum = ([r, g, b]) => { const c = [r, g, b].map(v => { v /= 255;
            return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
            return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
        let node = document.querySelector(selector);
        const fg = rgb(getComputedStyle(node).color);
        let bg = null;
        while (node && !bg) { const c = rgb(getComputedStyle(node).backgroundColor);
            if (c.length < 4 || c[3] > 0.5) { if (c.length >= 3 && !(c.length === 4 && c[3] === 0)) bg = c; }
            node = node.parentElement; }
        const [a, b] = [lum(fg), lum(bg || [255, 255, 255])].sort((x, y) => y - x);
        return (a + 0.05) / (b + 0.05);
    }""", selector)


@pytest.mark.parametrize("lab", [{"theme": "JupyterLab Light"}, {"theme": "JupyterLab Dark"}], indirect=True,
                         ids=["light", "dark"])
def test_the_dashboard_in_both_themes_bench_chart_notification_and_no_sideways_scroll(browser, lab, store, digits,
                                                                                       digits_rf, request):
    theme = request.node.callspec.id
    eb.export_model(digits_rf, digits[0][:200], "digits-rf", store=store, held_out=digits[0][200:600])
    page = open_panel(browser, lab)
    page.locator('[data-eb-model="digits-rf"]').click(timeout=30_000)
    dashboard = page.locator(".eb-dashboard")
    dashboard.locator('[data-eb="model-title"]').wait_for(timeout=15_000)
    assert "labels agree on 100.00%" in dashboard.locator('[data-eb="parity"]').inner_text()
    assert contrast(page, ".eb-model.eb-selected .eb-model-name") >= 4.5  # readable selected row
    assert contrast(page, '[data-eb-step="bench"]') >= 3  # the enabled button reads as enabled
    page.locator('[data-eb-pick="jetson-orin-nano"]').check()
    page.locator('[data-eb-step="bench"]').click()
    wait_run(page, "bench", "passed")
    toast = page.locator(".Toastify__toast", has_text="bench digits-rf passed in")
    toast.wait_for(timeout=15_000)
    chart = dashboard.locator(".eb-chart")
    chart.wait_for(timeout=15_000)
    assert chart.locator("rect.eb-bar").count() == 2 and chart.locator("line.eb-slo").count() == 1
    widths = [float(w) for w in chart.locator("rect.eb-bar").evaluate_all("rs => rs.map(r => r.getAttribute('width'))")]
    slo_x = float(chart.locator("line.eb-slo").get_attribute("x1"))
    bar_x = float(chart.locator("rect.eb-bar").first.get_attribute("x"))
    assert min(widths) >= 10 and slo_x > bar_x + max(widths)  # bars of < 1 ms are visible left of the 20 ms SLO
    assert "Against the SLO p99 20 ms, RAM 256 MB." in dashboard.locator('[data-eb="bench-section"]').inner_text()
    row = page.locator('[data-eb-model="digits-rf"]')
    assert "rpi4-1gb: pass" in row.inner_text() and "jetson-orin-nano: pass" in row.inner_text()
    height = row.evaluate("r => r.getBoundingClientRect().height")
    assert height < 32, f"a model row is {height} px high: not one line"
    overflow = page.evaluate("() => { const p = document.querySelector('.eb-panel');"
                             " return p.scrollWidth - p.clientWidth; }")
    assert overflow <= 1, f"the panel scrolls sideways by {overflow} px"
    shot(page, f"10-dashboard-{theme}")
    page.locator('[data-eb="slo-p99"]').fill("0.000001")
    page.locator('[data-eb-step="bench"]').click()
    wait_run(page, "bench", "failed")
    page.locator(".Toastify__toast", has_text="bench digits-rf failed:").wait_for(timeout=15_000)
    shot(page, f"11-failed-step-{theme}")
    page.close()


@pytest.mark.parametrize("lab", [{"env": {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}}], indirect=True)
def test_without_an_engine_the_panel_says_one_line_with_details_on_demand(browser, lab, store, digits, digits_rf):
    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store)
    page = open_panel(browser, lab)
    engine = page.locator('[data-eb="engine"]')
    engine.locator("summary").wait_for(timeout=30_000)
    assert engine.locator("summary").inner_text() == "No Docker Engine: build, test and publish are off"
    assert engine.evaluate("e => e.getBoundingClientRect().height") < 24
    assert not engine.locator("p").is_visible()
    engine.locator("summary").click()
    assert "/nonexistent/docker.sock" in engine.locator("p").inner_text()
    page.locator('[data-eb-model="digits-rf"]').click()
    why = page.locator('[data-eb="disabled-why"]')
    why.wait_for(timeout=15_000)
    assert why.inner_text().startswith("Build, test and publish need a Docker Engine")
    assert page.locator('[data-eb-step="build"]').is_disabled()
    page.keyboard.press("Control+Shift+C")  # the command palette reaches the dashboard too
    page.keyboard.type("edge model dashboard")
    page.locator(".lm-CommandPalette-item", has_text="Open the edge model dashboard").first.wait_for(timeout=10_000)
    shot(page, "12-no-engine")
    page.close()
