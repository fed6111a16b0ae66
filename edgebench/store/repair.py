"""Check and repair the store: tell damage from an empty store, rebuild an index without losing anything.

``check`` reads the index (SQLite's own quick check, and whether it is empty while blobs remain), every version's
card and ONNX blob (present, sha256, card naming the same model) and the journal, and names each problem with the
models it affects and the command that fixes it.

``rebuild`` merges three witnesses, most trusted first: whatever the old index still reads, the journal (every
change appended as it was made), and the card blobs themselves. No version is dropped or renumbered silently: two
different models claiming one number are both kept (the later one moves to a new number, and the report says so),
versions whose files are gone are retired and reported, and step runs come back from the old index or the journal.
The new index is written beside the old one and swapped in with one rename, so a rebuild killed half-way leaves the
old index where it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import render
from ..core.card import ModelCard
from ..core.errors import StoreError
from . import RUN_COLUMNS, SCHEMA, TABLES, Store, blob_problem, now


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the store: what, which model (if any), and what to do."""

    kind: str
    message: str
    fix: str
    model: str | None = None


@dataclass(frozen=True)
class CheckReport:
    """What ``edgebench store check`` found."""

    home: str
    versions: int
    blobs: int
    runs: int
    problems: list[Problem]
    notes: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged_models(self) -> list[str]:
        return sorted({p.model for p in self.problems if p.model})

    def summary(self) -> str:
        head = (f"store {self.home}: {self.versions} versions, {self.blobs} blobs, {self.runs} step runs, "
                f"checked in {self.seconds:.2f} s")
        lines = [head + (": healthy" if self.ok else f": {len(self.problems)} problem(s)")]
        lines += [f"  {p.message}\n    fix: {p.fix}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"home": self.home, "ok": self.ok, "versions": self.versions, "blobs": self.blobs, "runs": self.runs,
                "problems": [p.__dict__ for p in self.problems], "damaged_models": self.damaged_models,
                "notes": self.notes, "seconds": self.seconds}

    def _repr_html_(self) -> str:
        rows = [(p.model or "-", p.message, p.fix) for p in self.problems]
        return (f"<p>{render.verdict(self.ok, 'healthy' if self.ok else 'damaged')} {self.versions} versions, "
                f"{self.blobs} blobs, {self.runs} step runs</p>"
                + (render.table(["model", "problem", "fix"], rows) if rows else ""))


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild recovered, from where, and what it could not."""

    home: str
    recovered: list[str]
    runs: int
    sources: dict[str, int]
    renumbered: list[str] = field(default_factory=list)
    not_recovered: list[str] = field(default_factory=list)
    moved_to: str | None = None

    def summary(self) -> str:
        lines = [f"rebuilt the index of {self.home}: {len(self.recovered)} versions and {self.runs} step runs "
                 f"recovered (from the old index {self.sources['index']}, the journal {self.sources['journal']}, "
                 f"card blobs {self.sources['blobs']})"]
        lines += [f"  renumbered: {r}" for r in self.renumbered]
        lines += [f"  NOT recovered: {r}" for r in self.not_recovered]
        if self.moved_to:
            lines.append(f"  the old index is kept at {self.moved_to}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- check ---------------------------------------------------------------------------------------------------


def check(store: Store, full: bool = True) -> CheckReport:
    """Check the index, the blobs it names (hashing them when ``full``) and the journal."""
    started = time.perf_counter()
    problems: list[Problem] = []
    notes: list[str] = []
    blobs = {p.name: p for p in store.blob_files()}
    versions, runs, problem = _index_rows(store, len(blobs), full)
    problems += [problem] if problem else []
    referenced: set[str] = set()
    for row in versions:
        ref = f"{row['name']}:{row['version']}"
        referenced.update((row["sha256"], row["card_sha256"]))
        problems += _check_version(store, row, ref, full)
    leftovers = [p for p in store.blobs.glob("*/.*")]
    if leftovers:
        notes.append(f"{len(leftovers)} temporary file(s) of interrupted writes (safe to delete): "
                     + ", ".join(str(p) for p in leftovers[:3]))
    unreferenced = sorted(set(blobs) - referenced)
    if versions and unreferenced:
        notes.append(f"{len(unreferenced)} blob(s) no version names (left by an interrupted export or a removed "
                     "model; harmless)")
    journal = read_journal(store)
    if journal.torn:
        notes.append(f"the journal's last line was cut by an interrupted write ({journal.torn} bytes); "
                     "harmless: that change was not committed")
    return CheckReport(str(store.home), len(versions), len(blobs), runs, problems, notes,
                       round(time.perf_counter() - started, 3))


def _index_rows(store: Store, blobs: int, full: bool) -> tuple[list[sqlite3.Row], int, Problem | None]:
    """The index's versions and run count, or the problem that keeps them from being read."""
    rebuild = "run `edgebench store rebuild`: it recovers every version from the journal and the blobs"
    empty = Problem("index-empty", f"the index {store.index_path} is empty or missing while {blobs} blobs are "
                    "stored", rebuild) if blobs else None
    if not store.index_path.exists():
        return [], 0, empty
    try:
        with _open_index(store.index_path) as db:
            if full and (verdict := db.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise sqlite3.DatabaseError(verdict)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "versions" not in tables:
                return [], 0, empty
            versions = db.execute("SELECT * FROM versions ORDER BY name, version").fetchall()
            return versions, db.execute("SELECT COUNT(*) FROM runs").fetchone()[0], None
    except (sqlite3.DatabaseError, OSError) as exc:
        return [], 0, Problem("index-damaged", f"the index {store.index_path} is damaged ({exc})", rebuild)


def _check_version(store: Store, row: sqlite3.Row, ref: str, full: bool) -> list[Problem]:
    reexport = (f"restore the file from a backup, or export the model again and retire this version with "
                f"`edgebench models rm {ref}`")
    problems = []
    card_problem = _blob_state(store, row["card_sha256"], full)
    if card_problem:
        return [Problem("card", f"the model card of {ref} {card_problem} "
                        f"({store.blob_path(row['card_sha256'])})", reexport, ref)]
    card_problem = _card_mismatch(store, row)
    if card_problem:
        return [Problem("card", f"the model card of {ref} {card_problem}", reexport, ref)]
    onnx_problem = _blob_state(store, row["sha256"], full)
    if onnx_problem:
        problems.append(Problem("onnx", f"the ONNX file of {ref} {onnx_problem} ({store.blob_path(row['sha256'])})",
                                reexport, ref))
    return problems


def _blob_state(store: Store, sha256: str, full: bool) -> str | None:
    path = store.blob_path(sha256)
    if not full:
        return None if path.is_file() else "is missing"
    return blob_problem(path, sha256)


def _card_mismatch(store: Store, row: sqlite3.Row) -> str | None:
    try:
        card = ModelCard.from_dict(json.loads(store.blob_path(row["card_sha256"]).read_bytes()))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return f"does not read ({exc})"
    if (card.name, card.version, card.sha256) != (row["name"], row["version"], row["sha256"]):
        return f"names {card.ref} with sha256 {card.sha256[:12]}..., not the indexed model"
    return None


# -- the journal ---------------------------------------------------------------------------------------------


@dataclass
class Journal:
    versions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    retired: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    torn: int = 0


def read_journal(store: Store) -> Journal:
    """Replay the journal: the last entry for each version, retirement and run wins."""
    journal = Journal()
    try:
        data = store.journal_path.read_bytes()
    except FileNotFoundError:
        return journal
    lines = data.split(b"\n")
    if lines and lines[-1]:
        journal.torn = len(lines[-1])  # an append cut short: never committed
    for line in lines[:-1]:
        try:
            entry = json.loads(line)
            op = entry.pop("op")
        except (ValueError, KeyError, AttributeError):
            continue
        if op == "version":
            journal.versions[(entry["name"], entry["version"])] = entry
            journal.retired.pop((entry["name"], entry["version"]), None)
        elif op == "retire":
            journal.retired[(entry["name"], entry["version"])] = entry
        elif op == "run":
            journal.runs[entry["id"]] = entry
    return journal


# -- rebuild -------------------------------------------------------------------------------------------------


def rebuild(store: Store, force: bool = False) -> RebuildReport:
    """Rebuild the index from the old index (what still reads), the journal and the card blobs.

    A healthy index is refused unless ``force``. Returns a :class:`RebuildReport`.
    """
    health = check(store, full=False)
    index_broken = any(p.kind.startswith("index") for p in health.problems)
    if not index_broken and not force:
        damaged = ", ".join(health.damaged_models)
        raise StoreError(
            f"the index of {store.home} is healthy ({health.versions} versions, {health.runs} step runs): nothing "
            "to rebuild" + (f". Damaged models ({damaged}) are fixed one by one: see `edgebench store check`"
                            if damaged else "") + ". Use `edgebench store rebuild --force` to rebuild it anyway",
            path=str(store.index_path),
        )
    old = _read_old_index(store.index_path)
    journal = read_journal(store)
    cards = _card_blobs(store)
    sources = {"index": 0, "journal": 0, "blobs": 0}
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    extra: list[tuple[dict[str, Any], str]] = []  # other models claiming a number already taken
    for source, rows in (("index", old.versions), ("journal", journal.versions.values()), ("blobs", cards)):
        for row in rows:
            key = (row["name"], row["version"])
            if key in chosen:
                if chosen[key]["sha256"] != row["sha256"]:
                    extra.append((row, source))
                continue
            chosen[key] = {**row, "_source": source}
    retired = {**journal.retired, **old.retired}
    not_recovered: list[str] = []
    renumbered: list[str] = []
    recovered: dict[tuple[str, int], dict[str, Any]] = {}
    seen_sha: dict[tuple[str, str], str] = {}
    for key, row in sorted(chosen.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        ref = f"{key[0]}:{key[1]}"
        if key in retired or (key[0], row["sha256"]) in seen_sha:
            continue  # removed by the user (its blobs may linger), or the same bytes under a kept number
        why = _unusable(store, row)
        if why:
            not_recovered.append(f"{ref}: {why}; its number stays retired")
            retired[key] = {"name": key[0], "version": key[1], "sha256": row["sha256"], "removed": now()}
            continue
        recovered[key] = row
        seen_sha[(key[0], row["sha256"])] = ref
        sources[row["_source"]] += 1
    runs = {**journal.runs, **old.runs}
    # models that lost their number to another one: keep them under a new number, and say so
    unique_extra = {(row["name"], row["sha256"]): (row, source) for row, source in extra}
    for (name, sha), (row, source) in sorted(unique_extra.items(), key=lambda kv: kv[1][0]["created"]):
        ref = f"{name}:{row['version']}"
        if (name, sha) in seen_sha:
            continue  # the same bytes are stored under another number already
        why = _unusable(store, row)
        if why:
            not_recovered.append(f"{ref} (sha256 {sha[:12]}..., a second model with that number): {why}")
            continue
        new = _free_number(name, recovered, retired, runs)
        card = _load_card(store, row["card_sha256"]).with_version(new)
        card_sha = store.put_blob(card.to_json().encode())
        recovered[(name, new)] = {**row, "version": new, "card_sha256": card_sha}
        seen_sha[(name, sha)] = f"{name}:{new}"
        sources[source] += 1
        renumbered.append(f"{ref} (sha256 {sha[:12]}..., created {row['created'][:19]}) shared its number "
                          f"with another model: stored as {name}:{new}")
    moved = _swap_in(store, recovered, retired, runs, "damaged" if index_broken else "replaced")
    store._journal(  # the journal learns what only the old index or the blobs knew, and the new numbers
        *({"op": "version", "name": name, "version": version, "sha256": row["sha256"],
           "card_sha256": row["card_sha256"], "created": row["created"]}
          for (name, version), row in recovered.items() if journal.versions.get((name, version), {}).get("sha256")
          != row["sha256"]),
        *({"op": "retire", **entry} for key, entry in retired.items() if key not in journal.retired),
    )
    return RebuildReport(
        str(store.home), [f"{n}:{v}" for n, v in sorted(recovered)], len(runs), sources, renumbered, not_recovered,
        str(moved) if moved else None,
    )


@dataclass
class _OldIndex:
    versions: list[dict[str, Any]] = field(default_factory=list)
    retired: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)


def _read_old_index(path: Path) -> _OldIndex:
    """Whatever rows of each table still read from a possibly damaged index."""
    old = _OldIndex()
    if not path.exists():
        return old
    for table in TABLES:
        with contextlib.suppress(sqlite3.DatabaseError, OSError):
            with _open_index(path) as db:
                rows = [dict(r) for r in db.execute(f"SELECT * FROM {table}")]
            if table == "versions":
                old.versions = rows
            elif table == "retired":
                old.retired = {(r["name"], r["version"]): r for r in rows}
            else:
                old.runs = {r["id"]: {k: r.get(k) for k in RUN_COLUMNS} for r in rows}
    return old


def _card_blobs(store: Store) -> list[dict[str, Any]]:
    """Index rows for every blob that is a model card."""
    rows = []
    for path in store.blob_files():
        if path.stat().st_size > 50_000_000:
            continue
        try:
            card = ModelCard.from_dict(json.loads(path.read_bytes()))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            continue  # an ONNX model, or not a card
        rows.append({"name": card.name, "version": card.version, "sha256": card.sha256, "card_sha256": path.name,
                     "created": card.created})
    return rows


def _unusable(store: Store, row: dict[str, Any]) -> str | None:
    card_problem = blob_problem(store.blob_path(row["card_sha256"]), row["card_sha256"])
    if card_problem:
        return f"its card {card_problem}"
    onnx_problem = blob_problem(store.blob_path(row["sha256"]), row["sha256"])
    if onnx_problem:
        return f"its ONNX file {onnx_problem}"
    return None


def _load_card(store: Store, card_sha256: str) -> ModelCard:
    return ModelCard.from_dict(json.loads(store.blob_path(card_sha256).read_bytes()))


def _free_number(name: str, versions: dict[tuple[str, int], Any], retired: dict[tuple[str, int], Any],
                 runs: dict[int, dict[str, Any]]) -> int:
    """One more than any number ``name`` had: stored, retired or named by a step run (numbers are never reused)."""
    used = [v for table in (versions, retired) for (n, v) in table if n == name]
    used += [r["version"] for r in runs.values() if r["name"] == name and r.get("version")]
    return max([*used, 0]) + 1


def _swap_in(store: Store, versions: dict[tuple[str, int], dict[str, Any]], retired: dict[tuple[str, int], Any],
             runs: dict[int, dict[str, Any]], label: str) -> Path | None:
    """Write the new index beside the old one, keep the old one, and swap the new one in with one rename."""
    for stale in store.home.glob(".index.sqlite.rebuild-*"):  # left by a rebuild that was killed
        if not _alive(int(stale.name.rpartition("-")[2] or 0)):
            stale.unlink(missing_ok=True)
    fresh = store.home / f".index.sqlite.rebuild-{os.getpid()}"
    db = sqlite3.connect(fresh, isolation_level=None)
    try:
        db.executescript(SCHEMA)
        db.execute("BEGIN")
        db.executemany("INSERT INTO versions (name, version, sha256, card_sha256, created) VALUES (?, ?, ?, ?, ?)",
                       [(n, v, r["sha256"], r["card_sha256"], r["created"]) for (n, v), r in versions.items()])
        db.executemany("INSERT INTO retired (name, version, sha256, removed) VALUES (?, ?, ?, ?)",
                       [(n, v, r.get("sha256"), r["removed"]) for (n, v), r in retired.items()])
        db.executemany(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                       [tuple(r.get(k) for k in RUN_COLUMNS) for _, r in sorted(runs.items())])
        db.execute("COMMIT")
    finally:
        db.close()
    with open(fresh, "rb+") as f:
        os.fsync(f.fileno())
    moved = None
    if store.index_path.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = next(p for n in range(1000) if not (p := store.index_path.with_name(
            f"index.sqlite.{label}-{stamp}" + (f"-{n}" if n else ""))).exists())
        os.link(store.index_path, moved)  # the old index stays where it was until the rename below
        for suffix in ("-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{store.index_path}{suffix}", f"{moved}{suffix}")
    os.replace(fresh, store.index_path)
    store._schema_ready = False
    return moved


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return pid > 0


@contextlib.contextmanager
def _open_index(path: Path):  # type: ignore[no-untyped-def]
    """An existing index, opened read-write so that SQLite rolls back a transaction a killed writer left."""
    db = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()
