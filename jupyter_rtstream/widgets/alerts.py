"""A live alert feed: newest first, severity colours, bounded, every string escaped."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from ipywidgets import HTML

from ..core.messages import Alert, AlertPayload
from ._base import LiveMixin, esc, fmt_number, fmt_time
from ._render import DEFAULT_COALESCE, DEFAULT_FPS

SEVERITY_COLORS = {"high": "#c53030", "medium": "#dd6b20", "low": "#3182ce"}
DEFAULT_MAX_ALERTS = 50


class AlertFeed(LiveMixin, HTML):  # type: ignore[misc]
    """The latest ``max_items`` alerts, newest first.

    ``handle(alert_message)`` for live ``alert`` messages; ``extend(payloads)`` to show
    alerts read from the persisted history (``GET rtstream/api/alerts``). Alerts are
    de-duplicated by ``alert_id``. ``items`` holds the payloads shown (newest first).
    """

    def __init__(
        self,
        *,
        max_items: int = DEFAULT_MAX_ALERTS,
        fps: float = DEFAULT_FPS,
        coalesce: float = DEFAULT_COALESCE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_live(fps, coalesce)
        self.max_items = max_items
        self.items: deque[AlertPayload] = deque(maxlen=max_items)
        self.total = 0
        self.value = self._html()

    def _apply(self, message: Any) -> bool:
        payload = message.data if isinstance(message, Alert) else message
        if not isinstance(payload, AlertPayload):
            return False
        if any(item.alert_id == payload.alert_id for item in self.items):
            return False
        # Keep newest first by alert_id (history may arrive after live alerts).
        position = next(
            (i for i, item in enumerate(self.items) if item.alert_id < payload.alert_id),
            len(self.items),
        )
        if position >= self.max_items:
            return False
        if len(self.items) == self.max_items:
            self.items.pop()
        self.items.insert(position, payload)
        self.total += 1
        return True

    def extend(self, payloads: Iterable[AlertPayload | Alert]) -> int:
        """Add alerts (e.g. from the history); returns how many were new."""
        return sum(self.handle(payload) for payload in payloads)

    def _render(self) -> None:
        self.value = self._html()

    def _html(self) -> str:
        if not self.items:
            return '<div class="rtstream-alerts"><i>No alerts yet.</i></div>'
        rows = []
        for alert in self.items:
            color = SEVERITY_COLORS.get(alert.severity, "#4a5568")
            rows.append(
                f'<div class="rtstream-alert rtstream-{esc(alert.severity)}" '
                f'style="border-left:4px solid {color};padding:0.1em 0.5em;margin:0.15em 0">'
                f'<span style="background:{color};color:white;border-radius:0.3em;'
                f'padding:0 0.4em;font-size:0.8em">{esc(alert.severity.upper())}</span> '
                f"<small>{fmt_time(alert.timestamp)}</small> "
                f"<b>{esc(alert.symbol)}</b> {esc(alert.rule_name)}: {esc(alert.message)} "
                f"<small>(value {fmt_number(alert.current_value, 4)}, target "
                f"{fmt_number(alert.target_value, 4)})</small></div>"
            )
        return (
            '<div class="rtstream-alerts" style="max-height:16em;overflow-y:auto">'
            + "".join(rows)
            + "</div>"
        )

    def close(self) -> None:
        if hasattr(self, "limiter"):
            self.stop()
        super().close()
