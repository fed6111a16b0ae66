"""The model store: content-addressed blobs plus an SQLite index of models, versions and step runs.

Layout of ``$EDGEBENCH_HOME``::

    index.sqlite              versions, retired version numbers and step runs (the fast index)
    journal.jsonl             every change to the index, appended in the same write (what rebuild replays)
    blobs/sha256/ab/abcd...   ONNX models and model cards, named by the sha256 of their bytes
    logs/                     step logs, one file per run

Blobs are written atomically (``fsutil.atomic_writer``), so a crash never leaves a half-written blob; the
index changes in SQLite transactions (``BEGIN IMMEDIATE`` serialises writers across processes), and each
change is also appended to the journal inside the same transaction, so a damaged index can be rebuilt without
losing versions, retired numbers or step-run history (:mod:`edgebench.store.repair`). Version numbers are never
reused, and step runs are tied to the exact model bytes (sha256). The kernel, the CLI and the Jupyter server
extension open the same store, so a model exported in a notebook is visible at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import config
from ..core.card import ModelCard
from ..core.errors import ModelNotFoundError, StoreCorruptError, StoreError
from ..core.names import ModelRef, parse_ref, validate_name
from ..fsutil import atomic_writer

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    card_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, sha256)
);
CREATE TABLE IF NOT EXISTS retired (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT,
    removed TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT,
    started TEXT NOT NULL,
    finished TEXT,
    log_path TEXT,
    sha256 TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (name, version, step);
"""
TABLES = ("versions", "retired", "runs")
RUN_COLUMNS = ("id", "name", "version", "step", "status", "inputs", "outputs", "started", "finished", "log_path",
               "sha256")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Run:
    """One step run recorded in the store; ``sha256`` is the model bytes it ran on (None before export)."""

    id: int
    name: str
    version: int | None
    step: str
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    started: str
    finished: str | None
    log_path: str | None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    """A model store rooted at ``home`` (default: ``$EDGEBENCH_HOME`` or ``~/.edgebench``)."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else config.home()
        self.index_path = self.home / "index.sqlite"
        self.journal_path = self.home / "journal.jsonl"
        self.blobs = self.home / "blobs" / "sha256"
        self.logs = self.home / "logs"
        try:
            for directory in (self.blobs, self.logs):
                directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.home, prefix=".probe-"):
                pass  # the folder exists and takes new files
        except OSError as exc:
            raise StoreError(
                f"cannot use {self.home} as the edgebench store ({exc.strerror or exc}): "
                "set EDGEBENCH_HOME to a writable folder",
                path=str(self.home),
            ) from exc
        self._schema_ready = False

    # -- blobs ---------------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` under its sha256 (atomically) and return the digest."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(exist_ok=True)
        with atomic_writer(path) as f:
            f.write(data)
        return digest

    def read_blob(self, sha256: str, what: str = "blob") -> bytes:
        try:
            return self.blob_path(sha256).read_bytes()
        except FileNotFoundError:
            raise StoreCorruptError(
                f"{what} is missing from the store (blob {sha256} under {self.blobs}): run `edgebench store "
                "check` to see what is damaged and how to recover it", path=str(self.blob_path(sha256)),
            ) from None

    def blob_files(self) -> Iterator[Path]:
        """Every stored blob (temporary files of interrupted writes excluded)."""
        return (p for p in self.blobs.glob("*/*") if not p.name.startswith("."))

    # -- index ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.index_path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            if not self._schema_ready:
                self._prepare_schema(db)
            if write:
                db.execute("BEGIN IMMEDIATE")
            yield db
            if write:
                db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StoreError(f"the store index {self.index_path} stayed locked for 30 s: {exc}") from None
            raise self._damaged(exc) from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _damaged(self, exc: BaseException) -> StoreCorruptError:
        return StoreCorruptError(
            f"the store index {self.index_path} is damaged ({exc}). Your models are intact under {self.blobs} "
            "and the history in journal.jsonl: run `edgebench store rebuild` to rebuild the index from them",
            path=str(self.index_path),
        )

    def _prepare_schema(self, db: sqlite3.Connection) -> None:
        """Create or upgrade the tables; refuse an index that was emptied while blobs remain (the cheap check)."""
        has_blobs = next(self.blob_files(), None) is not None  # before reading the tables: see below
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # A writer creates the tables before it writes its first blob, so blobs seen before an empty table list
        # were there before this index: the index was emptied or deleted, and writing to it would hide them.
        if "versions" not in tables and has_blobs:
            count = sum(1 for _ in self.blob_files())
            raise StoreCorruptError(
                f"the store index {self.index_path} is empty or missing, but the store holds {count} blobs "
                "(models and cards): nothing was written. Run `edgebench store rebuild` to recover them",
                path=str(self.index_path),
            )
        db.executescript(SCHEMA)
        if "runs" in tables and "sha256" not in {r[1] for r in db.execute("PRAGMA table_info(runs)")}:
            # an index from before runs were tied to model bytes: tie the old runs to today's versions
            db.executescript(
                "BEGIN IMMEDIATE; ALTER TABLE runs ADD COLUMN sha256 TEXT; "
                "UPDATE runs SET sha256 = (SELECT sha256 FROM versions v "
                "WHERE v.name = runs.name AND v.version = runs.version); COMMIT;"
            )
        if "versions" in tables and not self.journal_path.exists():
            self._seed_journal(db)
        self._schema_ready = True

    def _seed_journal(self, db: sqlite3.Connection) -> None:
        """Start the journal of an index that has none (a store from before the journal) with what it holds."""
        db.execute("BEGIN IMMEDIATE")
        try:
            if not self.journal_path.exists():
                self._journal(
                    *({"op": "version", **dict(row)} for row in db.execute("SELECT * FROM versions")),
                    *({"op": "retire", **dict(row)} for row in db.execute("SELECT * FROM retired")),
                    *({"op": "run", **{k: row[k] for k in RUN_COLUMNS}} for row in db.execute("SELECT * FROM runs")),
                )
        finally:
            db.execute("COMMIT")

    def _journal(self, *entries: dict[str, Any]) -> None:
        """Append changes to the journal (called inside the index transaction that makes them)."""
        line = "".join(json.dumps(e, default=str, separators=(",", ":")) + "\n" for e in entries).encode()
        if not line:
            return
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write on O_APPEND: lines of concurrent writers never interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def add_version(self, onnx_bytes: bytes, card: ModelCard) -> tuple[ModelCard, bool]:
        """Store a model and its card under the next version of ``card.name``.

        Returns ``(card, created)``. When the same ONNX bytes are already stored under that name, nothing is
        written and the existing card is returned with ``created=False``. Version numbers are never reused:
        a removed version's number stays retired.
        """
        validate_name(card.name)
        sha = hashlib.sha256(onnx_bytes).hexdigest()
        with self._connect(write=True) as db:
            row = db.execute(
                "SELECT version, card_sha256 FROM versions WHERE name = ? AND sha256 = ?", (card.name, sha)
            ).fetchone()
            if row:
                return self._card(row["card_sha256"], f"{card.name}:{row['version']}"), False
            self.put_blob(onnx_bytes)
            version = next_version(db, card.name)
            stored = card.with_version(version)
            card_sha = self.put_blob(stored.to_json().encode())
            entry = {"name": card.name, "version": version, "sha256": sha, "card_sha256": card_sha,
                     "created": stored.created}
            db.execute(
                "INSERT INTO versions (name, version, sha256, card_sha256, created) "
                "VALUES (:name, :version, :sha256, :card_sha256, :created)", entry,
            )
            self._journal({"op": "version", **entry})
        return stored, True

    def _card(self, card_sha256: str, ref: str) -> ModelCard:
        data = self.read_blob(card_sha256, f"the model card of {ref}")
        try:
            return ModelCard.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorruptError(
                f"the model card of {ref} (blob {card_sha256}) does not read ({exc}): run `edgebench store "
                "check` to see what is damaged and how to recover it", model=ref,
            ) from None

    def get(self, ref: str | ModelRef) -> ModelCard:
        """The card of ``name`` (latest version) or ``name:version``."""
        r = parse_ref(ref)
        with self._connect() as db:
            if r.version is None:
                row = db.execute(
                    "SELECT version, card_sha256 FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1",
                    (r.name,),
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT version, card_sha256 FROM versions WHERE name = ? AND version = ?", (r.name, r.version)
                ).fetchone()
            if row is None:
                known = [x[0] for x in db.execute("SELECT version FROM versions WHERE name = ?", (r.name,))]
                retired = db.execute("SELECT removed FROM retired WHERE name = ? AND version = ?",
                                     (r.name, r.version)).fetchone()
        if row is None:
            if retired:
                raise ModelNotFoundError(
                    f"{r} was removed on {retired[0][:19].replace('T', ' ')} UTC (its number stays retired); "
                    f"stored versions: {sorted(known) or 'none'}", model=str(r),
                )
            if known:
                raise ModelNotFoundError(
                    f"model {r.name!r} has no version {r.version}; stored versions: {sorted(known)}",
                    model=str(r),
                )
            raise ModelNotFoundError(
                f"no model named {r.name!r} in the store at {self.home}: export one with "
                "eb.export_model(...) or see `edgebench models list`",
                model=str(r),
            )
        return self._card(row["card_sha256"], f"{r.name}:{row['version']}")

    def model_path(self, card: ModelCard) -> Path:
        """Path of the ONNX file of ``card`` inside the store, checked against the card's sha256.

        Read-only: do not modify. Raises :class:`StoreCorruptError` naming the model and the fix when the file
        is missing or its bytes changed.
        """
        path = self.blob_path(card.sha256)
        problem = blob_problem(path, card.sha256)
        if problem:
            raise StoreCorruptError(
                f"the ONNX file of {card.ref} {problem} ({path}). Restore it from a backup, or export the model "
                f"again and retire this version with `edgebench models rm {card.ref}`; `edgebench store check` "
                "lists every damaged model", model=card.ref, path=str(path),
            )
        return path

    def has_model_file(self, card: ModelCard) -> bool:
        """Whether the ONNX file of ``card`` is present (a cheap check, without hashing)."""
        return self.blob_path(card.sha256).is_file()

    def list(self, name: str | None = None) -> list[ModelCard]:
        """Latest version of every model, or every version of ``name``."""
        with self._connect() as db:
            if name is None:
                rows = db.execute(
                    "SELECT name, version, card_sha256 FROM versions v WHERE version = "
                    "(SELECT MAX(version) FROM versions WHERE name = v.name) ORDER BY name"
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT name, version, card_sha256 FROM versions WHERE name = ? ORDER BY version",
                    (validate_name(name),),
                ).fetchall()
        return [self._card(r["card_sha256"], f"{r['name']}:{r['version']}") for r in rows]

    def remove(self, ref: str | ModelRef) -> list[int]:
        """Remove ``name`` (every version) or ``name:version``; return the versions removed.

        The removed numbers stay retired (a later export gets a new number). Blobs no longer referenced by any
        version are deleted; step runs stay as history.
        """
        r = parse_ref(ref)
        self.get(r)  # raises ModelNotFoundError with the right message
        with self._connect(write=True) as db:
            where, args = ("name = ?", (r.name,)) if r.version is None else (
                "name = ? AND version = ?", (r.name, r.version))
            rows = db.execute(f"SELECT version, sha256, card_sha256 FROM versions WHERE {where}", args).fetchall()
            db.execute(f"DELETE FROM versions WHERE {where}", args)
            removed = now()
            entries = [{"name": r.name, "version": row["version"], "sha256": row["sha256"], "removed": removed}
                       for row in rows]
            db.executemany("INSERT OR REPLACE INTO retired (name, version, sha256, removed) "
                           "VALUES (:name, :version, :sha256, :removed)", entries)
            self._journal(*({"op": "retire", **e} for e in entries))
            still_used = {
                sha for row in db.execute("SELECT sha256, card_sha256 FROM versions") for sha in row
            }
        for row in rows:
            for sha in (row["sha256"], row["card_sha256"]):
                if sha not in still_used:
                    with contextlib.suppress(FileNotFoundError):
                        self.blob_path(sha).unlink()
        return sorted(row["version"] for row in rows)

    def check(self, full: bool = True) -> Any:
        """Check the index and every blob it names; see :func:`edgebench.store.repair.check`."""
        from .repair import check

        return check(self, full=full)

    def rebuild_index(self, force: bool = False) -> Any:
        """Rebuild a damaged index from the old index, the journal and the blobs; see
        :func:`edgebench.store.repair.rebuild`."""
        from .repair import rebuild

        return rebuild(self, force=force)

    # -- step runs -----------------------------------------------------------------------------------

    def start_run(self, step: str, name: str, version: int | None, inputs: dict[str, Any]) -> int:
        with self._connect(write=True) as db:
            sha = None
            if version is not None:
                row = db.execute("SELECT sha256 FROM versions WHERE name = ? AND version = ?",
                                 (name, version)).fetchone()
                sha = row[0] if row else None
            cur = db.execute(
                "INSERT INTO runs (name, version, step, status, inputs, started, sha256) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (validate_name(name), version, step, json.dumps(inputs, default=str), now(), sha),
            )
            run_id = cur.lastrowid
            assert run_id is not None
            self._journal_run(db, run_id)
        return run_id

    def finish_run(
        self,
        run_id: int,
        status: str,
        outputs: dict[str, Any] | None = None,
        log: str | None = None,
        version: int | None = None,
    ) -> Run:
        log_path = None
        if log:
            log_path = str(self.logs / f"run-{run_id}.log")
            with atomic_writer(log_path) as f:
                f.write(log.encode())
        with self._connect(write=True) as db:
            db.execute(
                "UPDATE runs SET status = ?, outputs = ?, finished = ?, log_path = COALESCE(?, log_path), "
                "version = COALESCE(?, version), "
                "sha256 = COALESCE(sha256, (SELECT v.sha256 FROM versions v WHERE v.name = runs.name "
                "AND v.version = COALESCE(?, runs.version))) WHERE id = ?",
                (status, json.dumps(outputs, default=str), now(), log_path, version, version, run_id),
            )
            self._journal_run(db, run_id)
        return self.run(run_id)

    def _journal_run(self, db: sqlite3.Connection, run_id: int) -> None:
        row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        self._journal({"op": "run", **{k: row[k] for k in RUN_COLUMNS}})

    def record_run(
        self, step: str, name: str, version: int | None, inputs: dict[str, Any], status: str,
        outputs: dict[str, Any] | None = None, log: str | None = None,
    ) -> Run:
        """Record a step run that has already finished."""
        return self.finish_run(self.start_run(step, name, version, inputs), status, outputs, log)

    def run(self, run_id: int) -> Run:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id}", run=run_id)
        return _run(row)

    def runs(self, name: str | None = None, step: str | None = None, limit: int = 100) -> list[Run]:
        """Most recent runs first, optionally for one model name and/or one step."""
        where, args = [], []
        if name is not None:
            where.append("name = ?")
            args.append(validate_name(name))
        if step is not None:
            where.append("step = ?")
            args.append(step)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_run(r) for r in rows]


def next_version(db: sqlite3.Connection, name: str) -> int:
    """One more than any number ``name`` ever had: stored, retired, or named by a step run."""
    return int(db.execute(
        "SELECT MAX(COALESCE((SELECT MAX(version) FROM versions WHERE name = :n), 0), "
        "COALESCE((SELECT MAX(version) FROM retired WHERE name = :n), 0), "
        "COALESCE((SELECT MAX(version) FROM runs WHERE name = :n), 0)) + 1", {"n": name},
    ).fetchone()[0])


def blob_problem(path: Path, sha256: str) -> str | None:
    """Why the blob at ``path`` is not the bytes named ``sha256`` ("is missing", "was changed"), or None."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if digest.hexdigest() != sha256:
        return f"was changed (its sha256 is now {digest.hexdigest()[:12]}..., not {sha256[:12]}...)"
    return None


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"], name=row["name"], version=row["version"], step=row["step"], status=row["status"],
        inputs=json.loads(row["inputs"]), outputs=json.loads(row["outputs"]) if row["outputs"] else None,
        started=row["started"], finished=row["finished"], log_path=row["log_path"], sha256=row["sha256"],
    )


def open_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """``store`` itself, a store at that path, or the default store."""
    return store if isinstance(store, Store) else Store(store)
