"""Notebooks as pipelines: parameter checks, headless runs with papermill, HTML reports, results and gates
read back, sweeps on Dask.

A notebook run writes into one folder: ``executed.ipynb``, ``report.html`` (inputs hidden) and
``results.json``, which the notebook fills with :func:`record` (``record(accuracy=0.98, gates={"parity":
True})``). A run passes when every gate recorded is true.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from . import config
from .core.errors import InvalidInputError, NotebookError, first_line
from .core.numbers import number
from .fsutil import atomic_writer
from .store import Store, open_store

RESULTS = "results.json"
_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def record(**values: Any) -> dict[str, Any]:
    """Inside a notebook: add values to the run's ``results.json`` (dicts are merged, e.g. ``gates``).

    Run interactively (no run folder), the values are only returned, so the same notebook works both ways.
    """
    folder = config.run_dir()
    if folder is None:
        return values
    path = folder / RESULTS
    current = json.loads(path.read_text()) if path.exists() else {}
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(current.get(key), dict):
            current[key] = {**current[key], **value}
        else:
            current[key] = value
    with atomic_writer(path) as f:
        f.write(json.dumps(current, indent=2, default=str).encode())
    return current


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: str
    help: str


def notebook_parameters(notebook: str | os.PathLike[str]) -> dict[str, Parameter]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (``name: type = default  # help``)."""
    import papermill

    path = _notebook(notebook)
    try:
        found = papermill.inspect_notebook(str(path))
    except Exception as exc:  # nbformat's NotJSONError, ValidationError, a truncated file...
        raise InvalidInputError(
            f"{path} is not a readable notebook ({first_line(exc)[:200]}): open it in JupyterLab to repair it, "
            "or restore it from version control", notebook=str(path),
        ) from None
    return {
        name: Parameter(name, (p.get("inferred_type_name") or "None").split("[")[0], p.get("default") or "",
                        p.get("help") or "")
        for name, p in found.items()
    }


def check_parameters(notebook: str | os.PathLike[str], given: Mapping[str, Any], *, from_text: bool = False
                     ) -> dict[str, Any]:
    """Refuse unknown names and wrong types (papermill would only warn); parse text from the command line."""
    declared = notebook_parameters(notebook)
    name = Path(notebook).name
    checked = {}
    for key, value in given.items():
        if key not in declared:
            raise InvalidInputError(
                f"{name} has no parameter {key!r}; its parameters are {', '.join(sorted(declared)) or 'none'}",
                notebook=str(notebook), parameter=key,
            )
        kind = declared[key].type
        checked[key] = _coerce(name, key, kind, value, from_text)
    return checked


def _coerce(notebook: str, key: str, kind: str, value: Any, from_text: bool) -> Any:
    expected = _TYPES.get(kind)
    if expected is None:
        return yaml.safe_load(value) if from_text and isinstance(value, str) else value
    if from_text and isinstance(value, str) and expected is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"parameter {key!r} of {notebook}: {value!r} does not parse: {exc}") from None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise InvalidInputError(
            f"parameter {key!r} of {notebook} is {kind}, but {value!r} is {type(value).__name__}",
            notebook=notebook, parameter=key,
        )
    return value


@dataclass
class NotebookRun:
    notebook: str
    output_dir: str
    parameters: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def executed(self) -> str:
        return str(Path(self.output_dir) / "executed.ipynb")

    @property
    def report(self) -> str:
        return str(Path(self.output_dir) / "report.html")

    @property
    def gates(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in (self.results.get("gates") or {}).items()}

    @property
    def passed(self) -> bool:
        return self.error is None and all(self.gates.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "executed": self.executed, "report": self.report, "gates": self.gates,
                "passed": self.passed}


def run_notebook(
    notebook: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    from_text: bool = False,
    timeout: float | None = None,
    store: Store | str | None = None,
) -> NotebookRun:
    """Run ``notebook`` headless with ``parameters``; write the executed notebook, an HTML report with the
    inputs hidden and the results; record the run in the store. A failing cell raises :class:`NotebookError`
    (with the cell's error) after the report is written."""
    import papermill

    if timeout is not None:
        number(timeout, "timeout", above=0)
    path = _notebook(notebook)
    params = check_parameters(path, parameters or {}, from_text=from_text)
    store = open_store(store)
    folder = Path(output_dir) if output_dir else store.home / "runs" / f"{_stamp()}-{path.stem}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is a file" if folder.is_file() else exc.strerror or str(exc)
        raise InvalidInputError(f"cannot write the run's files to {folder}: {why}; give a folder (it is made when "
                                "missing)", path=str(folder)) from None
    (folder / RESULTS).unlink(missing_ok=True)
    run = NotebookRun(str(path), str(folder), params)
    subject = _subject(path, params)
    run_id = store.start_run("notebook", subject, None, {"notebook": str(path), "parameters": params})
    start = time.perf_counter()
    try:
        with _env(EDGEBENCH_RUN_DIR=str(folder.resolve()), EDGEBENCH_HOME=str(store.home)):
            papermill.execute_notebook(
                str(path), run.executed, parameters=params, cwd=str(path.parent), kernel_name="python3",
                progress_bar=False, log_output=False, execution_timeout=timeout,
            )
    except papermill.PapermillExecutionError as exc:
        run.error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    run.seconds = round(time.perf_counter() - start, 2)
    results_path = folder / RESULTS
    run.results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if Path(run.executed).exists():
        _html(Path(run.executed), Path(run.report))
    store.finish_run(run_id, "passed" if run.passed else "failed", run.to_dict())
    if run.error is not None:
        raise NotebookError(
            f"notebook {path.name} failed in {run.error} (executed notebook: {run.executed})",
            notebook=str(path), output_dir=str(folder), run=run.to_dict(),
        )
    return run


