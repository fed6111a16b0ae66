"""ipywidgets panels: ``eb.Workbench(model_or_name)`` shows the same steps as the JupyterLab side panel, for the
estimator just trained or a stored model: device picker, SLO fields, Export / Bench / Build / Test / Publish,
a progress bar, and each step's result (tables, chart) below."""

from __future__ import annotations

from html import escape
from typing import Any

from ..core.errors import DeployError, EdgebenchError
from ..core.profiles import SLO
from ..progress import Bar
from ..store import Store, open_store


class Workbench:
    """A notebook panel for one model.

    Parameters
    ----------
    model : a fitted estimator, or "name" / "name:version" of a stored model
    sample : rows for export (needed with an estimator)
    name : the model's name in the store (with an estimator)
    """

    def __init__(self, model: Any, sample: Any = None, *, name: str | None = None,
                 devices: tuple[str, ...] = ("rpi4-1gb", "jetson-orin-nano"), store: Store | str | None = None,
                 client: Any = None, sites: str | None = None, repo: str | None = None,
                 source: str | None = None) -> None:
        import ipywidgets as w

        from ..profiles import list_profiles

        self.store = open_store(store)
        self.client = client
        self.estimator = None if isinstance(model, str) else model
        self.sample = sample
        self.ref: str | None = model if isinstance(model, str) else None
        if self.estimator is not None and not name:
            raise EdgebenchError("give name='...' to store the estimator under")
        self.name = name
        if self.ref is not None:
            self.ref = self.store.get(self.ref).ref  # fails now, with the store's message, for a wrong name
        choices = [p.name for p in list_profiles()]
        wide = {"style": {"description_width": "8em"}, "layout": w.Layout(width="26em")}
        self.devices = w.SelectMultiple(options=choices, value=[d for d in devices if d in choices],
                                        description="Devices", rows=min(6, len(choices)), **wide)
        self.p99 = w.FloatText(value=20.0, description="SLO p99 ms", **wide)
        self.ram = w.FloatText(value=256.0, description="SLO RAM MB", **wide)
        self.destination = w.Text(placeholder="REGISTRY/REPO or oci-archive:F.tar", description="Publish to", **wide)
        self.sign_key = w.Text(placeholder="cosign.key (optional)", description="Sign with", **wide)
        self.why = w.HTML()  # why some buttons are off, said in words (tooltips are easy to miss)
        self.buttons = {step: w.Button(description=step.capitalize(), tooltip=tip) for step, tip in (
            ("export", "convert to ONNX with a parity check and store it"),
            ("bench", "measure here, predict each device"),
            ("build", "build the inference image for the devices' architectures"),
            ("test", "run each image under limits and check it (a foreign architecture under emulation)"),
            ("publish", "push the tested images (several architectures: one multi-arch image)"),
        )}
        for step, button in self.buttons.items():
            button.on_click(lambda _, step=step: self.run(step))
        self.bar = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(visibility="hidden"))  # shown once a step runs
        self.status = w.Label()
        self.output = w.Output()
        self.title = w.HTML()
        self.images: list[Any] = []
        self.results: dict[str, Any] = {}
        self.sites_file, self.repo = sites, repo
        self.sites_table = w.HTML()
        deploy: list[Any] = []
        if sites and repo:
            from ..deploy import load_sites

            self.wave = w.Dropdown(options=load_sites(sites).waves, description="Wave")
            self.public_key = w.Text(placeholder="keys/cosign.pub", description="Public key")
            for step, tip in (("promote", "gate, then one commit moving the wave to this model's published digest"),
                              ("rollback", "one commit putting the wave back on its previous digest")):
                self.buttons[step] = w.Button(description=step.capitalize(), tooltip=tip)
                self.buttons[step].on_click(lambda _, step=step: self.run(step))
            deploy = [self.sites_table, w.HBox([self.wave, self.public_key, self.buttons["promote"],
                                                self.buttons["rollback"]])]
        self.source = w.Text(value=source or "", description="Drift from", **wide,
                             placeholder="Prometheus URL, /metrics or a spool")
        self.window = w.Text(value="1h", description="Window", layout=w.Layout(width="12em"))
        self.buttons["monitor"] = w.Button(description="Check drift",
                                           tooltip="judge drift at the sites against the card's reference")
        self.buttons["monitor"].on_click(lambda _: self.run("monitor"))
        self.drift = w.HTML()  # the last drift report stored for this model, with its charts
        self.widget = w.VBox([
            self.title,
            w.HBox([w.VBox([self.devices, w.HTML("<small>Ctrl-click or Shift-click to pick several devices</small>")]),
                    w.VBox([self.p99, self.ram, self.destination, self.sign_key])]),
            w.HBox([b for k, b in self.buttons.items() if k not in ("promote", "rollback", "monitor")]), self.why,
            *deploy, w.HBox([self.source, self.window, self.buttons["monitor"]]), self.drift,
            w.HBox([self.bar, self.status]), self.output,
        ])
        self._refresh()

    def _refresh(self) -> None:
        from ..engine import engine_available

        exported = self.ref is not None
        engine_ok, why = engine_available()
        self.title.value = (f"<b>{self.ref}</b>" if exported else f"<b>{self.name}</b> (not exported yet)")
        self.buttons["export"].disabled = self.estimator is None
        self.buttons["bench"].disabled = not exported
        for step in ("build", "test", "publish"):
            self.buttons[step].disabled = not (exported and engine_ok)
            self.buttons[step].tooltip = self.buttons[step].tooltip if engine_ok else why
        self.buttons["test"].disabled |= not self.images
        self.buttons["publish"].disabled |= not self.images
        reasons = ([] if exported else ["Export first: the other steps work on the stored model"]) + (
            [f"Build, Test and Publish need a Docker Engine ({why})"] if not engine_ok else
            ["Test and Publish need an image: Build first"] if exported and not self.images else [])
        self.why.value = "".join(f"<small>{escape(r)}</small><br>" for r in reasons)
        self.buttons["monitor"].disabled = not exported
        if self.sites_file and self.repo:
            self.sites_table.value = self._sites_html()
        if exported:
            from ..monitor import last_report

            report = last_report(str(self.ref), store=self.store)
            self.drift.value = report.html() if report else "<p>No drift report yet.</p>"

    def run(self, step: str) -> Any:
        """Run one step as the buttons do; its result is shown below and returned."""
        from ..bench import benchmark
        from ..export import export_model
        from ..image.builder import build_image
        from ..image.tester import test_image
        from ..pipeline import platforms_for
        from ..publish import publish

        self.bar.layout.visibility = "visible"
        progress = Bar(self.bar, self.status)
        self.output.clear_output()
        progress.step(0, 1, f"{step} ...")
        try:
            if step == "export":
                card = export_model(self.estimator, self.sample, str(self.name), store=self.store, allow_mismatch=True)
                self.ref, result = card.ref, card
            elif step == "bench":
                result = benchmark(str(self.ref), list(self.devices.value),
                                   SLO(p99_ms=self.p99.value or None, ram_mb=self.ram.value or None),
                                   seconds=1.0, store=self.store, client=self.client, progress=progress)
            elif step == "build":  # one image per architecture of the chosen devices
                self.images = result = [build_image(str(self.ref), platform, store=self.store, client=self.client,
                                                    progress=progress)
                                        for platform in platforms_for(list(self.devices.value))]
            elif step == "test":
                result = [test_image(image, store=self.store, client=self.client, progress=progress)
                          for image in self.images]
            elif step in ("promote", "rollback"):
                result = self._deploy(step)
            elif step == "monitor":
                from ..monitor import monitor

                result = monitor(str(self.ref), self.source.value, window=self.window.value, store=self.store)
            elif step == "publish":
                result = publish(self.images if len(self.images) > 1 else self.images[0], self.destination.value,
                                 sign=self.sign_key.value or None, store=self.store, client=self.client,
                                 progress=progress)
            else:
                raise EdgebenchError(f"unknown step {step!r}")
        except EdgebenchError as exc:
            self.status.value = f"{step} failed: {exc}"[:300]
            self.bar.bar_style = "danger"
            self.results[step] = exc
            with self.output:
                print(f"{step} failed: {exc}")
            return exc
        progress.close()
        self.status.value = f"{step} done"
        self.results[step] = result
        with self.output:
            from IPython.display import display

            for item in result if isinstance(result, list) else [result]:
                display(item)
        self._refresh()
        return result

    def _deploy(self, step: str) -> Any:
        from ..deploy import promote, rollback

        key = self.public_key.value or None
        if step == "rollback":
            return rollback(str(self.sites_file), str(self.repo), self.wave.value, store=self.store)
        # the model's newest digest published to the sites' hub
        done = promote(str(self.ref), str(self.sites_file), str(self.repo), self.wave.value, key=key,
                       store=self.store)
        if not done.passed:
            raise DeployError(done.summary())
        return done

    def _sites_html(self) -> str:
        from ..dashboard import _sites

        return "<b>Sites</b>" + _sites(self.store, (self.sites_file, self.repo))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
