"""The ``edgebench`` command. Every subcommand calls the public API and prints text, or JSON with ``--json``.

Exit codes: 0 success, 1 a step failed or was refused (the message says why), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__
from .core.card import ModelCard
from .core.errors import EdgebenchError, InvalidInputError, ParityError
from .core.numbers import number
from .core.parity import Tolerance
from .store import Store

Handler = Callable[[argparse.Namespace], tuple[Any, str]]

PICKLE_WARNING = (
    "Loading a pickle or joblib file runs code from it: only name files that you or your team created."
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as usage:
        return _fail(usage.message, "UsageError", wants_json, 2, usage.parser.format_usage())
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:  # a cancel from the panel (SIGTERM): clean up, then stop
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        data, text = args.handler(args)
    except StepFailed as failed:
        if wants_json:  # the step's report, with what failed in "error" like every other failure
            data = {**failed.data, "error": str(failed)} if isinstance(failed.data, dict) else failed.data
            print(json.dumps(data, indent=2, default=str))
        elif failed.text:
            print(failed.text)
        print(f"error: {failed}", file=sys.stderr)
        return 1
    except EdgebenchError as exc:
        payload = exc.to_dict()
        if isinstance(exc, ParityError):
            payload["parity"] = exc.report.to_dict()
        return _fail(exc.message, type(exc).__name__, wants_json, 1, payload=payload)
    except KeyboardInterrupt:
        return _fail("interrupted", "KeyboardInterrupt", wants_json, 130)
    except Terminated:
        return _fail("cancelled (SIGTERM): containers it started were removed", "Terminated", wants_json, 143)
    except OSError as exc:  # a path, port or permission the handler did not expect: say it, no traceback
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", type(exc).__name__, wants_json, 1)
    except Exception as exc:  # the last line of defence: a bug, said in one line (EDGEBENCH_DEBUG=1 shows it all)
        if os.environ.get("EDGEBENCH_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc}. This is a bug in edgebench: please report it with "
                     "the command you ran (EDGEBENCH_DEBUG=1 shows the traceback)", type(exc).__name__, wants_json, 1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if wants_json:
        print(json.dumps(data, indent=2, default=str))
    elif text:
        print(text)
    return 0


def _fail(message: str, kind: str, wants_json: bool, code: int, usage: str = "",
          payload: dict[str, Any] | None = None) -> int:
    """Say what failed: one line on stderr (after the usage for usage errors), and JSON on stdout for scripts."""
    if wants_json:
        print(json.dumps(payload or {"error": message, "type": kind}, indent=2, default=str))
    print(f"{usage}error: {message}", file=sys.stderr)
    return code


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so every ``finally`` (container removal above all) runs."""


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated


class UsageError(Exception):
    """Wrong usage found by the argument parser (exit code 2)."""

    def __init__(self, message: str, parser: argparse.ArgumentParser) -> None:
        super().__init__(message)
        self.message = message
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self)


