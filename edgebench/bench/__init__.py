"""The benchmark: measure on the host, predict per device, optionally enforce the device's limits in the
model's container, optionally beside an int8 variant. Records every benchmark as a ``bench`` step run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .. import config
from ..core.bench import METHOD_ERROR, BenchReport, DeviceResult, HostMeasurement, predict
from ..core.errors import InvalidInputError
from ..core.names import ModelRef
from ..core.numbers import number
from ..core.profiles import SLO, DeviceProfile
from ..engine import docker_client
from ..profiles import load_profile
from ..progress import Progress, auto
from ..store import Store, open_store
from .calibration import calibrate, host_facts, host_profile
from .measure import feeds_for, measure


def benchmark(
    model: str | ModelRef,
    devices: Sequence[str] = ("rpi4-1gb",),
    slo: SLO | None = None,
    *,
    in_container: bool = False,
    int8: Literal[False, "dynamic", "static"] = False,
    sample: dict[str, np.ndarray] | None = None,
    seconds: float = 2.0,
    store: Store | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
    remote: str | None = None,
    ssh_key: str | None = None,
    allow_emulated: bool = False,
) -> BenchReport | list[BenchReport]:
    """Benchmark a stored model for edge devices.

    Parameters
    ----------
    model : "name" or "name:version"
    devices : profile names (``edgebench profiles list``); ``host`` is this machine, measured.
    slo : edgebench.SLO(p99_ms=..., ram_mb=...), optional budgets for the verdicts.
    in_container : also run the model's image under each device's usable RAM and core count (needs Docker);
        an OOM kill is reported as "does not fit in N MB".
    int8 : "dynamic" or "static" to also quantize the model and return ``[float_report, int8_report]``.
    sample : inputs for one request; default the card's first golden sample.
    seconds : length of each single-stream loop.
    remote : ``ssh://USER@HOST[:PORT]`` of a real board (one device): its Docker Engine, reached over SSH with
        ``ssh_key``, runs the model's image under the profile's limits with the in-image benchmark; the result is
        labelled measured and re-anchors later predictions for that profile. A board of another architecture than
        the profile is refused unless ``allow_emulated`` (then the run is emulated and says so: a path check,
        not a timing).

    Returns
    -------
    BenchReport (or a list of two with ``int8``): per device the predicted p50/p99 with an interval, RAM need,
    fit and verdict, plus what was measured on the host.
    """
    store = open_store(store)
    slo = slo if slo is not None else SLO()
    if not isinstance(slo, SLO):
        raise InvalidInputError(f"slo must be an edgebench.SLO, got {type(slo).__name__}")
    if isinstance(devices, str):
        devices = [devices]
    if not devices:
        raise InvalidInputError("give at least one device, e.g. devices=['rpi4-1gb']")
    number(seconds, "seconds", above=0)
    profiles = [load_profile(d) for d in devices]  # unknown devices fail before any measuring
    if remote is not None:
        from .remote import parse

        parse(remote)  # a malformed URL is said before any measuring
        if len(profiles) != 1:
            raise InvalidInputError("--remote measures one board: give the one device profile it is, e.g. "
                                    "devices=['rpi4-1gb']")
    card = store.get(model)
    store.model_path(card)  # a missing or changed ONNX file is said now, before minutes of calibration
    progress = progress or auto("bench")
    board = (remote, ssh_key, allow_emulated) if remote else None
    reports = [_bench_one(card.ref, profiles, slo, in_container, sample, seconds, store, client, progress, board)]
    if int8:
        from .quantize import quantize

        progress.step(0, 1, f"quantizing {card.ref} ({int8})")
        variant = quantize(card, store, int8, sample)
        report = _bench_one(variant.ref, profiles, slo, in_container, None, seconds, store, client, progress)
        reports.append(BenchReport(**{**report.__dict__, "variant_of": card.ref}))
    progress.close()
    return reports if int8 else reports[0]


def _bench_one(ref: str, profiles: list[DeviceProfile], slo: SLO, in_container: bool,
               sample: dict[str, np.ndarray] | None, seconds: float, store: Store, client: Any,
               progress: Progress, board: tuple[str, str | None, bool] | None = None) -> BenchReport:
    card = store.get(ref)
    run_id = store.start_run("bench", card.name, card.version,
                             {"devices": [p.name for p in profiles], "slo": slo.__dict__,
                              "in_container": in_container, "seconds": seconds,
                              **({"remote": board[0]} if board else {})})
    try:
        steps = 2 + (1 if in_container else 0) + len(profiles) * (2 if in_container else 1) + (1 if board else 0)
        progress.step(1, steps, f"calibrating this host (cached after the first time, in {config.cache_dir()})")
        calibration = calibrate()
        host = host_profile(calibration)
        feeds = feeds_for(card, sample)
        host_cores = len(os.sched_getaffinity(0))
        threads = sorted({min(p.cores, host_cores) for p in profiles})
        counts = " and ".join(map(str, threads))
        progress.step(2, steps, f"measuring {card.ref} on the host at {counts} thread{'s' if threads != [1] else ''}")
        measured = measure(store.model_path(card), feeds, threads, seconds,
                           {**host_facts(), "calibration": calibration.to_dict()})
        results: list[DeviceResult] = []
        notes = [f"host calibration: {calibration.cpu_model}, memcpy {calibration.memcpy_mbps:.0f} MB/s, 7-zip "
                 f"single {calibration.sevenzip_single_mips:.0f} MIPS, FP32 peak/core "
                 f"{host.peak_gflops_core:.1f} GFLOPS", *calibration.notes]
        docker = docker_client(client) if in_container else None
        images: dict[str, str] = {}
        if docker is not None:
            from .container import model_image

            arches = sorted({p.arch for p in profiles})
            progress.step(3, steps, f"finding the images of {card.ref} for {', '.join(arches)}")
            images = {arch: model_image(card, store, docker, progress, arch) for arch in arches}
        step = 3 if docker is not None else 2
        for profile in profiles:
            step += 1
            progress.step(step, steps, f"predicting {profile.name}")
            cost = cost_of(profile, host, measured)
            result = predict(profile, host, measured, profile.cores, slo, cost=cost)
            if cost is None and not profile.measured:
                why = ("no published device figures cover this kind of model" if profile.costs
                       else "no fitted costs for this device")
                result.reasons.insert(0, f"calibration ratios (x/÷{1 + METHOD_ERROR:g}): {why}")
            if board is None:
                result = _anchored(result, store, card.ref)
            if docker is not None:
                from .container import run_in_container

                step += 1
                image = images[profile.arch]
                progress.step(step, steps, f"running {image} under {profile.name}'s limits")
                outcome = run_in_container(image, profile, docker, seconds)
                result = _with_container(result, outcome)
            if board is not None:
                step += 1
                progress.step(step, steps, f"measuring on the board at {board[0]}")
                result = _on_board(result, measure_on_board(card, profile, board, store, client, seconds, progress),
                                   slo)
            results.append(result)
        report = BenchReport(model=card.ref, slo={"p99_ms": slo.p99_ms, "ram_mb": slo.ram_mb}, measured=measured,
                             devices=results, notes=notes)
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)})
        raise
    store.finish_run(run_id, "passed" if report.passed else "failed", report.to_dict())
    return report


def cost_of(profile: DeviceProfile, host: DeviceProfile, measured: HostMeasurement
            ) -> tuple[float, tuple[float, float], str] | None:
    """The per-operator cost model's device-to-host ratio for this model, when the profile names a board of the
    fitted data and the model is a convolution or GEMM network (>= 10 MFLOP of matrix work; tree ensembles and
    small tabular models keep the microbenchmark path: no published figures cover them)."""
    from .costs import MATRIX, device_ratio, shipped

    work = measured.work
    if not profile.costs or not work or sum(work.get(c, 0.0) for c in MATRIX) < 0.01:
        return None
    ratio, interval = device_ratio(work, profile.costs, profile.value("clock_ghz"))
    reference = shipped()["reference_host"]["peak_gflops_core"]
    return ratio * host.peak_gflops_core / reference, interval, f"ncnn figures of {profile.costs}"


def measure_on_board(card: Any, profile: DeviceProfile, board: tuple[str, str | None, bool], store: Store,
                     client: Any, seconds: float, progress: Progress) -> dict[str, Any]:
    """The model's image on the board's engine (over SSH) under the profile's limits, with the in-image bench."""
    from ..core.errors import BenchError
    from .container import model_image, run_in_container
    from .remote import board_arch, parse, remote_engine, ship_image

    url, key, allow_emulated = board
    with remote_engine(url, key) as engine:
        arch = board_arch(engine)
        if arch != profile.arch and not allow_emulated:
            raise BenchError(f"the board at {parse(url).host} is {arch}, but profile {profile.name} is "
                             f"{profile.arch}: measure it with the profile of that board (or allow_emulated / "
                             "--allow-emulated to check the path under emulation, without timing)",
                             device=profile.name, remote=url)
        local = docker_client(client)
        image = model_image(card, store, local, progress, profile.arch)
        ship_image(local, engine, local.images.get(image).id, image)
        outcome = run_in_container(image, profile, engine, seconds, cores_available=engine.info().get("NCPU"))
        return {**outcome, "board": parse(url).where, "board_arch": arch,
                "engine": engine.version().get("Version", "")}


