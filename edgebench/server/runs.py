"""Step runs started from the panel: each is the ``edgebench`` command in a child process, so that it runs
outside the request thread, survives a browser reload, streams its progress lines, and can be cancelled."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import EngineUnavailableError, InvalidInputError
from ..core.images import parse_platform
from ..core.names import parse_ref
from ..core.numbers import number
from ..engine import engine_available
from ..pipeline import platforms_for
from ..progress import Lines
from ..state import model_state
from ..store import Store

STEPS = ("bench", "build", "test", "publish", "promote", "rollback", "monitor")
DOCKER_STEPS = ("build", "test", "publish")
MAX_LOG_LINES = 500
CANCEL_GRACE_S = 15


class RunConflict(InvalidInputError):
    """A second run on a model that already has one (HTTP 409)."""


@dataclass
class PanelRun:
    id: int
    model: str
    step: str
    command: list[str]
    status: str = "running"  # running | passed | failed | cancelled
    started: float = field(default_factory=time.time)
    finished: float | None = None
    progress: dict[str, Any] = field(default_factory=lambda: {"done": 0, "total": 0, "message": "starting"})
    log: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "step": self.step, "status": self.status,
                "started": self.started, "finished": self.finished, "progress": self.progress,
                "log": self.log[-MAX_LOG_LINES:], "result": self.result, "error": self.error}


class RunManager:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.runs: dict[int, PanelRun] = {}
        self.lock = threading.Lock()
        self.next_id = 1

    def start(self, model: object, step: object, params: dict[str, Any]) -> PanelRun:
        if step not in STEPS:
            raise InvalidInputError(f"unknown step {step!r}: use one of {', '.join(STEPS)}", step=str(step))
        card = self.store.get(parse_ref(model))  # 404 for a model that is not (or no longer) stored
        if step in DOCKER_STEPS:
            ok, why = engine_available()
            if not ok:
                raise EngineUnavailableError(f"{step} needs a Docker Engine: {why}")
        command = self._command(card.ref, str(step), params)
        with self.lock:
            busy = next((r for r in self.runs.values() if r.model == card.name and r.status == "running"), None)
            if busy:
                raise RunConflict(f"a {busy.step} run for {card.name} is already running (run {busy.id}): wait for it "
                                  "or cancel it", model=card.name, run=busy.id)
            run = PanelRun(self.next_id, card.name, str(step), command)
            self.next_id += 1
            self.runs[run.id] = run
        # its own process group: a cancel reaches what the step started too (a measuring child, a docker call)
        run.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       start_new_session=True)
        threading.Thread(target=self._follow, args=(run,), daemon=True).start()
        return run

    def _command(self, ref: str, step: str, params: dict[str, Any]) -> list[str]:
        base = [sys.executable, "-m", "edgebench", "--home", str(self.store.home)]
        if step == "bench":
            devices = self._devices(params)
            command = [*base, "bench", ref, *(a for d in devices for a in ("--device", d))]
            for key, flag in (("slo_p99_ms", "--slo-p99-ms"), ("slo_ram_mb", "--slo-ram-mb"), ("seconds", "--seconds")):
                if params.get(key) is not None:
                    command += [flag, str(number(params[key], key, above=0))]
            return [*command, "--json"]
        if step in ("promote", "rollback"):
            return self._deploy_command(base, ref, step, params)
        if step == "monitor":
            return self._monitor_command(base, ref, params)
        if step == "build":  # the platforms asked for, else the architectures of the devices picked
            platforms = params.get("platforms") or platforms_for(self._devices(params))
            if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
                raise InvalidInputError("platforms must be a list such as [\"linux/arm64\"]")
            platforms = [parse_platform(p) for p in platforms]
            return [*base, "build", ref, *(a for p in platforms for a in ("--platform", p)), "--json"]
        state = model_state(self.store, self.store.get(ref))
        images = [params["image"]] if params.get("image") else [i["tag"] for i in state["images"].values()
                                                               if step == "test" or (i["test"] or {}).get("status")
                                                               == "passed"]
        if not images:
            raise InvalidInputError(f"{ref} has no image yet: build it first" if step == "test" or not
                                    state["images"] else f"{ref} has no tested image yet: test it first")
        if step == "test":
            return [*base, "test-image", *map(str, images), "--memory", str(params.get("memory", "512m")), "--json"]
        destination = params.get("destination")
        if not isinstance(destination, str) or not destination:
            raise InvalidInputError("publish needs a destination: REGISTRY/REPOSITORY or oci-archive:FILE.tar")
        tags = params.get("tags") or []
        command = [*base, "publish", *map(str, images)]
        command += ["--to" if destination.startswith("oci-archive:") else "--to-registry", destination]
        command += [a for t in tags for a in ("--tag", str(t))]
        sign = params.get("sign")
        if sign is not None and (not isinstance(sign, str) or not sign):
            raise InvalidInputError("sign must be the path of a cosign private key on the server's machine")
        command += ["--sign", sign] if sign else []
        return [*command, *(["--force"] if params.get("force") else []), "--json"]

    def _deploy_command(self, base: list[str], ref: str, step: str, params: dict[str, Any]) -> list[str]:
        from .. import config

        where = config.deployment()
        if where is None:
            raise InvalidInputError("set EDGEBENCH_SITES and EDGEBENCH_GITOPS before starting JupyterLab to promote")
        wave = number(params.get("wave"), "wave", whole=True, at_least=0)
        command = [*base, "promote"]
        if step == "rollback":
            command += [ref.partition(":")[0], "--rollback"]
        else:  # a digest given, else the model's newest digest published to the sites' hub
            reference = params.get("reference", ref)
            if not isinstance(reference, str) or not reference:
                raise InvalidInputError("reference must be MODEL@sha256:... or REGISTRY/REPO@sha256:...")
            command.append(reference)
        key = params.get("key")
        if key is not None and (not isinstance(key, str) or not key):
            raise InvalidInputError("key must be the path of a cosign public key")
        command += ["--sites", str(where[0]), "--repo", str(where[1]), "--wave", str(int(wave))]
        return [*command, *(["--key", key] if key else []), "--json"]

    @staticmethod
    def _monitor_command(base: list[str], ref: str, params: dict[str, Any]) -> list[str]:
        from .. import config

        source, notebook = config.monitoring()
        source = params.get("source") or source
        if not isinstance(source, str) or not source:
            raise InvalidInputError("monitor needs a source (a Prometheus URL, a /metrics URL or a spool), or "
                                    "EDGEBENCH_MONITOR_SOURCE set before starting JupyterLab")
        window = params.get("window", "1h")
        if not isinstance(window, str):
            raise InvalidInputError("window must be a duration such as \"1h\"")
        windows = number(params.get("windows", 2), "windows", whole=True, at_least=1)
        command = [*base, "monitor", ref, "--source", source, "--window", window, "--windows", str(int(windows))]
        notebook = params.get("on_drift", notebook)
        if notebook:
            if not isinstance(notebook, str):
                raise InvalidInputError("on_drift must be the path of a retrain notebook")
            command += ["--on-drift", notebook]
        return [*command, "--json"]

    @staticmethod
    def _devices(params: dict[str, Any]) -> list[str]:
        devices = params.get("devices") or ["rpi4-1gb"]
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise InvalidInputError("devices must be a list of profile names")
        return devices

    def _follow(self, run: PanelRun) -> None:
        assert run.process is not None
        assert run.process.stderr is not None and run.process.stdout is not None
        # stdout drains on its own thread: a report larger than the pipe's buffer (64 KiB) would otherwise block
        # the child on stdout while this loop waits for its stderr to end
        stdout, chunks = run.process.stdout, []
        reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
        reader.start()
        for line in run.process.stderr:
            line = line.rstrip()
            run.log.append(line)
            del run.log[:-MAX_LOG_LINES]
            step = Lines.parse(line)
            if step:
                run.progress = {"done": step[0], "total": step[1], "message": step[2]}
            elif line.startswith("error: ") and run.status == "running":  # a cancel keeps its own reason
                run.error = line[len("error: "):]
        reader.join()
        out = "".join(chunks)
        code = run.process.wait()
        try:
            run.result = json.loads(out) if out.strip() else None
        except ValueError:
            run.result = None
        if run.status == "running":
            run.status = "passed" if code == 0 else "failed"
            if code != 0 and run.error is None:
                run.error = f"the {run.step} step exited with code {code}"
        run.finished = time.time()

    def get(self, run_id: int) -> PanelRun:
        run = self.runs.get(run_id)
        if run is None:
            raise LookupRunError(f"no run {run_id} in this server session", run=run_id)
        return run

    def cancel(self, run_id: int, reason: str = "cancelled") -> PanelRun:
        """Stop a run: SIGTERM to its process group, so the step removes its containers on the way out, then
        SIGKILL after ``CANCEL_GRACE_S`` for whatever is still there."""
        run = self.get(run_id)
        if run.status == "running" and run.process is not None:
            run.status = "cancelled"
            run.error = reason
            _signal_group(run.process, signal.SIGTERM)
            threading.Thread(target=self._kill_later, args=(run.process,), daemon=True).start()
        return run

    @staticmethod
    def _kill_later(process: subprocess.Popen[str]) -> None:
        try:
            process.wait(timeout=CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)

    def cancel_model(self, name: str, reason: str) -> list[int]:
        active = [r.id for r in self.runs.values() if r.model == name and r.status == "running"]
        for run_id in active:
            self.cancel(run_id, reason)
        return active

    def list(self) -> list[PanelRun]:
        return sorted(self.runs.values(), key=lambda r: -r.id)

    def shutdown(self) -> None:
        for run in self.runs.values():
            if run.status == "running" and run.process is not None:
                _signal_group(run.process, signal.SIGTERM)


def _signal_group(process: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


class LookupRunError(InvalidInputError, LookupError):
    """No such panel run (HTTP 404)."""
