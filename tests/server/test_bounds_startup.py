"""Startup is validated: bad trait values name the trait; stored rules that no longer
validate are logged and skipped, never stopping the extension from loading."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jupyter_rtstream.server.app import RtstreamApp
from jupyter_rtstream.server.store import AlertStore

from .test_alerts import RULE
from .test_bounds import assert_still_streaming


def test_bad_trait_values_fail_naming_the_trait() -> None:
    for trait, value in [
        ("tick_rate", 0.0),
        ("rate_limit", -1.0),
        ("max_symbols", 0),
        ("outbox_max_bytes", 0),
        ("symbol_ttl", float("nan")),
        ("feed", "carrier-pigeon"),
    ]:
        with pytest.raises(TraitError, match=trait):
            RtstreamApp(config=Config({"RtstreamApp": {trait: value}}))


# --------------------------------------------------------------------------- stored rules


@pytest.fixture
def rtstream_config(tmp_path: Path) -> dict[str, Any]:
    """A database with one good and two no-longer-valid rules, before the server starts."""
    path = tmp_path / "stored.sqlite"
    store = AlertStore(path)
    good = {**RULE, "symbol": "AAPL"}
    store.add_rule(good)
    store.add_rule({**good, "condition": "sideways"})
    store.add_rule({**good, "condition": "percent_change_above", "window_seconds": 1e9})
    store.close()
    return {"db_path": str(path)}


async def test_stored_rule_that_no_longer_validates_is_skipped(
    jp_fetch: Any, ws_connect: Any, rtstream_app: Any
) -> None:
    installed = rtstream_app.pipeline.engine.rules()
    assert [r.condition for r in installed] == ["price_above"]
    db = sqlite3.connect(rtstream_app.store.path)
    assert db.execute("SELECT COUNT(*) FROM rules").fetchone()[0] == 3, "kept, not deleted"
    await assert_still_streaming(ws_connect)