def _on_board(result: DeviceResult, outcome: dict[str, Any], slo: SLO) -> DeviceResult:
    """A prediction with what the board measured: the verdict follows the measurement (an emulated run only
    checks the path and the memory fit, and says so)."""
    emulated = bool(outcome.get("emulated"))
    measured = {"board": outcome["board"], "emulated": emulated, "status": outcome["status"],
                "peak_memory_mb": outcome.get("peak_memory_mb"), "engine": outcome.get("engine")}
    checked = _with_container(result, outcome)
    reasons = list(checked.reasons)
    if outcome["status"] == "ok" and not emulated:
        p50, p99 = outcome["p50"], outcome["p99"]
        measured.update({"p50_ms": p50, "p99_ms": p99, "predicted_p50_ms": result.predicted_p50_ms})
        reasons.append(f"measured on {outcome['board']}: p50 {p50:.3g} ms, p99 {p99:.3g} ms (predicted p50 "
                       f"{result.predicted_p50_ms:.3g} ms)")
        verdict = checked.verdict
        if checked.fits and verdict != "fail":
            verdict = "fail" if slo.p99_ms is not None and p99 > slo.p99_ms else "pass"
        return DeviceResult(**{**checked.__dict__, "verdict": verdict, "reasons": reasons,
                               "measured_on_device": measured})
    if emulated:
        reasons.append(f"ran on {outcome['board']} under emulation: the path and the memory fit are checked, the "
                       "latency is still the prediction")
    return DeviceResult(**{**checked.__dict__, "reasons": reasons, "measured_on_device": measured})


