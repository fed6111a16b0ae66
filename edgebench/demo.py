"""The demo: the whole flow on embedded defaults (scikit-learn's digits, a random forest), as far as this
installation can go. It is the README's main command (``edgebench demo``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .core.profiles import SLO
from .export import export_model
from .progress import Silent
from .store import Store, open_store

DEMO_MODEL = "digits-rf"
DEMO_DEVICES = ("rpi4-1gb", "jetson-orin-nano")
DEMO_SLO = SLO(p99_ms=20, ram_mb=256)


def run_demo(
    store: Store | str | os.PathLike[str] | None = None,
    *,
    name: str = DEMO_MODEL,
    trees: int = 100,
    devices: Sequence[str] = DEMO_DEVICES,
    containers: bool = True,
    say: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train, export with parity, bench per device; then build, test and write an archive of the image when
    a Docker Engine answers (``containers=False`` skips that). Returns a summary."""
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    from .bench import benchmark

    store = open_store(store)
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    say(f"train: RandomForestClassifier({trees} trees) on digits, {len(x_train)} rows")
    model = RandomForestClassifier(n_estimators=trees, random_state=0).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    say(f"  test accuracy {accuracy:.3f}")
    card = export_model(
        model, x_test[:200], name, held_out=x_test[200:],
        metadata={"dataset": "sklearn.datasets.load_digits", "accuracy": accuracy}, store=store,
    )
    assert card.parity is not None
    say(f"export: {card.ref}, {card.size_bytes / 1024:.0f} KiB ONNX, {card.parity.summary()}")
    summary: dict[str, Any] = {"model": card.ref, "accuracy": accuracy, "parity": card.parity.verdict,
                               "store": str(store.home)}
    if devices:
        say(f"bench: {', '.join(devices)} against {DEMO_SLO.p99_ms:g} ms p99 and {DEMO_SLO.ram_mb:g} MB "
            "(the first run calibrates this host, about 45 s)")
        report = benchmark(card.ref, list(devices), DEMO_SLO, seconds=1.0, store=store, progress=Silent())
        assert not isinstance(report, list)
        for d in report.devices:
            say(f"  {d.device:<18} p99 {d.interval_p99_ms[0]:.3f}-{d.interval_p99_ms[1]:.3f} ms, RAM "
                f"{d.ram_needed_mb:.0f}/{d.usable_ram_mb:.0f} MB: {d.verdict}")
        summary["bench"] = {d.device: d.verdict for d in report.devices}
    if containers:
        summary.update(_containers(card.ref, store, say))
    say(f"store: {store.home} (`edgebench models list`, `edgebench models show {card.ref}`)")
    return summary


def _containers(ref: str, store: Store, say: Callable[[str], Any]) -> dict[str, Any]:
    from .engine import engine_available
    from .image.builder import build_image
    from .image.tester import test_image
    from .registry import publish

    ok, why = engine_available()
    if not ok:
        say(f"build, test, publish: skipped: {why}")
        return {"containers": "skipped"}
    image = build_image(ref, store=store, progress=Silent())
    say(f"build: {image.tag}, {image.size_bytes / 2**20:.0f} MiB, {image.build_seconds:.1f} s")
    report = test_image(image, memory="512m", store=store, progress=Silent())
    say(f"test: {report.summary()}")
    if not report.passed:
        return {"image": image.tag, "image_test": "failed"}
    archive = store.home / "exports" / f"{ref.replace(':', '-')}.tar"
    archive.parent.mkdir(exist_ok=True)
    result = publish(image, f"oci-archive:{archive}", store=store, progress=Silent())
    say(f"publish: {archive} ({result.pushed_bytes / 2**20:.0f} MiB; `edgebench load` it on an offline site, or "
        "`edgebench publish IMAGE REGISTRY/REPO` to push)")
    return {"image": image.tag, "image_test": "passed", "archive": str(archive)}
