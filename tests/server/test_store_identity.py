"""The alert store's identity: fixed when its SQLite file is created, kept across reopens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jupyter_rtstream.server.store import SCHEMA_VERSION, AlertStore


def test_identity_is_kept_by_the_file_and_new_for_a_new_file(tmp_path: Path) -> None:
    first = AlertStore(tmp_path / "a.sqlite")
    identity = first.store_id
    first.close()
    again = AlertStore(tmp_path / "a.sqlite")
    assert again.store_id == identity  # a restarted server keeps its store
    again.close()
    other = AlertStore(tmp_path / "b.sqlite")
    assert other.store_id != identity and len(other.store_id) == 32
    other.close()


def test_an_older_file_is_migrated_and_gets_an_identity(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    AlertStore(path).close()
    db = sqlite3.connect(path)  # make it look like a schema-2 file of the previous release
    db.executescript("DROP TABLE meta; PRAGMA user_version = 2;")
    db.close()
    store = AlertStore(path)
    assert len(store.store_id) == 32
    version = store.db.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 3
    store.close()
