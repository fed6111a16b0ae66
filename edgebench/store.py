"""The model store: content-addressed blobs plus an SQLite index of models, versions and step runs.

Layout of ``$EDGEBENCH_HOME``::

    index.sqlite              versions(name, version, sha256, card_sha256, created) and runs(...)
    blobs/sha256/ab/abcd...   ONNX models and model cards, named by the sha256 of their bytes
    logs/                     step logs, one file per run

Blobs are written atomically (``fsutil.atomic_writer``), so a crash never leaves a half-written blob; the
index changes in SQLite transactions (``BEGIN IMMEDIATE`` serialises writers across processes). The kernel, the
CLI and the Jupyter server extension open the same store, so a model exported in a notebook is visible at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import config
from .core.card import ModelCard
from .core.errors import ModelNotFoundError, StoreCorruptError, StoreError
from .core.names import ModelRef, parse_ref, validate_name
from .fsutil import atomic_writer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    card_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, sha256)
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
    log_path TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (name, version, step);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Run:
    """One step run recorded in the store."""

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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    """A model store rooted at ``home`` (default: ``$EDGEBENCH_HOME`` or ``~/.edgebench``)."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else config.home()
        self.index_path = self.home / "index.sqlite"
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

    def read_blob(self, sha256: str) -> bytes:
        try:
            return self.blob_path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {sha256} is missing from {self.blobs}", path=str(self.blobs)) from exc

    # -- index ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.index_path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store index {self.index_path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            if not self._schema_ready:
                db.executescript(_SCHEMA)
                self._schema_ready = True
            if write:
                db.execute("BEGIN IMMEDIATE")
            yield db
            if write:
                db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StoreError(f"the store index {self.index_path} stayed locked for 30 s: {exc}") from exc
            raise StoreCorruptError(
                f"the store index {self.index_path} is damaged ({exc}). Your models are intact under "
                f"{self.blobs}: run `edgebench store rebuild` to move the index aside and rebuild it from them",
                path=str(self.index_path),
            ) from exc
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def add_version(self, onnx_bytes: bytes, card: ModelCard) -> tuple[ModelCard, bool]:
        """Store a model and its card under the next version of ``card.name``.

        Returns ``(card, created)``. When the same ONNX bytes are already stored under that name, nothing is
        written and the existing card is returned with ``created=False``.
        """
        validate_name(card.name)
        sha = self.put_blob(onnx_bytes)
        with self._connect(write=True) as db:
            row = db.execute(
                "SELECT card_sha256 FROM versions WHERE name = ? AND sha256 = ?", (card.name, sha)
            ).fetchone()
            if row:
                return self._card(row["card_sha256"]), False
            version = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?", (card.name,)
            ).fetchone()[0]
            stored = card.with_version(version)
            card_sha = self.put_blob(stored.to_json().encode())
            db.execute(
                "INSERT INTO versions (name, version, sha256, card_sha256, created) VALUES (?, ?, ?, ?, ?)",
                (card.name, version, sha, card_sha, stored.created),
            )
        return stored, True

    def _card(self, card_sha256: str) -> ModelCard:
        return ModelCard.from_dict(json.loads(self.read_blob(card_sha256)))

    def get(self, ref: str | ModelRef) -> ModelCard:
        """The card of ``name`` (latest version) or ``name:version``."""
        r = parse_ref(ref)
        with self._connect() as db:
            if r.version is None:
                row = db.execute(
                    "SELECT card_sha256 FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", (r.name,)
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT card_sha256 FROM versions WHERE name = ? AND version = ?", (r.name, r.version)
                ).fetchone()
            if row is None:
                known = [x[0] for x in db.execute("SELECT version FROM versions WHERE name = ?", (r.name,))]
        if row is None:
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
        return self._card(row["card_sha256"])

    def model_path(self, card: ModelCard) -> Path:
        """Path of the ONNX file of ``card`` inside the store (read-only: do not modify)."""
        return self.blob_path(card.sha256)

    def list(self, name: str | None = None) -> list[ModelCard]:
        """Latest version of every model, or every version of ``name``."""
        with self._connect() as db:
            if name is None:
                rows = db.execute(
                    "SELECT card_sha256 FROM versions v WHERE version = "
                    "(SELECT MAX(version) FROM versions WHERE name = v.name) ORDER BY name"
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT card_sha256 FROM versions WHERE name = ? ORDER BY version", (validate_name(name),)
                ).fetchall()
        return [self._card(r["card_sha256"]) for r in rows]

    def remove(self, ref: str | ModelRef) -> list[int]:
        """Remove ``name`` (every version) or ``name:version``; return the versions removed.

        Blobs no longer referenced by any version are deleted; step runs stay as history.
        """
        r = parse_ref(ref)
        self.get(r)  # raises ModelNotFoundError with the right message
        with self._connect(write=True) as db:
            where, args = ("name = ?", (r.name,)) if r.version is None else (
                "name = ? AND version = ?", (r.name, r.version))
            rows = db.execute(f"SELECT version, sha256, card_sha256 FROM versions WHERE {where}", args).fetchall()
            db.execute(f"DELETE FROM versions WHERE {where}", args)
            still_used = {
                sha for row in db.execute("SELECT sha256, card_sha256 FROM versions") for sha in row
            }
        for row in rows:
            for sha in (row["sha256"], row["card_sha256"]):
                if sha not in still_used:
                    with contextlib.suppress(FileNotFoundError):
                        self.blob_path(sha).unlink()
        return sorted(row["version"] for row in rows)

    def rebuild_index(self) -> Path | None:
        """Move a damaged index aside and rebuild the versions table from the card blobs.

        Returns where the old index was moved (None if there was none). Step run history is not in the blobs
        and starts empty.
        """
        moved = None
        if self.index_path.exists():
            moved = self.index_path.with_name(f"index.sqlite.damaged-{int(time.time())}")
            os.replace(self.index_path, moved)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.index_path}{suffix}", f"{moved}{suffix}")
        cards = []
        for path in self.blobs.glob("*/*"):
            if path.name.startswith(".") or path.stat().st_size > 50_000_000:
                continue
            try:
                data = json.loads(path.read_bytes())
                cards.append((ModelCard.from_dict(data), path.name))
            except (ValueError, KeyError, TypeError):
                continue  # an ONNX model, or not a card
        self._schema_ready = False
        with self._connect(write=True) as db:
            for card, card_sha in cards:
                db.execute(
                    "INSERT OR IGNORE INTO versions (name, version, sha256, card_sha256, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (card.name, card.version, card.sha256, card_sha, card.created),
                )
        return moved

    # -- step runs -----------------------------------------------------------------------------------

    def start_run(self, step: str, name: str, version: int | None, inputs: dict[str, Any]) -> int:
        with self._connect(write=True) as db:
            cur = db.execute(
                "INSERT INTO runs (name, version, step, status, inputs, started) VALUES (?, ?, ?, 'running', ?, ?)",
                (validate_name(name), version, step, json.dumps(inputs, default=str), now()),
            )
            run_id = cur.lastrowid
        assert run_id is not None
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
            Path(log_path).write_text(log)
        with self._connect(write=True) as db:
            db.execute(
                "UPDATE runs SET status = ?, outputs = ?, finished = ?, log_path = COALESCE(?, log_path), "
                "version = COALESCE(?, version) WHERE id = ?",
                (status, json.dumps(outputs, default=str), now(), log_path, version, run_id),
            )
        return self.run(run_id)

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


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"], name=row["name"], version=row["version"], step=row["step"], status=row["status"],
        inputs=json.loads(row["inputs"]), outputs=json.loads(row["outputs"]) if row["outputs"] else None,
        started=row["started"], finished=row["finished"], log_path=row["log_path"],
    )


def open_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """``store`` itself, a store at that path, or the default store."""
    return store if isinstance(store, Store) else Store(store)