def _anchored(result: DeviceResult, store: Store, ref: str) -> DeviceResult:
    """Scale a prediction by how the profile's last board measurement compared with its prediction."""
    for run in store.runs(step="bench", limit=200):
        for d in (run.outputs or {}).get("devices", []):
            board = d.get("measured_on_device") or {}
            if d.get("device") != result.device or board.get("emulated") or not board.get("p50_ms") \
                    or not board.get("predicted_p50_ms"):
                continue
            factor = board["p50_ms"] / board["predicted_p50_ms"]
            low, high = result.interval_p99_ms
            return DeviceResult(**{**result.__dict__, "predicted_p50_ms": result.predicted_p50_ms * factor,
                                   "predicted_p99_ms": result.predicted_p99_ms * factor,
                                   "interval_p99_ms": (low * factor, high * factor),
                                   "reasons": [*result.reasons, f"re-anchored on {run.name}:{run.version} measured "
                                               f"on {board['board']} (x{factor:.2f} of its prediction)"]})
    return result


def _with_container(result: DeviceResult, outcome: dict[str, Any]) -> DeviceResult:
    reasons = list(result.reasons)
    verdict, fits = result.verdict, result.fits
    if outcome["status"] == "oom":
        verdict, fits = "does not fit", False
        reasons.append(outcome["message"])
    elif outcome["status"] == "error":
        verdict = "fail"
        reasons.append(outcome["message"])
    elif outcome.get("peak_memory_mb"):
        emulated = f" under emulation (QEMU and python3 idle: {outcome['emulator_baseline_mb']:.0f} MB of it)" \
            if outcome.get("emulated") and outcome.get("emulator_baseline_mb") else ""
        reasons.append(f"container peak memory {outcome['peak_memory_mb']:.0f} MB of {outcome['memory_mb']} MB"
                       f"{emulated}")
    return DeviceResult(**{**result.__dict__, "verdict": verdict, "fits": fits, "reasons": reasons,
                           "container": outcome})
