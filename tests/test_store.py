"""The store: versions, atomic writes, concurrent writers, damaged index, unusable directories."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import edgebench as eb


def test_empty_store_lists_nothing(store):
    assert store.list() == [] and eb.list_models() == []


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


def test_blob_written_atomically_with_no_temp_files_left(store):
    digest = store.put_blob(b"onnx bytes")
    assert store.read_blob(digest) == b"onnx bytes"
    assert not list(store.blobs.rglob(".tmp-*"))


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


def test_store_directory_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(eb.StoreError) as err:
        eb.Store(blocker / "store")
    assert f"cannot use {blocker / 'store'} as the edgebench store" in str(err.value)
    assert "set EDGEBENCH_HOME to a writable folder" in str(err.value)


def test_damaged_index_gives_a_clear_error_and_rebuild_recovers_models(store, digits, digits_rf):
    card = eb.export_model(digits_rf, digits[0][:5], "digits-rf")
    blobs_before = sorted(p.name for p in store.blobs.rglob("*"))
    store.index_path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(eb.StoreCorruptError) as err:
        eb.Store(store.home).list()
    assert "is damaged" in str(err.value) and "edgebench store rebuild" in str(err.value)
    assert sorted(p.name for p in store.blobs.rglob("*")) == blobs_before  # nothing else lost
    fresh = eb.Store(store.home)
    moved = fresh.rebuild_index()
    assert moved is not None and moved.read_bytes().startswith(b"this is not")
    assert fresh.get("digits-rf") == card


def test_card_json_round_trip(store, digits, digits_rf):
    card = eb.export_model(digits_rf, digits[0][:5], "digits-rf")
    again = eb.ModelCard.from_dict(json.loads(card.to_json()))
    assert again == card
    assert "digits-rf:1" in card._repr_html_()
