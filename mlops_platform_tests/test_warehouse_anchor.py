"""The DuckDB warehouse while a step holds it open (`anchor`, see resources.py)."""

import pandas as pd
import pytest

from mlops_platform.warehouse.duckdb import DuckDBStore


def test_an_anchored_store_connects_through_its_anchor_and_keeps_every_write(tmp_path, monkeypatch):
    """While anchored, every query and write is a new connection on the database the anchor
    holds (no second open of the file by its path), with its own transactions; after `release`
    the file has it all."""
    import duckdb

    opened = []
    real_connect = duckdb.connect

    def connect(*args, **kwargs):
        opened.append(args)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    store = DuckDBStore(path=str(tmp_path / "w.duckdb"))
    store.anchor()
    try:
        store.replace_table("s", "t", pd.DataFrame({"k": [1, 2, 3]}))
        store.append("s", "t", pd.DataFrame({"k": [4]}))
        assert store.table_exists("s", "t") and store.columns("s", "t") == ["k"]
        with store.transaction() as tx:
            assert tx.execute("DELETE FROM s.t WHERE k = :k", {"k": 1}) == 1
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.execute("DELETE FROM s.t")
            raise RuntimeError("rolled back")
        assert sorted(store.query("SELECT k FROM s.t")["k"]) == [2, 3, 4]
        assert len(opened) == 1  # the anchor's own open, nothing else
    finally:
        store.release()
    assert sorted(store.query("SELECT k FROM s.t")["k"]) == [2, 3, 4]  # by path again
    assert len(opened) == 2


def test_anchoring_twice_keeps_one_anchor_and_release_lets_the_file_go(tmp_path):
    """A second `anchor` while anchored is nothing: one `release` lets go of the file (a second
    anchor made through the first would leave the first open for good)."""
    import subprocess
    import sys

    path = tmp_path / "w.duckdb"
    store = DuckDBStore(path=str(path))
    store.anchor()
    first = store._anchor  # noqa: SLF001 - the connection that holds the file
    store.anchor()
    assert store._anchor is first  # noqa: SLF001
    store.append("s", "t", pd.DataFrame({"k": [1]}))
    store.release()
    opens = [sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"]
    assert subprocess.run(opens, capture_output=True, text=True).returncode == 0