class StepFailed(Exception):
    """A step ran and its gate failed (a failing image test, an SLO): exit 1 with its report."""

    def __init__(self, message: str, data: Any, text: str = "") -> None:
        super().__init__(message)
        self.data, self.text = data, text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgebench", description="Ship models trained in Jupyter to edge devices.")
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    parser.add_argument("--home", help="store directory (default: $EDGEBENCH_HOME or ~/.edgebench)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = _command(sub, "export", _export, "export a fitted scikit-learn model to ONNX, check parity, store it")
    p.description = (
        "Load a fitted scikit-learn estimator or Pipeline from a joblib/pickle file and export it. "
        + PICKLE_WARNING
    )
    p.add_argument("model_file", help="joblib or pickle file holding the fitted estimator (runs code: see above)")
    p.add_argument("--sample", required=True, help="sample rows: .npy, .csv (header row = column names)")
    p.add_argument("--name", required=True, help="model name, e.g. digits-rf")
    p.add_argument("--held-out", help="extra rows for the parity check, same format as --sample")
    p.add_argument("--allow-mismatch", action="store_true", help="store the model even if parity fails")
    p.add_argument("--atol", type=_num(at_least=0), default=Tolerance.atol, help="absolute tolerance on values")
    p.add_argument("--rtol", type=_num(at_least=0), default=Tolerance.rtol, help="relative tolerance on values")
    p.add_argument("--min-label-agreement", type=_num(at_least=0, at_most=1),
                   default=Tolerance.min_label_agreement,
                   help="share of rows whose labels must agree (0..1)")
    p.add_argument("--metadata", help="JSON object stored in the card (metrics, dataset, notes)")

    p = _command(sub, "import-onnx", _import_onnx, "store an ONNX file made elsewhere (PyTorch, TF...)")
    p.add_argument("onnx_file")
    p.add_argument("--sample", required=True, help="sample inputs: .npy (one input) or .npz (one array per input)")
    p.add_argument("--name", required=True)
    p.add_argument("--metadata", help="JSON object stored in the card")

    p = _command(sub, "serve", _serve, "serve a stored model locally with the inference server (no container)")
    p.add_argument("ref", help="NAME or NAME:VERSION")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_num(whole=True, at_least=0, at_most=65535), default=8080)
    p.add_argument("--threads", type=_num(whole=True, at_least=1), default=1, help="onnxruntime intra-op threads")
    p.add_argument("--max-batch", type=_num(whole=True, at_least=1), default=1,
                   help="adaptive batching: rows merged per run (1: off)")
    p.add_argument("--max-wait-ms", type=_num(at_least=0), default=2.0)

    p = _command(sub, "build", _build, "build the inference image of a stored model")
    p.add_argument("ref", help="NAME or NAME:VERSION")
    p.add_argument("--platform", action="append", default=[],
                   help="linux/amd64 or linux/arm64 (repeatable: one image each; default: this machine's)")
    p.add_argument("--base-image", help="default $EDGEBENCH_BASE_IMAGE or python:3.11-slim-bookworm")
    p.add_argument("--tag", action="append", default=[], help="extra tag (repeatable)")
    p.add_argument("--context-only", metavar="DIR", help="only write the build context (for buildah, kaniko...)")

    p = _command(sub, "test-image", _test_image, "run an image under limits and check it against its card")
    p.add_argument("image", nargs="+", help="image tag or id, e.g. edgebench/digits-rf:1-amd64 (several: each "
                                            "is tested, a foreign architecture under emulation)")
    p.add_argument("--memory", default="512m", help="RAM limit, no swap (default 512m)")
    p.add_argument("--cpuset", help="CPUs the container may use, e.g. 0 or 0-1")
    p.add_argument("--timeout", type=_num(above=0), default=60, help="seconds to wait for readiness")

    p = _command(sub, "publish", _publish, "push a tested image to a registry, or write an archive")
    p.description = (
        "Push IMAGE to REGISTRY/REPOSITORY (by digest, read back and verified), or write it to an archive "
        "with --to oci-archive:FILE.tar. Credentials: docker login / credential helpers, or "
        "EDGEBENCH_REGISTRY_USERNAME and EDGEBENCH_REGISTRY_PASSWORD."
    )
    p.add_argument("image", nargs="+", help="image tag or id, e.g. edgebench/digits-rf:1-amd64; several images "
                                            "of one model (one per architecture) make a multi-arch image")
    p.add_argument("--to-registry", dest="destination", metavar="REGISTRY/REPOSITORY",
                   help="where to push, e.g. 127.0.0.1:5000/edge/digits-rf (also accepted as the last argument)")
    p.add_argument("--to", help="oci-archive:FILE.tar for an air-gapped site")
    p.add_argument("--tag", action="append", default=[], help="tag to push (repeatable; default: model version)")
    p.add_argument("--force", action="store_true", help="publish even if the image has no passing test (recorded)")
    p.add_argument("--pull-back", action="store_true", help="pull by digest and test what came back")
    p.add_argument("--sign", metavar="KEY", help="sign and attest with this cosign key after the push")
    p.add_argument("--via", metavar="REGISTRY/REPOSITORY",
                   help="with --to oci-archive: and --sign, the registry to sign in (signatures travel in the archive)")

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(title="keys commands", metavar="ACTION")
    _command(keys, "generate", _keys_generate, "make a cosign key pair (password from COSIGN_PASSWORD, never "
                                               "stored)").add_argument("--out", required=True, help="folder")

    p = _command(sub, "sign", _sign, "sign a published digest and attest its SBOM, image test, parity, bench")
    p.add_argument("reference", help="REGISTRY/REPOSITORY@sha256:...")
    p.add_argument("--key", required=True, help="cosign private key (its password in COSIGN_PASSWORD)")

    p = _command(sub, "verify", _verify, "verify the signature and attestations of a digest (exit 1 when not)")
    p.add_argument("reference", help="REGISTRY/REPOSITORY@sha256:...")
    p.add_argument("--key", required=True, help="cosign public key")
    p.add_argument("--require", default="sbom,image-test",
                   help="attestations that must be there, signed: sbom,image-test,bench,parity")
    p.add_argument("--model", help="NAME:VERSION whose card's sha256 the SBOM must name")

    deploy = sub.add_parser("deploy", help="GitOps for edge sites: render, bundle, status").add_subparsers(
        title="deploy commands", metavar="ACTION")
    p = _command(deploy, "render", _deploy_render, "write the GitOps repository's files (no commit); deterministic")
    p.add_argument("model", nargs="?", help="NAME[:VERSION] or REF@sha256:...: what unpinned sites start from")
    _sites_args(p)
    p.add_argument("--key", help="cosign public key: also write the node signature policy")
    p = _command(deploy, "bundle", _deploy_bundle, "one archive for a disconnected site: images, signatures, "
                                                   "attestations, its manifests")
    p.add_argument("model", nargs="?", help="(for reading; the site's pinned digest is what goes in)")
    p.add_argument("--site", required=True)
    _sites_args(p)
    p.add_argument("--out", required=True, help="archive to write, e.g. plant-7.tar")
    p = _command(deploy, "status", _deploy_status, "per site: the digest Git pins and what its endpoint answers")
    _sites_args(p)

    p = _command(sub, "promote", _promote, "gate, then one commit moving a wave of sites to a digest (or back)")
    p.add_argument("reference", help="MODEL@sha256:..., REGISTRY/REPO@sha256:..., or MODEL with --rollback")
    _sites_args(p)
    p.add_argument("--wave", type=_num(whole=True, at_least=0), required=True)
    p.add_argument("--key", help="cosign public key: the gate checks the signature and attestations")
    p.add_argument("--allow-unsigned", action="store_true", help="skip the signature gate (recorded)")
    p.add_argument("--status-file", help="site health from this file instead of each site's endpoint")
    p.add_argument("--rollback", action="store_true", help="a commit putting the wave back on its previous digest")

    p = _command(sub, "monitor", _monitor, "drift at the sites from counts; `monitor export` packs a cut-off "
                                           "site's spool")
    p.add_argument("model", help="NAME[:VERSION], or `export` with --spool and --out")
    p.add_argument("--source", help="http://PROMETHEUS:9090, http://SERVER:8080/metrics, or a spool (.jsonl, folder, "
                                    ".tar)")
    p.add_argument("--window", default="1h", help="window length: 90s, 30m, 1h, 2d (default 1h)")
    p.add_argument("--windows", type=_num(whole=True, at_least=1), default=2, help="consecutive windows (default 2)")
    p.add_argument("--on-drift", metavar="NOTEBOOK",
                   help="run this retrain notebook headless when drift persists (else drift exits 1)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="extra parameter for the retrain notebook (repeatable)")
    p.add_argument("--spool", help="with `export`: the server's spool folder (EDGEBENCH_SPOOL_DIR)")
    p.add_argument("--out", help="with `export`: the archive to write")

    p = _command(sub, "trust-policy", _trust_policy, "write a site's signature policy: containers-policy.json, "
                                                     "registries.d, a Kyverno ClusterPolicy")
    p.add_argument("--key", required=True, help="cosign public key")
    p.add_argument("--repository", action="append", default=[], required=True,
                   help="REGISTRY/REPOSITORY whose images must be signed (repeatable)")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--strict", action="store_true", help="reject every other image on the node too")

    p = _command(sub, "load", _load, "load an image archive written by `publish --to oci-archive:`")
    p.add_argument("archive")
    p.add_argument("--platform", help="which image of a multi-arch archive (default: this engine's)")
    p.add_argument("--verify", metavar="PUBLIC_KEY", help="verify signatures and attestations first; refuse "
                                                          "the archive when they fail")
    p.add_argument("--require", default="sbom,image-test", help="attestations --verify requires")
    p.add_argument("--to", metavar="REGISTRY/REPOSITORY", help="load into this registry (signatures included) "
                                                                "instead of the engine; needs --verify")

    profiles = sub.add_parser("profiles", help="device profiles: list, show, calibrate").add_subparsers(
        title="profiles commands", metavar="ACTION")
    p = _command(sub, "run", _run, "run a notebook headless: executed copy, HTML report, results, gates")
    p.add_argument("notebook")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="notebook parameter (repeatable); lists as JSON, e.g. -p devices '[\"rpi4-1gb\"]'")
    p.add_argument("--output-dir", help="where to write executed.ipynb, report.html, results.json")
    p.add_argument("--timeout", type=_num(above=0), help="seconds per cell")

    p = _command(sub, "sweep", _sweep, "run a notebook over a parameter grid in parallel on Dask")
    p.add_argument("notebook")
    p.add_argument("--grid", required=True, help="YAML: parameters (name -> list), fixed (name -> value)")
    p.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=_num(whole=True, at_least=1), default=2, help="local cluster processes")
    p.add_argument("--output-dir")

    p = _command(sub, "pipeline", _pipeline, "bench, build, test and publish a stored model, with gates")
    p.add_argument("--model", required=True, help="NAME or NAME:VERSION")
    p.add_argument("--device", action="append", default=[], help="device profile (repeatable)")
    p.add_argument("--slo-p99-ms", type=_num(above=0))
    p.add_argument("--slo-ram-mb", type=_num(above=0))
    p.add_argument("--registry", help="REGISTRY/REPOSITORY to push to")
    p.add_argument("--archive", help="write the image to this .tar instead of pushing")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--platform", action="append", default=[],
                   help="build and test this platform (repeatable; default: the devices' architectures)")
    p.add_argument("--sign", metavar="KEY", help="sign and attest what is published (gate signed)")
    p.add_argument("--memory", default="512m", help="RAM limit for the image test")
    p.add_argument("--no-containers", action="store_true", help="stop after the bench")

    p = _command(sub, "export-pipeline", _export_pipeline, "write a CI pipeline that calls these commands")
    p.add_argument("--format", required=True, choices=["tekton", "github-actions"])
    p.add_argument("--model", default="digits-rf")
    p.add_argument("--device", action="append", default=[])
    p.add_argument("--slo-p99-ms", type=_num(above=0), default=20.0)
    p.add_argument("--slo-ram-mb", type=_num(above=0), default=256.0)
    p.add_argument("--registry")
    p.add_argument("--no-train", action="store_true", help="do not run notebooks/train.ipynb first")
    p.add_argument("-o", "--output", help="file to write (default: print)")

    _command(profiles, "list", _profiles_list, "every device profile on the search path")
    _command(profiles, "show", _profiles_show, "one profile with every figure and its source").add_argument("name")
    _command(profiles, "calibrate", _profiles_calibrate, "measure this host (cached)").add_argument(
        "--force", action="store_true", help="re-measure even if a fresh calibration is cached")

    p = _command(sub, "bench", _bench, "measure a model on the host and predict it per device")
    p.add_argument("ref", help="NAME or NAME:VERSION")
    p.add_argument("--device", action="append", default=[], help="device profile (repeatable; default rpi4-1gb)")
    p.add_argument("--slo-p99-ms", type=_num(above=0), help="p99 latency budget; exit code 1 when a device fails it")
    p.add_argument("--slo-ram-mb", type=_num(above=0), help="RAM budget")
    p.add_argument("--in-container", action="store_true", help="also run the image under each device's limits")
    p.add_argument("--int8", choices=["dynamic", "static"], help="also quantize and bench the int8 variant")
    p.add_argument("--seconds", type=_num(above=0), default=2.0, help="length of each latency loop")
    p.add_argument("--remote", metavar="ssh://USER@HOST[:PORT]",
                   help="measure on this board: its Docker Engine over SSH, under the device's limits")
    p.add_argument("--ssh-key", help="private key for --remote (default: your SSH keys)")
    p.add_argument("--allow-emulated", action="store_true",
                   help="with --remote: run on a board of another architecture under emulation (no timing)")

    p = _command(sub, "doctor", _doctor, "what works on this machine (engine, emulation, registries, tools) and "
                                          "how to fix the rest")
    p.add_argument("--registry", action="append", default=[], help="also try this registry (repeatable)")

    p = _command(sub, "demo", _demo, "the whole flow on embedded defaults: train, export, bench, build, test, "
                                      "archive")
    p.add_argument("--no-containers", action="store_true", help="skip build, test and publish")

    models = sub.add_parser("models", help="list, show and remove stored models").add_subparsers(
        title="models commands", metavar="ACTION")
    _command(models, "list", _models_list, "latest version of every model")
    _command(models, "show", _models_show, "the card of NAME or NAME:VERSION").add_argument("ref")
    _command(models, "rm", _models_rm, "remove NAME (every version) or NAME:VERSION").add_argument("ref")

    store = sub.add_parser("store", help="maintain the store").add_subparsers(title="store commands",
                                                                             metavar="ACTION")
    _command(store, "check", _store_check, "check the index and every stored file; name damage and the fix") \
        .add_argument("--quick", action="store_true", help="check that files exist without hashing them")
    _command(store, "rebuild", _store_rebuild, "rebuild a damaged index from the journal and the blobs") \
        .add_argument("--force", action="store_true", help="rebuild even when the index is healthy")
    return parser


