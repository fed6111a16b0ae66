"""The store: versions that are never reused, atomic writes proven by killing writers, concurrent writers, and a
check and a rebuild that tell damage from emptiness and lose nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import edgebench as eb
from edgebench.state import model_state


def export_tree(depth, name="dt", store=None, x=None):
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    if x is None:
        x, y = load_digits(return_X_y=True)
    else:
        y = (x[:, 0] > x[:, 0].mean()).astype(int)
    model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(x, y)
    return eb.export_model(model, x[:5], name, store=store)


@pytest.fixture
def trees(store):
    """A store with dt:1..3 (three decision trees) and a bench run on dt:2."""
    cards = [export_tree(d, store=store) for d in (2, 3, 4)]
    store.record_run("bench", "dt", 2, {"devices": ["rpi4-1gb"]}, "passed",
                     {"devices": [{"device": "rpi4-1gb", "verdict": "pass"}]})
    return cards


def refs(store, name="dt"):
    return [c.ref for c in store.list(name)]


def test_empty_store_lists_nothing_and_checks_healthy(store):
    assert store.list() == [] and eb.list_models() == []
    report = store.check()
    assert report.ok and report.versions == 0 and "healthy" in report.summary()


def test_unknown_model_and_version_messages(store, digits, digits_rf):
    with pytest.raises(eb.ModelNotFoundError, match="no model named 'ghost' in the store"):
        eb.get_model("ghost")
    eb.export_model(digits_rf, digits[0][:5], "digits-rf")
    with pytest.raises(eb.ModelNotFoundError, match=r"model 'digits-rf' has no version 7; stored versions: \[1\]"):
        eb.get_model("digits-rf:7")


def test_remove_deletes_unreferenced_blobs_and_keeps_history(store, digits, digits_rf):
    card = eb.export_model(digits_rf, digits[0][:5], "digits-rf")
    path = store.model_path(card)
    assert eb.remove_model("digits-rf") == [1]
    assert not path.exists()
    assert store.runs("digits-rf")[0].step == "export"
    with pytest.raises(eb.ModelNotFoundError):
        eb.remove_model("digits-rf")


def test_a_bench_of_other_devices_keeps_each_devices_newest_verdict(store, trees):
    store.record_run("bench", "dt", 2, {"devices": ["jetson-nano"]}, "failed",
                     {"devices": [{"device": "jetson-nano", "verdict": "fail"}]})
    store.record_run("bench", "dt", 2, {"devices": ["rpi4-1gb"]}, "failed",
                     {"devices": [{"device": "rpi4-1gb", "verdict": "fail"}]})
    assert model_state(store, store.get("dt:2"))["bench"]["devices"] == {"jetson-nano": "fail", "rpi4-1gb": "fail"}


def test_removed_numbers_stay_retired_and_results_follow_the_model_bytes(store, trees):
    assert model_state(store, store.get("dt:2"))["bench"]["devices"] == {"rpi4-1gb": "pass"}
    store.remove("dt:3")
    store.remove("dt:2")
    again = export_tree(5, store=store)
    assert again.version == 4  # not 2 or 3: those numbers belonged to other models
    with pytest.raises(eb.ModelNotFoundError, match=r"dt:2 was removed on .* \(its number stays retired\)"):
        store.get("dt:2")
    assert model_state(store, again)["bench"] is None  # dt:2's bench is not inherited
    store.remove("dt")
    assert export_tree(2, store=store).version == 5  # every number stays retired, even with no version left


def test_runs_are_tied_to_the_exact_model_bytes(store, trees):
    (bench,) = store.runs("dt", step="bench")
    assert bench.sha256 == trees[1].sha256
    assert {r.sha256 for r in store.runs("dt", step="export")} == {c.sha256 for c in trees}


def test_blob_written_atomically_with_no_temp_files_left(store):
    digest = store.put_blob(b"onnx bytes")
    assert store.read_blob(digest) == b"onnx bytes"
    assert store.blob_path(digest).stat().st_size == len(b"onnx bytes")
    assert not [p for p in store.blobs.rglob("*") if p.name.startswith(".")]  # temp files are ".<digest>.tmp-*"


# -- writers killed half-way -----------------------------------------------------------------------------------

PAUSE = textwrap.dedent(
    """
    import os, sys, time
    import edgebench as eb
    from edgebench import store as store_module
    {patch}
    sys.path.insert(0, {tests!r})
    from test_store import export_tree
    s = eb.Store(sys.argv[1])
    {action}
    """
)


def killed_while(home, patch, action):
    """Run ``action`` in a child process that stops at the point ``patch`` marks ("PAUSED"), then SIGKILL it."""
    code = PAUSE.format(patch=textwrap.dedent(patch), action=action, tests=os.path.dirname(__file__))
    child = subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "PAUSED", f"the child never reached the pause point (it printed {line!r})"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def test_export_killed_during_the_blob_write_leaves_no_half_blob(store, trees):
    killed_while(store.home, """
        real = os.fsync
        def fsync(fd):  # the first fsync of an export is its ONNX blob's, between write and rename
            print("PAUSED", flush=True); time.sleep(60)
        os.fsync = fsync
        """, "export_tree(7, store=s)")
    leftovers = [p for p in store.blobs.rglob(".*") if p.is_file()]
    assert leftovers, "the kill should have caught the blob in its temporary file"
    fresh = eb.Store(store.home)
    assert refs(fresh) == ["dt:1", "dt:2", "dt:3"]
    report = fresh.check()
    assert report.ok, report.summary()
    assert "temporary file(s) of interrupted writes" in report.summary()
    assert export_tree(7, store=fresh).version == 4  # the store goes on


def test_export_killed_inside_the_index_transaction_commits_nothing(store, trees):
    killed_while(store.home, """
        real = store_module.Store._journal
        def journal(self, *entries):
            real(self, *entries)
            if entries and entries[0]["op"] == "version":
                print("PAUSED", flush=True); time.sleep(60)
        store_module.Store._journal = journal
        """, "export_tree(7, store=s)")
    assert (store.home / "index.sqlite-journal").exists()  # SQLite's hot journal: the transaction never committed
    fresh = eb.Store(store.home)
    assert refs(fresh) == ["dt:1", "dt:2", "dt:3"]  # rolled back, not half-written
    report = fresh.check()
    assert report.ok, report.summary()
    assert export_tree(7, store=fresh).ref == "dt:4"


def test_rebuild_killed_before_its_swap_leaves_the_old_index_and_can_be_run_again(store, trees):
    store.index_path.write_bytes(b"\0" * 4096)  # damaged
    killed_while(store.home, """
        real = os.link
        def link(*args, **kwargs):  # the new index is written; the old one is being kept aside
            real(*args, **kwargs)
            print("PAUSED", flush=True); time.sleep(60)
        os.link = link
        """, "s.rebuild_index()")
    with pytest.raises(eb.StoreCorruptError, match="edgebench store rebuild"):
        eb.Store(store.home).list()
    report = eb.Store(store.home).rebuild_index()
    assert report.recovered == ["dt:1", "dt:2", "dt:3"] and not report.not_recovered
    assert model_state(store, store.get("dt:2"))["bench"]["devices"] == {"rpi4-1gb": "pass"}


def test_two_processes_exporting_at_once_do_not_corrupt_the_store(store, tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import edgebench as eb
        from sklearn.datasets import load_digits
        from sklearn.tree import DecisionTreeClassifier
        x, y = load_digits(return_X_y=True)
        for depth in range(2, 8):
            model = DecisionTreeClassifier(max_depth=depth, random_state=int(sys.argv[1])).fit(x, y)
            eb.export_model(model, x[:10], "shared", metadata={"writer": sys.argv[1]})
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)]) for i in (1, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    versions = store.list("shared")
    assert [c.version for c in versions] == list(range(1, len(versions) + 1))
    assert len({c.sha256 for c in versions}) == len(versions)
    assert {c.metadata["writer"] for c in versions} == {"1", "2"}
    assert all(store.model_path(c).stat().st_size == c.size_bytes for c in versions)
    assert store.check().ok
    # the journal saw every change of both writers, line by line: a rebuild from it alone gives the same store
    store.index_path.unlink()
    assert eb.Store(store.home).rebuild_index().recovered == [c.ref for c in versions]


def test_store_directory_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(eb.StoreError) as err:
        eb.Store(blocker / "store")
    assert f"cannot use {blocker / 'store'} as the edgebench store" in str(err.value)
    assert "set EDGEBENCH_HOME to a writable folder" in str(err.value)


# -- damage: found, named, recovered ---------------------------------------------------------------------------


def test_damaged_index_gives_a_clear_error_and_rebuild_recovers_models_and_history(store, trees):
    runs_before = [(r.id, r.step, r.status) for r in store.runs()]
    blobs_before = sorted(p.name for p in store.blobs.rglob("*"))
    store.index_path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(eb.StoreCorruptError) as err:
        eb.Store(store.home).list()
    assert "is damaged" in str(err.value) and "edgebench store rebuild" in str(err.value)
    assert sorted(p.name for p in store.blobs.rglob("*")) == blobs_before  # nothing else lost
    check = eb.Store(store.home).check()
    assert [p.kind for p in check.problems] == ["index-damaged"]
    report = eb.Store(store.home).rebuild_index()
    assert report.recovered == ["dt:1", "dt:2", "dt:3"] and report.sources["journal"] == 3
    assert report.moved_to and Path(report.moved_to).read_bytes().startswith(b"this is not")
    fresh = eb.Store(store.home)
    assert fresh.get("dt:3") == trees[2]
    assert [(r.id, r.step, r.status) for r in fresh.runs()] == runs_before  # bench, export history kept
    assert fresh.check().ok


def test_empty_index_beside_stored_blobs_is_damage_not_an_empty_store(store, trees):
    store.index_path.write_bytes(b"")  # 0 bytes: SQLite would read it as a new, empty database
    with pytest.raises(eb.StoreCorruptError, match=r"empty or missing, but the store holds 6 blobs"):
        eb.Store(store.home).list()
    with pytest.raises(eb.StoreCorruptError, match="nothing was written"):
        export_tree(9, store=eb.Store(store.home))  # an export is refused rather than told "stored dt:1"
    assert [p.kind for p in eb.Store(store.home).check().problems] == ["index-empty"]
    report = eb.Store(store.home).rebuild_index()
    assert report.recovered == ["dt:1", "dt:2", "dt:3"] and report.runs == len(store.runs())
    assert export_tree(9, store=eb.Store(store.home)).version == 4


def test_rebuild_keeps_both_models_that_claim_one_number_and_says_so(store, trees):
    # What an older edgebench did: an emptied index took a new export as dt:1 while the old dt:1 sat in the blobs.
    old_dt1 = trees[0]
    store.index_path.unlink()
    store.journal_path.unlink()
    db = sqlite3.connect(store.index_path)
    db.executescript("CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, "
                     "card_sha256 TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (name, version), "
                     "UNIQUE (name, sha256))")
    db.close()
    newcomer = export_tree(9, store=eb.Store(store.home))
    assert newcomer.ref == "dt:1"
    store.index_path.write_bytes(b"")
    report = eb.Store(store.home).rebuild_index()
    fresh = eb.Store(store.home)
    assert fresh.get("dt:1").sha256 == newcomer.sha256  # the index's own record keeps its number
    kept = {c.sha256: c.ref for c in fresh.list("dt")}
    assert set(kept) == {c.sha256 for c in [*trees, newcomer]}  # nothing dropped
    assert kept[old_dt1.sha256] == "dt:4"
    assert report.renumbered == [
        f"dt:1 (sha256 {old_dt1.sha256[:12]}..., created {old_dt1.created[:19]}) shared its number with another "
        "model: stored as dt:4"]
    assert fresh.get("dt:4").version == 4 and fresh.check().ok


def test_rebuild_of_a_healthy_index_is_refused_unless_forced_and_keeps_history(store, trees):
    with pytest.raises(eb.StoreError, match=r"is healthy \(3 versions, 4 step runs\): nothing to rebuild"):
        store.rebuild_index()
    report = store.rebuild_index(force=True)
    assert report.recovered == ["dt:1", "dt:2", "dt:3"] and report.runs == 4
    assert "index.sqlite.replaced-" in report.moved_to
    assert model_state(store, store.get("dt:2"))["bench"]["devices"] == {"rpi4-1gb": "pass"}


def test_missing_onnx_file_is_named_with_the_model_and_the_fix(store, trees):
    card = trees[1]
    store.blob_path(card.sha256).unlink()
    report = store.check()
    assert not report.ok and report.damaged_models == ["dt:2"]
    (problem,) = report.problems
    assert problem.message.startswith("the ONNX file of dt:2 is missing")
    assert "edgebench models rm dt:2" in problem.fix
    with pytest.raises(eb.StoreCorruptError, match=r"the ONNX file of dt:2 is missing .* Restore it from a backup"):
        eb.benchmark("dt:2", ["rpi4-1gb"], seconds=0.1)
    with pytest.raises(eb.StoreCorruptError, match="the ONNX file of dt:2 is missing"):
        from edgebench.image.builder import write_build_context

        write_build_context("dt:2", store.home / "ctx", "linux/amd64", store=store)
    store.index_path.write_bytes(b"")
    rebuilt = eb.Store(store.home).rebuild_index()
    assert rebuilt.recovered == ["dt:1", "dt:3"]
    assert rebuilt.not_recovered == ["dt:2: its ONNX file is missing; its number stays retired"]
    assert export_tree(9, store=eb.Store(store.home)).version == 4


def test_changed_onnx_bytes_are_found_by_their_sha256(store, trees):
    path = store.blob_path(trees[0].sha256)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert store.check(full=False).ok  # the quick check only looks for files
    (problem,) = store.check().problems
    assert problem.model == "dt:1" and "was changed (its sha256 is now" in problem.message
    with pytest.raises(eb.StoreCorruptError, match="the ONNX file of dt:1 was changed"):
        store.model_path(trees[0])


def test_missing_card_is_named_and_reported_by_rebuild(store, trees):
    card_sha = json.loads(store.journal_path.read_text().splitlines()[0])["card_sha256"]  # dt:1's card
    store.blob_path(card_sha).unlink()
    with pytest.raises(eb.StoreCorruptError, match=r"the model card of dt:1 is missing from the store .* store check"):
        store.list("dt")
    assert store.check().damaged_models == ["dt:1"]
    store.index_path.write_bytes(b"")
    rebuilt = eb.Store(store.home).rebuild_index()
    assert rebuilt.recovered == ["dt:2", "dt:3"]
    assert rebuilt.not_recovered == ["dt:1: its card is missing; its number stays retired"]
    assert "NOT recovered: dt:1: its card is missing" in rebuilt.summary()


def test_an_index_from_before_the_journal_is_upgraded_in_place(store, trees):
    db = sqlite3.connect(store.index_path)
    db.executescript("DROP TABLE retired; CREATE TABLE runs2 AS SELECT id, name, version, step, status, inputs, "
                     "outputs, started, finished, log_path FROM runs; DROP TABLE runs; "
                     "ALTER TABLE runs2 RENAME TO runs;")
    db.close()
    store.journal_path.unlink()
    fresh = eb.Store(store.home)
    assert refs(fresh) == ["dt:1", "dt:2", "dt:3"]
    assert {r.sha256 for r in fresh.runs("dt", step="bench")} == {trees[1].sha256}
    journal = [json.loads(line) for line in fresh.journal_path.read_text().splitlines()]
    assert sum(e["op"] == "version" for e in journal) == 3 and sum(e["op"] == "run" for e in journal) == 4


def test_card_json_round_trip(store, digits, digits_rf):
    card = eb.export_model(digits_rf, digits[0][:5], "digits-rf")
    again = eb.ModelCard.from_dict(json.loads(card.to_json()))
    assert again == card
    assert "digits-rf:1" in card._repr_html_()
