"""The demo: the whole flow on embedded defaults (scikit-learn's digits, a random forest), as far as this
installation can go. It is the README's main command (``edgebench demo``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .core.profiles import SLO
from .export import export_model
from .pipeline import run_pipeline
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
    """Train, export with parity, then the pipeline: bench per device; build, test and write an archive of the
    image when a Docker Engine answers (``containers=False`` skips that). Returns a summary."""
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

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
    say(f"bench: {', '.join(devices)} against {DEMO_SLO.p99_ms:g} ms p99 and {DEMO_SLO.ram_mb:g} MB "
        "(the first run calibrates this host, about 45 s)")
    archive = store.home / "exports" / f"{card.ref.replace(':', '-')}.tar"
    archive.parent.mkdir(exist_ok=True)
    result = run_pipeline(card.ref, list(devices), DEMO_SLO, archive=str(archive), containers=containers,
                          skip_without_engine=True, store=store, say=lambda line: say(f"  {line}"))
    say(f"store: {store.home} (`edgebench models list`, `edgebench models show {card.ref}`)")
    return {"model": card.ref, "accuracy": accuracy, "parity": card.parity.verdict, "store": str(store.home),
            **result.to_dict()}
