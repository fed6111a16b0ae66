"""Where each stored model stands in the flow (exported, benched, built, tested, published), read from the
store's step runs. The JupyterLab panel, the REST API and the notebook widgets all show this."""

from __future__ import annotations

from typing import Any

from .core.card import ModelCard
from .store import Run, Store


def _latest(runs: list[Run], step: str) -> Run | None:
    return next((r for r in runs if r.step == step), None)


def belongs(run: Run, card: ModelCard) -> bool:
    """Whether ``run`` ran on ``card``'s exact model bytes (runs from before sha256 was recorded: same version)."""
    return run.sha256 == card.sha256 if run.sha256 else run.version == card.version


def model_state(store: Store, card: ModelCard, runs: list[Run] | None = None) -> dict[str, Any]:
    """The latest result of every step for ``card``'s model bytes."""
    runs = runs if runs is not None else store.runs(card.name, limit=500)
    mine = [r for r in runs if belongs(r, card)]
    bench = _latest(mine, "bench")
    images = _images(mine)
    first = next(iter(images.values()), None)
    build = next((r for r in mine if first and r.id == first["run"]), None)
    test = next((r for r in mine if first and first["test"] and r.id == first["test"]["run"]), None)
    publish = next((r for r in mine if r.step == "publish" and r.status == "passed"), None)
    drift = _latest(mine, "monitor")
    return {
        "name": card.name,
        "version": card.version,
        "ref": card.ref,
        "estimator": card.estimator,
        "size_bytes": card.size_bytes,
        "created": card.created,
        "parity": card.parity.verdict if card.parity else None,
        "bench": {
            "status": bench.status, "run": bench.id, "finished": bench.finished,
            "devices": _verdicts(mine),
        } if bench else None,
        "images": images,
        "image": {"tag": first["tag"], "id": first["id"], "size_bytes": first["size_bytes"], "run": first["run"]}
        if first and build else None,
        "image_test": {"status": test.status, "run": test.id, "cold_start_s": (test.outputs or {}).get("cold_start_s")}
        if test else None,
        "published": {"destination": (publish.outputs or {}).get("destination"),
                      "digest": (publish.outputs or {}).get("digest"),
                      "references": (publish.outputs or {}).get("references", []), "run": publish.id,
                      "platforms": sorted((publish.outputs or {}).get("platforms") or {}),
                      "signed": bool((publish.outputs or {}).get("signed")),
                      "attestations": sorted({k for kinds in ((publish.outputs or {}).get("attestations") or {})
                                              .values() for k in kinds})}
        if publish else None,
        "drift": {"status": drift.status, "run": drift.id, "finished": drift.finished,
                  "summary": (drift.outputs or {}).get("summary"), "alarms": (drift.outputs or {}).get("alarms", [])}
        if drift and drift.outputs else None,
    }


def _verdicts(runs: list[Run]) -> dict[str, str]:
    """Per device, the verdict of the newest bench that included it (a bench of other devices keeps it)."""
    found: dict[str, str] = {}
    for run in (r for r in runs if r.step == "bench"):  # newest first
        for d in (run.outputs or {}).get("devices", []):
            found.setdefault(d["device"], d["verdict"])
    return dict(sorted(found.items()))


def _images(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """The newest passed build per platform (this machine's first), each with the newest test of that image."""
    from .emulation import host_arch

    images: dict[str, dict[str, Any]] = {}
    for build in (r for r in runs if r.step == "build" and r.status == "passed"):
        out = build.outputs or {}
        platform = out.get("platform", "linux/amd64")
        if platform in images:
            continue
        test = next((r for r in runs if r.step == "test" and (r.outputs or {}).get("image_id") == out.get("id")),
                    None)
        images[platform] = {
            "tag": (out.get("tags") or [None])[0], "id": out.get("id"), "size_bytes": out.get("size_bytes"),
            "run": build.id,
            "test": {"status": test.status, "run": test.id, "emulated": (test.outputs or {}).get("emulated", False),
                     "cold_start_s": (test.outputs or {}).get("cold_start_s")} if test else None,
        }
    host = f"linux/{host_arch()}"
    return dict(sorted(images.items(), key=lambda kv: (kv[0] != host, kv[0])))


def model_detail(store: Store, ref: str) -> dict[str, Any]:
    """The card, the state, the latest bench table and the recent runs of one model."""
    card = store.get(ref)
    runs = store.runs(card.name, limit=500)
    mine = [r for r in runs if belongs(r, card)]
    bench, drift = _latest(mine, "bench"), _latest(mine, "monitor")
    return {
        "card": card.to_dict(),
        "state": model_state(store, card, runs),
        "bench": (bench.outputs or {}) if bench else None,
        "drift": (drift.outputs or {}) if drift else None,  # the last drift report (edgebench.monitor)
        "runs": [{"id": r.id, "step": r.step, "status": r.status, "version": r.version, "started": r.started,
                  "finished": r.finished} for r in runs[:30]],
    }