def _num(**bounds: Any) -> Callable[[str], float]:
    """An argparse type: a finite number within ``bounds`` (see :func:`edgebench.core.numbers.number`)."""

    def parse(text: str) -> float:
        try:
            value = int(text) if bounds.get("whole") else float(text)
            return number(value, "value", **bounds)
        except (ValueError, InvalidInputError) as exc:
            wanted = str(exc).split(", got")[0].removeprefix("value ") if isinstance(exc, InvalidInputError) \
                else f"must be {'a whole number' if bounds.get('whole') else 'a number'}"
            raise argparse.ArgumentTypeError(f"{wanted}, got {text!r}") from None

    return parse


def _command(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=handler)
    return p


# -- handlers ---------------------------------------------------------------------------------------------


def _store(args: argparse.Namespace) -> Store:
    return Store(args.home)


def _export(args: argparse.Namespace) -> tuple[Any, str]:
    from .export import export_model

    model = load_pickle(Path(args.model_file))
    tolerance = Tolerance(args.atol, args.rtol, args.min_label_agreement)
    card = export_model(
        model, load_sample(Path(args.sample)), args.name,
        held_out=load_sample(Path(args.held_out)) if args.held_out else None,
        tolerance=tolerance, allow_mismatch=args.allow_mismatch, metadata=_json_arg(args.metadata, "--metadata"),
        store=_store(args),
    )
    assert card.parity is not None
    return card.to_dict(), f"stored {card.ref} ({card.size_bytes / 1024:.1f} KiB): {card.parity.summary()}"


