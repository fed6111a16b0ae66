"""``eb.show("digits-rf")``: the model's dashboard in a notebook, the same sections as the Lab dashboard (card and
schema, parity, bench chart, images per architecture, what was published and signed, sites, the last drift
report); an empty section says what fills it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape
from typing import Any

from . import config
from .core import render
from .core.card import ModelCard
from .core.errors import EdgebenchError
from .state import model_detail
from .store import Store, open_store


@dataclass
class ModelView:
    """What the store knows of one model version, rendered for a notebook."""

    card: ModelCard
    detail: dict[str, Any]
    sites: str
    drift: str

    def _repr_html_(self) -> str:
        return self.html()

    def html(self) -> str:
        state = self.detail["state"]
        return ("<div class='eb-show'>" + self.card._repr_html_()
                + _section("Bench: predicted per device", _bench(self.detail.get("bench")))
                + _section("Images", _images(state.get("images") or {}))
                + _section("Published", _published(state.get("published")))
                + _section("Sites", self.sites) + _section("Drift", self.drift) + "</div>")


def show(ref: str, store: Store | str | os.PathLike[str] | None = None) -> ModelView:
    """The dashboard of ``ref`` (NAME or NAME:VERSION)."""
    from .monitor import last_report

    store = open_store(store)
    detail = model_detail(store, ref)
    card = ModelCard.from_dict(detail["card"])
    report = last_report(card.name, store=store)
    drift = report.html() if report else _hint("No drift report yet: eb.monitor(...) reads the sites' counts.")
    return ModelView(card, detail, _sites(store), drift)


def _section(title: str, body: str) -> str:
    return f"<h4 style='margin:12px 0 4px'>{escape(title)}</h4>{body}"


def _hint(text: str) -> str:
    return f"<p style='color:var(--jp-ui-font-color2, #666)'>{escape(text)}</p>"


def _bench(bench: dict[str, Any] | None) -> str:
    if not bench or not bench.get("devices"):
        return _hint("Not benched yet: eb.benchmark(ref, devices=[...], slo=eb.SLO(p99_ms=..., ram_mb=...)).")
    devices, slo = bench["devices"], bench.get("slo") or {}
    rows = [(d["device"], f"{d['interval_p99_ms'][0]:.3g} - {d['interval_p99_ms'][1]:.3g}",
             f"{d['ram_needed_mb']:.0f} / {d['usable_ram_mb']:.0f}", d["verdict"], "; ".join(d["reasons"]) or "-")
            for d in devices]
    chart = render.latency_chart([(d["device"], *d["interval_p99_ms"], d["predicted_p50_ms"], d["verdict"])
                                  for d in devices], slo.get("p99_ms"))
    given = ", ".join(p for p in (f"p99 {slo['p99_ms']:g} ms" if slo.get("p99_ms") else "",
                                  f"RAM {slo['ram_mb']:g} MB" if slo.get("ram_mb") else "") if p)
    return (_hint(f"Against the SLO {given}." if given else "No SLO was given: every device that fits passes.")
            + chart + render.table(["device", "p99 ms", "RAM MB (need / usable)", "verdict", "why"], rows))


def _images(images: dict[str, Any]) -> str:
    if not images:
        return _hint("No image yet: eb.build_image(ref, 'linux/arm64') builds one per architecture.")
    rows = [(platform, i["tag"], f"{(i['size_bytes'] or 0) / 2**20:.0f} MiB",
             "not tested" if not i["test"] else i["test"]["status"] + (" (emulated)" if i["test"]["emulated"] else ""))
            for platform, i in images.items()]
    return render.table(["platform", "tag", "size", "image test"], rows)


def _published(published: dict[str, Any] | None) -> str:
    if not published:
        return _hint("Not published: eb.publish(images, 'REGISTRY/REPOSITORY') pushes the tested images.")
    signed = (f"signed and verified; attested: {', '.join(published['attestations'])}" if published["signed"]
              else "unsigned")
    return (f"<p><code>{escape(str(published['digest']))}</code> {escape(signed)}</p>"
            + _hint(", ".join(published["references"])))


def _sites(store: Store, where: tuple[Any, Any] | None = None) -> str:
    """Sites, waves and what each runs, of ``where`` (sites file, GitOps repository) or the environment's."""
    where = where or config.deployment()
    if where is None:
        return _hint("Sites show when EDGEBENCH_SITES (sites.yaml) and EDGEBENCH_GITOPS (the GitOps repository) "
                     "are set.")
    from .deploy import status

    try:
        found = status(str(where[0]), str(where[1]), store=store)
    except EdgebenchError as exc:
        return _hint(f"sites: {exc.message}")
    return render.table(["site", "wave", "runs", "answer"], [(s.site, s.wave, (s.desired or "-")[:19], s.answer)
                                                            for s in found])
