"""SQLite persistence for alert rules and fired alerts.

One file (WAL mode, so the REST readers never block the writer), a versioned schema
(``PRAGMA user_version``), alerts committed in batches: a batch is on disk before the hub
publishes any alert of it, so ``GET rtstream/api/alerts?since=`` can always fill a
client's gap.

This class is synchronous and blocking (a database locked by another process blocks a
write for up to ``busy_timeout``); the server never calls it on the event loop but through
:class:`~.store_worker.StoreWorker`, one ordered thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..analytics import AlertRule, FiredAlert
from ..core.errors import RtstreamError
from ..core.messages import format_timestamp, utc_now

SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE rules (
        rule_id          INTEGER PRIMARY KEY AUTOINCREMENT,
        rule_name        TEXT NOT NULL,
        symbol           TEXT NOT NULL,
        condition        TEXT NOT NULL,
        target_value     REAL NOT NULL,
        severity         TEXT NOT NULL,
        indicator        TEXT,
        other_indicator  TEXT,
        window_seconds   REAL,
        cooldown_seconds REAL NOT NULL DEFAULT 0,
        created_at       TEXT NOT NULL
    );
    CREATE TABLE alerts (
        alert_id      INTEGER PRIMARY KEY AUTOINCREMENT,
        rule_id       INTEGER NOT NULL,
        symbol        TEXT NOT NULL,
        rule_name     TEXT NOT NULL,
        condition     TEXT NOT NULL,
        target_value  REAL NOT NULL,
        current_value REAL NOT NULL,
        severity      TEXT NOT NULL,
        message       TEXT NOT NULL,
        timestamp     TEXT NOT NULL
    );
    CREATE INDEX alerts_by_symbol ON alerts (symbol, alert_id);
    """,
    # When the alert was stored (unix seconds): retention is measured on it, not on the
    # event time, which for a CSV replay may be years old.
    2: """
    ALTER TABLE alerts ADD COLUMN recorded_at REAL;
    CREATE INDEX alerts_by_recorded_at ON alerts (recorded_at);
    """,
    # The store's identity: alert ids are only comparable within one store, so clients must
    # tell a replaced (fresh) store from a restarted server that kept its file.
    3: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    """,
}

_RULE_COLUMNS = (
    "rule_id",
    "rule_name",
    "symbol",
    "condition",
    "target_value",
    "severity",
    "indicator",
    "other_indicator",
    "window_seconds",
    "cooldown_seconds",
)
_ALERT_COLUMNS = (
    "alert_id",
    "rule_id",
    "symbol",
    "rule_name",
    "condition",
    "target_value",
    "current_value",
    "severity",
    "message",
    "timestamp",
)


class StoreError(RtstreamError, RuntimeError):
    """The database could not be opened or is of an unknown (newer) schema version.

    In the package's error tree (:mod:`jupyter_rtstream.core.errors`); still a
    ``RuntimeError`` for callers that caught it as one."""


class AlertStore:
    """Alert rules and alert history in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._migrate()
        #: This file's identity (fixed at creation): sent with alert positions.
        self.store_id: str = self.db.execute(
            "SELECT value FROM meta WHERE key = 'store_id'"
        ).fetchone()[0]

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}; this jupyter-rtstream knows "
                f"{SCHEMA_VERSION}. Upgrade jupyter-rtstream or point db_path elsewhere."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # One script = one transaction: a migration is applied whole or not at all.
            self.db.executescript(
                f"BEGIN IMMEDIATE;{_MIGRATIONS[target]}PRAGMA user_version = {target};COMMIT;"
            )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself failed (SQLITE_BUSY leaves the transaction open): a
            # transaction left open would make every later BEGIN fail.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ rules

    def add_rule(self, fields: dict[str, Any]) -> AlertRule:
        """Insert a (validated) rule and return it with its new ``rule_id``."""
        columns = [c for c in _RULE_COLUMNS if c != "rule_id"]
        values: list[Any] = [fields.get(c) for c in columns]
        values[columns.index("cooldown_seconds")] = fields.get("cooldown_seconds") or 0.0
        with self._transaction():
            cursor = self.db.execute(
                f"INSERT INTO rules ({', '.join(columns)}, created_at) "
                f"VALUES ({', '.join('?' for _ in columns)}, ?)",
                [*values, format_timestamp(utc_now())],
            )
        rule_id = cursor.lastrowid
        assert rule_id is not None
        row: dict[str, Any] = dict(zip(columns, values, strict=True))
        return AlertRule(rule_id=rule_id, **row)

    def rules(self) -> list[AlertRule]:
        rows = self.db.execute(
            f"SELECT {', '.join(_RULE_COLUMNS)} FROM rules ORDER BY rule_id"
        ).fetchall()
        return [AlertRule(**dict(row)) for row in rows]

    def delete_rule(self, rule_id: int) -> bool:
        with self._transaction():
            cursor = self.db.execute("DELETE FROM rules WHERE rule_id = ?", (rule_id,))
        return cursor.rowcount > 0

    # ------------------------------------------------------------------ alerts

    def record_alerts(self, alerts: Sequence[FiredAlert]) -> list[int]:
        """Persist alerts in one transaction (all or none), returning their ids in order."""
        ids: list[int] = []
        now = time.time()
        with self._transaction():
            for alert in alerts:
                cursor = self.db.execute(
                    "INSERT INTO alerts (rule_id, symbol, rule_name, condition, target_value,"
                    " current_value, severity, message, timestamp, recorded_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        alert.rule_id,
                        alert.symbol,
                        alert.rule_name,
                        alert.condition,
                        alert.target_value,
                        alert.current_value,
                        alert.severity,
                        alert.message,
                        format_timestamp(alert.timestamp),
                        now,
                    ),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
        return ids

    def prune_alerts(self, *, older_than: float, keep_rows: int) -> int:
        """Delete alerts recorded before ``older_than`` (unix seconds) and all but the newest
        ``keep_rows``; return how many went. Rows from schema 1 (no ``recorded_at``) are
        kept until the row cap reaches them."""
        with self._transaction():
            aged = self.db.execute("DELETE FROM alerts WHERE recorded_at < ?", (older_than,))
            capped = self.db.execute(
                "DELETE FROM alerts WHERE alert_id <= (SELECT MAX(alert_id) FROM alerts) - ?",
                (keep_rows,),
            )
        return max(0, aged.rowcount) + max(0, capped.rowcount)

    def count_alerts(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    def alerts_since(
        self, since: int = 0, limit: int = 1000, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        """Alerts with ``alert_id > since``, oldest first."""
        query = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE alert_id > ?"
        params: list[Any] = [since]
        if symbol is not None:
            query += " AND symbol = ?"
            params.append(symbol)
        query += " ORDER BY alert_id LIMIT ?"
        params.append(limit)
        return [dict(row) for row in self.db.execute(query, params).fetchall()]

    def last_alert_id(self) -> int:
        # sqlite_sequence, not MAX(alert_id): pruning every row must not make ids restart.
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'alerts'").fetchone()
        return int(row[0]) if row is not None else 0


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
