"""The demo: the whole flow on embedded defaults (scikit-learn's digits, a random forest), as far as this
installation can go. It is the README's main command (``edgebench demo``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .core.card import ModelCard
from .export import export_model
from .store import Store, open_store

DEMO_MODEL = "digits-rf"


def run_demo(
    store: Store | str | os.PathLike[str] | None = None,
    *,
    name: str = DEMO_MODEL,
    trees: int = 100,
    say: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train a RandomForestClassifier on the digits data set, export it with parity; return a summary."""
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
    card: ModelCard = export_model(
        model, x_test[:200], name, held_out=x_test[200:],
        metadata={"dataset": "sklearn.datasets.load_digits", "accuracy": accuracy}, store=store,
    )
    assert card.parity is not None
    say(f"export: {card.ref}, {card.size_bytes / 1024:.0f} KiB ONNX, {card.parity.summary()}")
    say(f"  stored in {store.home}")
    return {"model": card.ref, "accuracy": accuracy, "parity": card.parity.verdict, "store": str(store.home)}