def _import_onnx(args: argparse.Namespace) -> tuple[Any, str]:
    from .export import import_onnx

    sample = load_sample(Path(args.sample))
    card = import_onnx(args.onnx_file, sample, args.name, metadata=_json_arg(args.metadata, "--metadata"),
                       store=_store(args))
    return card.to_dict(), f"stored {card.ref} ({card.size_bytes / 1024:.1f} KiB) from {args.onnx_file}"


def _serve(args: argparse.Namespace) -> tuple[Any, str]:
    import asyncio

    from .serve.__main__ import options, serve
    from .serve.model import Model

    store = _store(args)
    card = store.get(args.ref)
    model = Model(store.model_path(card), card.to_dict(), threads=args.threads)
    flags = ["--host", args.host, "--port", str(args.port), "--threads", str(args.threads),
             "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    code = asyncio.run(serve(options(flags), model=model))
    if code:
        message = f"the server stopped with exit code {code} (its message is above)"
        raise StepFailed(message, {"error": message, "exit": code})
    return {"exit": code}, ""


def _build(args: argparse.Namespace) -> tuple[Any, str]:
    from .emulation import host_arch
    from .image.builder import build_image, write_build_context
    from .progress import Lines

    platforms = args.platform or [f"linux/{host_arch()}"]
    if args.context_only:
        if len(platforms) > 1:
            raise InvalidInputError("--context-only writes one platform's context: give one --platform")
        folder = write_build_context(args.ref, args.context_only, platforms[0], base_image=args.base_image,
                                     store=_store(args))
        return {"context": str(folder)}, f"wrote the build context to {folder}"
    images = [build_image(args.ref, platform, base_image=args.base_image, tags=args.tag, store=_store(args),
                          progress=Lines()) for platform in platforms]
    data = [{**image.to_dict(), "build_log": None} for image in images]
    text = "\n".join(f"built {i.tag} ({i.platform}, {i.size_bytes / 2**20:.1f} MiB) in {i.build_seconds:.1f} s"
                     for i in images)
    return (data if len(data) > 1 else data[0]), text


def _test_image(args: argparse.Namespace) -> tuple[Any, str]:
    from .image.tester import test_image
    from .progress import Lines

    reports = [test_image(image, memory=args.memory, cpuset=args.cpuset, timeout=args.timeout, store=_store(args),
                          progress=Lines()) for image in args.image]
    data = [r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict()
    text = "\n".join(f"{r.image}: {r.summary()}" if len(reports) > 1 else r.summary() for r in reports)
    if not all(r.passed for r in reports):
        raise StepFailed(text, data)
    return data, text


def _publish(args: argparse.Namespace) -> tuple[Any, str]:
    from .progress import Lines
    from .publish import publish

    images = list(args.image)
    if not (args.to or args.destination) and len(images) > 1 and ":" not in images[-1].rsplit("/", 1)[-1]:
        args.destination = images.pop()  # IMAGE... REGISTRY/REPOSITORY: the last one has no tag
    destination = args.to or args.destination
    if not destination or (args.to and args.destination):
        raise InvalidInputError("give either REGISTRY/REPOSITORY or --to oci-archive:FILE.tar")
    result = publish(images if len(images) > 1 else images[0], destination, args.tag, force=args.force,
                     pull_back=args.pull_back, sign=args.sign, via=args.via, store=_store(args), progress=Lines())
    lines = [f"published {result.model} ({result.pushed_bytes / 2**20:.1f} MiB in {result.seconds:.1f} s)"]
    lines += [f"  {reference}" for reference in result.references]
    return result.to_dict(), "\n".join(lines)


def _keys_generate(args: argparse.Namespace) -> tuple[Any, str]:
    from .publish.signing import generate_keys

    made = generate_keys(args.out)
    return made, f"wrote {made['private']} (0600; keep it secret) and {made['public']} (give it to the sites)"


def _sign(args: argparse.Namespace) -> tuple[Any, str]:
    from .progress import Lines
    from .publish import sign

    attested = sign(args.reference, args.key, store=_store(args), progress=Lines())
    lines = [f"signed {args.reference}"] + [f"  {d}: {', '.join(kinds) or 'signed'}" for d, kinds in attested.items()]
    return {"reference": args.reference, "attestations": attested}, "\n".join(lines)


def _verify(args: argparse.Namespace) -> tuple[Any, str]:
    from .publish.signing import verify

    expected = _store(args).get(args.model).sha256 if args.model else None
    require = [k.strip() for k in args.require.split(",") if k.strip()]
    report = verify(args.reference, args.key, require, expected_sha256=expected)
    lines = [report.summary()] + [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.message}" for c in report.checks]
    if not report.passed:
        raise StepFailed(report.summary(), report.to_dict(), "\n".join(lines))
    return report.to_dict(), "\n".join(lines)


def _sites_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sites", required=True, help="sites.yaml")
    p.add_argument("--repo", required=True, help="the GitOps repository (a git working tree)")


def _deploy_render(args: argparse.Namespace) -> tuple[Any, str]:
    from .deploy import render_repo

    changed = render_repo(args.sites, args.repo, args.model, public_key=args.key, store=_store(args))
    return {"changed": changed}, (f"wrote {len(changed)} file(s) in {args.repo} (not committed)" if changed
                                  else f"{args.repo} is up to date")


def _deploy_bundle(args: argparse.Namespace) -> tuple[Any, str]:
    from .deploy import bundle

    made = bundle(args.site, args.sites, args.repo, args.out, store=_store(args))
    return made, (f"wrote {made['archive']} ({made['bytes'] / 2**20:.1f} MiB; the image alone "
                  f"{made['image_bytes'] / 2**20:.1f} MiB) with {len(made['manifests'])} manifest file(s); at the "
                  f"site: edgebench load {Path(made['archive']).name} --verify cosign.pub")


def _deploy_status(args: argparse.Namespace) -> tuple[Any, str]:
    from .deploy import status

    found = status(args.sites, args.repo, store=_store(args))
    lines = [f"{'SITE':<20} {'WAVE':>4}  {'DESIRED':<20} ANSWER"]
    lines += [f"{s.site:<20} {s.wave:>4}  {(s.desired or '-')[:19]:<20} {s.answer}" for s in found]
    return [s.__dict__ for s in found], "\n".join(lines)


def _promote(args: argparse.Namespace) -> tuple[Any, str]:
    from .deploy import promote, rollback, status_file_health

    if args.rollback:
        done = rollback(args.sites, args.repo, args.wave, key=args.key, store=_store(args))
    else:
        extra = {"health": status_file_health(args.status_file)} if args.status_file else {}
        done = promote(args.reference, args.sites, args.repo, args.wave, key=args.key,
                       allow_unsigned=args.allow_unsigned, store=_store(args), **extra)
    lines = [done.summary()] + [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.message}" for c in done.gate]
    if not done.passed:
        raise StepFailed(done.summary(), done.to_dict(), "\n".join(lines))
    return done.to_dict(), "\n".join(lines)


def _monitor(args: argparse.Namespace) -> tuple[Any, str]:
    from .monitor import export_spool, monitor, on_drift

    if args.model == "export":
        if not args.spool or not args.out:
            raise InvalidInputError("monitor export needs --spool FOLDER and --out FILE.tar")
        made = export_spool(args.spool, args.out)
        return made, (f"wrote {made['archive']}: {made['snapshots']} snapshot(s) of {made['model']}, {made['rows']} "
                      "rows (read it with `edgebench monitor MODEL --source FILE`; openmetrics.txt inside backfills "
                      "a Prometheus with promtool)")
    if not args.source:
        raise InvalidInputError("give --source: a Prometheus URL, a /metrics URL or a spool")
    report = monitor(args.model, args.source, window=args.window, windows=args.windows, store=_store(args))
    data = report.to_dict()
    lines = [report.summary()]
    if report.drift and args.on_drift:
        from .runs import check_parameters

        extra = check_parameters(args.on_drift, dict(args.parameter), from_text=True) if args.parameter else {}
        run = on_drift(report, args.on_drift, parameters=extra, store=_store(args))
        data["retrain"] = run.to_dict()
        lines.append(f"ran {args.on_drift}: {'passed' if run.passed else 'a gate failed'} ({run.report})")
        if not run.passed:
            raise StepFailed("\n".join(lines), data)
    elif report.drift:  # like a failing gate: a cron job or CI step notices
        raise StepFailed(lines[0], data, "\n".join(lines))
    return data, "\n".join(lines)


def _trust_policy(args: argparse.Namespace) -> tuple[Any, str]:
    from .publish.policy import NODE_KEY, trust_policy

    written = trust_policy(args.key, args.repository, args.out, strict=args.strict)
    return [str(p) for p in written], "\n".join(
        [f"wrote {p}" for p in written] + [f"on each node: the key at {NODE_KEY}, containers-policy.json as "
                                           "/etc/containers/policy.json, registries.d/ under /etc/containers/"])


def _load(args: argparse.Namespace) -> tuple[Any, str]:
    from .publish.archive import load_archive, load_verified

    if args.verify:
        require = tuple(k.strip() for k in args.require.split(",") if k.strip())
        done = load_verified(args.archive, args.verify, to=args.to, require=require, platform=args.platform)
        return done.to_dict(), f"{done.verification.summary()}\nloaded into {done.destination}"
    if args.to:
        raise InvalidInputError("--to loads a signed archive into a registry: give --verify PUBLIC_KEY too")
    loaded = load_archive(args.archive, platform=args.platform)
    others = f"; the archive also holds {', '.join(loaded.others)}" if loaded.others else ""
    return loaded.__dict__, (f"loaded {loaded.image_id} ({loaded.platform}, "
                             f"{', '.join(loaded.tags) or 'untagged'}){others}")


def _run(args: argparse.Namespace) -> tuple[Any, str]:
    from .runs import run_notebook

    given = dict(args.parameter)
    run = run_notebook(args.notebook, given, output_dir=args.output_dir, from_text=True, timeout=args.timeout,
                       store=_store(args))
    lines = [f"ran {Path(run.notebook).name} in {run.seconds:.1f} s", f"  report:   {run.report}",
             f"  notebook: {run.executed}"]
    lines += [f"  {k}: {v}" for k, v in run.results.items() if k != "gates"]
    lines += [f"  gate {k}: {'passed' if v else 'FAILED'}" for k, v in run.gates.items()]
    if not run.passed:
        raise StepFailed("\n".join(lines) + "\na gate failed", run.to_dict())
    return run.to_dict(), "\n".join(lines)


def _sweep(args: argparse.Namespace) -> tuple[Any, str]:
    from .runs import sweep

    result = sweep(args.notebook, args.grid, scheduler=args.scheduler, workers=args.workers,
                   output_dir=args.output_dir, store=_store(args))
    text = f"{len(result.rows)} runs on {result.scheduler}\n{result.table()}"
    if result.failed:
        raise StepFailed(text + f"\n{len(result.failed)} of {len(result.rows)} runs failed", result.to_dict())
    return result.to_dict(), text


def _pipeline(args: argparse.Namespace) -> tuple[Any, str]:
    from .core.profiles import SLO
    from .pipeline import run_pipeline

    if args.registry and args.archive:
        raise InvalidInputError("give --registry or --archive, not both")
    lines: list[str] = []
    say = lines.append if args.json else print
    result = run_pipeline(args.model, args.device, SLO(p99_ms=args.slo_p99_ms, ram_mb=args.slo_ram_mb),
                          registry=args.registry, archive=args.archive, tags=args.tag,
                          platforms=args.platform or None, sign=args.sign,
                          containers=not args.no_containers, memory=args.memory, store=_store(args), say=say)
    gates = ", ".join(f"{k} {'passed' if v else 'FAILED'}" for k, v in result.gates.items()) or "none"
    if not result.passed:
        raise StepFailed(f"pipeline for {result.model}: gates {gates}", result.to_dict())
    return result.to_dict(), f"pipeline for {result.model}: gates {gates}"


def _export_pipeline(args: argparse.Namespace) -> tuple[Any, str]:
    from .ci import export_pipeline

    text = export_pipeline(args.format, model=args.model, devices=args.device or ["rpi4-1gb"],
                           slo_p99_ms=args.slo_p99_ms, slo_ram_mb=args.slo_ram_mb, registry=args.registry,
                           train=not args.no_train)
    if args.output:
        write_output(Path(args.output), text)
        return {"format": args.format, "path": args.output}, f"wrote {args.output}"
    return {"format": args.format, "yaml": text}, text.rstrip()


def _profiles_list(args: argparse.Namespace) -> tuple[Any, str]:
    from .profiles import list_profiles

    found = list_profiles()
    lines = [f"{'DEVICE':<18} {'ARCH':<6} {'CORES':>5} {'USABLE RAM':>10}  TITLE"]
    lines += [f"{p.name:<18} {p.arch:<6} {p.cores:>5} {p.usable_ram_mb:>8.0f}MB  {p.title}" for p in found]
    lines.append("host               (this machine, measured: `edgebench profiles calibrate`)")
    return [p.to_dict() for p in found], "\n".join(lines)


def _profiles_show(args: argparse.Namespace) -> tuple[Any, str]:
    from .profiles import load_profile

    profile = load_profile(args.name)
    lines = [f"{profile.name}: {profile.title} ({profile.arch}, {profile.cpu})", f"  file: {profile.path}"]
    if profile.extends:
        lines.append(f"  extends: {profile.extends}")
    for key, figure in sorted(profile.figures.items()):
        mark = "  [unverified]" if figure.unverified else ""
        lines.append(f"  {key:<22} {figure.value:>10g}   {figure.source}{mark}")
    lines.append(f"  usable RAM {profile.usable_ram_mb:.0f} MB; "
                 f"FP32 peak per core {profile.peak_gflops_core:.1f} GFLOPS")
    return profile.to_dict(), "\n".join(lines)


def _profiles_calibrate(args: argparse.Namespace) -> tuple[Any, str]:
    from .bench.calibration import cache_path, calibrate

    c = calibrate(force=args.force)
    return c.to_dict(), (
        f"{c.cpu_model}: {c.cores} cores, FP32 peak/core {c.clock_ghz * c.flops_per_cycle:.1f} GFLOPS, memcpy "
        f"{c.memcpy_mbps:.0f} MB/s, 7-zip single {c.sevenzip_single_mips:.0f} MIPS, onnxruntime run overhead "
        f"{c.ort_overhead_us:.1f} us (cached at {cache_path()})"
    )


def _bench(args: argparse.Namespace) -> tuple[Any, str]:
    from .bench import benchmark
    from .core.profiles import SLO
    from .progress import Lines

    slo = SLO(p99_ms=args.slo_p99_ms, ram_mb=args.slo_ram_mb)
    result = benchmark(args.ref, args.device or ["rpi4-1gb"], slo, in_container=args.in_container,
                       int8=args.int8 or False, seconds=args.seconds, store=_store(args),
                       progress=Lines(), remote=args.remote, ssh_key=args.ssh_key,
                       allow_emulated=args.allow_emulated)
    reports = result if isinstance(result, list) else [result]
    data = [r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict()
    lines = []
    for report in reports:
        lines.append(f"{report.model}" + (f" (int8 of {report.variant_of})" if report.variant_of else ""))
        for t, p in sorted(report.measured.latency_ms.items()):
            lines.append(f"  host, {t} thread(s): p50 {p.p50:.3f} ms, p99 {p.p99:.3f} ms ({p.runs} runs); "
                         f"peak RSS {report.measured.peak_rss_mb:.0f} MB")
        for d in report.devices:
            lines.append(f"  {d.device:<18} p50 {d.predicted_p50_ms:8.3f} ms  p99 {d.interval_p99_ms[0]:.3f}-"
                         f"{d.interval_p99_ms[1]:.3f} ms  RAM {d.ram_needed_mb:.0f}/{d.usable_ram_mb:.0f} MB  "
                         f"{d.verdict}{'  (' + '; '.join(d.reasons) + ')' if d.reasons else ''}")
    text = "\n".join(lines)
    if not all(r.passed for r in reports):
        raise StepFailed(text + "\nSLO not met on every device", data)
    return data, text


def _doctor(args: argparse.Namespace) -> tuple[Any, str]:
    from .doctor import doctor

    report = doctor(args.registry)
    if not report.ok:
        failed = sum(not f.ok for f in report.findings)
        raise StepFailed(f"{failed} part(s) need attention (see above)", report.to_dict(), report.summary())
    return report.to_dict(), report.summary()


def _demo(args: argparse.Namespace) -> tuple[Any, str]:
    from .demo import run_demo

    quiet = getattr(args, "json", False)
    summary = run_demo(_store(args), containers=not args.no_containers, say=(lambda _: None) if quiet else print)
    return summary, "demo done"


def _models_list(args: argparse.Namespace) -> tuple[Any, str]:
    store = _store(args)
    cards = store.list()
    if not cards:
        return [], "no models yet: export one with eb.export_model(...) or `edgebench export`"
    missing = [c.ref for c in cards if not store.has_model_file(c)]
    lines = [f"{'MODEL':<32} {'VERSION':>7}  {'SIZE':>9}  {'PARITY':<6}  ESTIMATOR"]
    lines += [
        f"{c.name:<32} {c.version:>7}  {c.size_bytes / 1024:>7.1f}K  {_parity_word(c):<6}  {c.estimator}"
        + ("  [ONNX FILE MISSING]" if c.ref in missing else "")
        for c in cards
    ]
    if missing:
        lines.append(f"{len(missing)} model(s) lost their ONNX file: run `edgebench store check` for the fix")
    return [{**c.to_dict(), "onnx_missing": c.ref in missing} for c in cards], "\n".join(lines)


def _models_show(args: argparse.Namespace) -> tuple[Any, str]:
    store = _store(args)
    card = store.get(args.ref)
    lines = [
        f"{card.ref}  sha256 {card.sha256}",
        *([] if store.has_model_file(card) else [
            f"  ONNX FILE MISSING ({store.blob_path(card.sha256)}): run `edgebench store check` for the fix"]),
        f"  {card.estimator}, {card.size_bytes} bytes, opset {card.opset}, created {card.created}",
        *(f"  input  {t.name} {t.datatype} {t.shape}" for t in card.inputs),
        *(f"  output {t.name} {t.datatype} {t.shape}" for t in card.outputs),
        f"  parity: {card.parity.summary() if card.parity else 'not checked (imported ONNX)'}",
        f"  golden samples: {len(card.golden)}",
    ]
    return {**card.to_dict(), "onnx_missing": not store.has_model_file(card)}, "\n".join(lines)


def _models_rm(args: argparse.Namespace) -> tuple[Any, str]:
    removed = _store(args).remove(args.ref)
    name = args.ref.partition(":")[0]
    return {"name": name, "removed": removed}, f"removed {name} versions {removed}"


def _store_check(args: argparse.Namespace) -> tuple[Any, str]:
    report = _store(args).check(full=not args.quick)
    if not report.ok:
        raise StepFailed(report.summary(), report.to_dict())
    return report.to_dict(), report.summary()


def _store_rebuild(args: argparse.Namespace) -> tuple[Any, str]:
    report = _store(args).rebuild_index(force=args.force)
    if report.not_recovered:
        raise StepFailed(report.summary(), report.to_dict())
    return report.to_dict(), report.summary()


def _parity_word(card: ModelCard) -> str:
    return card.parity.verdict if card.parity else "n/a"


# -- loading files ----------------------------------------------------------------------------------------


def load_pickle(path: Path) -> Any:
    """Load an estimator from a joblib/pickle file the user named. This runs code from the file."""
    import joblib

    if not path.is_file():
        raise InvalidInputError(f"model file not found: {path}", path=str(path))
    try:
        return joblib.load(path)
    except Exception as exc:
        raise InvalidInputError(
            f"cannot load a model from {path}: {exc} (expected a joblib or pickle file)", path=str(path)
        ) from exc


def load_sample(path: Path) -> Any:
    """Read sample rows from .npy, .npz (dict of arrays) or .csv (a DataFrame when pandas is installed)."""
    if not path.is_file():
        raise InvalidInputError(f"sample file not found: {path}", path=str(path))
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        if path.suffix == ".csv":
            header = path.open().readline().strip().split(",")
            if all(_is_number(cell) for cell in header):
                raise InvalidInputError(
                    f"sample {path} has no header row: its first line ({', '.join(header[:4])}"
                    f"{', ...' if len(header) > 4 else ''}) would become column names. Add a first line with the "
                    "column names, or save the rows with numpy.save as .npy", path=str(path),
                )
            try:
                import pandas as pd
            except ImportError:
                return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
            return pd.read_csv(path)
    except InvalidInputError:
        raise
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"cannot read sample {path}: {exc}", path=str(path)) from exc
    raise InvalidInputError(f"sample {path} has suffix {path.suffix!r}; use .npy, .npz or .csv", path=str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_output(path: Path, text: str) -> None:
    """Write a file the user named, or say in their words why it cannot be written."""
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder: give a file name, e.g. {path / 'pipeline.yaml'}", path=str(path))
    if not path.parent.is_dir():
        raise InvalidInputError(f"cannot write {path}: the folder {path.parent} does not exist (create it first)",
                                path=str(path))
    try:
        path.write_text(text)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from None


def _json_arg(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InvalidInputError(f"{option} is not valid JSON: {exc}") from exc