def _notebook(notebook: str | os.PathLike[str]) -> Path:
    path = Path(notebook)
    if not path.is_file():
        raise InvalidInputError(f"notebook not found: {path}", notebook=str(path))
    if path.suffix != ".ipynb":
        raise InvalidInputError(f"{path} is not a notebook (.ipynb)", notebook=str(path))
    return path.resolve()


def _subject(path: Path, params: Mapping[str, Any]) -> str:
    """The model a run is about (its ``model``/``model_name`` parameter), else the notebook's name."""
    from .core.names import validate_name

    for key in ("model", "model_name"):
        value = params.get(key)
        if isinstance(value, str):
            with contextlib.suppress(InvalidInputError):
                return validate_name(value.partition(":")[0])
    return re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-.") or "notebook"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _html(executed: Path, report: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    report.write_text(body)


# -- sweeps ----------------------------------------------------------------------------------------------


def load_grid(grid: str | os.PathLike[str] | Mapping[str, Any], notebook: str | os.PathLike[str]
              ) -> list[dict[str, Any]]:
    """Parameter sets from a grid: ``parameters`` (name -> list of values, crossed) and ``fixed`` (name ->
    value). A ``model_name`` with ``{name}`` fields is formatted with each set."""
    if not isinstance(grid, str | os.PathLike):
        data: Any = grid
        label = "grid"
    else:
        path = Path(grid)
        label = str(path)
        if not path.is_file():
            raise InvalidInputError(f"grid file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("parameters"), Mapping) or not data["parameters"]:
        raise InvalidInputError(f"{label} needs a 'parameters' mapping of name -> list of values")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, Mapping):
        raise InvalidInputError(f"{label}: 'fixed' must be a mapping of name -> value")
    unknown = sorted(set(data) - {"parameters", "fixed"})
    if unknown:
        raise InvalidInputError(f"{label}: unknown key {unknown[0]!r}; a grid has 'parameters' and 'fixed'")
    for name, values in data["parameters"].items():
        if not isinstance(values, list) or not values:
            raise InvalidInputError(f"{label}: parameter {name!r} needs a non-empty list of values, got {values!r}")
    names = list(data["parameters"])
    sets = []
    for combination in itertools.product(*(data["parameters"][n] for n in names)):
        params = {**fixed, **dict(zip(names, combination, strict=True))}
        if isinstance(params.get("model_name"), str) and "{" in params["model_name"]:
            try:
                params["model_name"] = params["model_name"].format(**params)
            except (KeyError, IndexError, ValueError) as exc:
                raise InvalidInputError(
                    f"{label}: model_name template {params['model_name']!r} names {exc} that is not a parameter of "
                    f"the grid; it can use {', '.join('{' + k + '}' for k in sorted(params))}"
                ) from None
        sets.append(check_parameters(notebook, params))
    return sets


def _sweep_task(notebook: str, params: dict[str, Any], output_dir: str, home: str) -> dict[str, Any]:
    """One sweep task on a Dask worker: a notebook run whose failure is data, not an exception."""
    try:
        run = run_notebook(notebook, params, output_dir=output_dir, store=home)
        return {"parameters": params, "passed": run.passed, "results": run.results, "error": None,
                "seconds": run.seconds, "report": run.report}
    except Exception as exc:
        return {"parameters": params, "passed": False, "results": {}, "error": str(exc), "seconds": None,
                "report": None}


@dataclass
class SweepResult:
    notebook: str
    rows: list[dict[str, Any]]
    scheduler: str

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["error"] or not r["passed"]]

    def table(self, columns: list[str] | None = None) -> str:
        keys = sorted({k for r in self.rows for k in r["parameters"]})
        results = columns or sorted({k for r in self.rows for k, v in r["results"].items()
                                     if isinstance(v, int | float | str) and k != "gates"})
        rows = [[*keys, *results, "status"]]
        for r in self.rows:
            status = "ok" if r["passed"] else ("FAILED: " + (r["error"] or "a gate failed"))
            cells = [str(r["parameters"].get(k, "")) for k in keys] + [_cell(r["results"].get(k)) for k in results]
            rows.append([*cells, status])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
                         for row in rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value if value is not None else "-")


def sweep(
    notebook: str | os.PathLike[str],
    grid: str | os.PathLike[str] | Mapping[str, Any],
    *,
    scheduler: str | None = None,
    workers: int = 2,
    output_dir: str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
) -> SweepResult:
    """Run the notebook once per parameter set of ``grid``, in parallel on Dask: a ``LocalCluster`` of
    ``workers`` processes, or the cluster at ``scheduler`` (``tcp://HOST:PORT``). A failing task is reported
    with its parameters; the others complete."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise InvalidInputError("sweeps need Dask: pip install 'edgebench[sweep]'") from exc
    number(workers, "workers", whole=True, at_least=1)
    path = _notebook(notebook)
    sets = load_grid(grid, path)
    store = open_store(store)
    folder = Path(output_dir) if output_dir else store.home / "sweeps" / f"{_stamp()}-{path.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=15)
            except OSError as exc:
                raise InvalidInputError(f"no Dask scheduler answers at {scheduler}: {exc}") from None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        with client:
            futures = [client.submit(_sweep_task, str(path), params, str(folder / f"task-{i:03d}"),
                                     str(store.home), pure=False)
                       for i, params in enumerate(sets)]
            rows = client.gather(futures)
        result = SweepResult(str(path), rows, scheduler or f"LocalCluster({workers} workers)")
    finally:
        if cluster is not None:
            cluster.close()
    (folder / "sweep.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result
