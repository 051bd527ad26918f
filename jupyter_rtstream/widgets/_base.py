"""What every live widget shares: buffer in ``handle``, paced ``flush``, stats, ``stop``."""

from __future__ import annotations

import html
import math
from abc import abstractmethod
from datetime import datetime, timezone
from typing import Any

from ._render import (
    DEFAULT_COALESCE,
    DEFAULT_FPS,
    FrameBudget,
    FrameLimiter,
    RenderStats,
    kernel_budget,
    now,
)


def esc(value: object) -> str:
    """Escape any text that came from the wire (or a user) before it reaches HTML."""
    return html.escape(str(value), quote=True)


def fmt_number(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "&mdash;"
    return f"{value:,.{digits}f}"


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "&mdash;"
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%H:%M:%S") + "Z"


class LiveMixin:
    """Mixed into an ipywidgets class: ``handle()`` buffers, ``flush()`` renders a frame.

    Subclasses implement ``_apply(message) -> bool`` (update buffered state; False when the
    message is not for this widget) and ``_render()`` (push the buffered state to the
    widget traits, under ``hold_sync()``; returns the comm messages and bytes it sent, or
    None for one message of ``len(self.value)`` bytes). ``frame_cost`` is the most comm
    messages one frame sends; every frame is paid for from the kernel's shared
    :class:`~._render.FrameBudget` (or ``budget``).
    """

    frame_cost = 1
    render_stats: RenderStats
    limiter: FrameLimiter
    stopped: bool
    _dirty: bool

    def _init_live(
        self,
        fps: float = DEFAULT_FPS,
        coalesce: float = DEFAULT_COALESCE,
        budget: FrameBudget | None = None,
    ) -> None:
        self.render_stats = RenderStats()
        self.limiter = FrameLimiter(
            self.flush, fps, coalesce, budget=budget or kernel_budget(), cost=self.frame_cost
        )
        self.stopped = False
        self._dirty = False

    @property
    def fps(self) -> float:
        return self.limiter.fps

    def handle(self, message: Any, at: float | None = None) -> bool:
        """Buffer one message (or state change); a frame follows within ``1 / fps`` s.

        ``at`` is the message's arrival time (:func:`._render.now`), when a caller that
        dispatches to several widgets measured it once. Returns False when ignored.
        """
        if self.stopped or not self._apply(message):
            return False
        self.render_stats.arrived(at)
        self.limiter.request()
        return True

    def invalidate(self) -> None:
        """Ask for a frame without a message (e.g. a row added or removed)."""
        if not self.stopped:
            self._dirty = True
            self.limiter.request()

    def flush(self) -> bool:
        """Send what was buffered as one coalesced update; False when there was nothing."""
        if self.stopped or (self.render_stats.pending == 0 and not self._dirty):
            return False
        self._dirty = False
        started = now()
        cost = self._render()
        if cost is None:
            cost = (1, len(str(getattr(self, "value", ""))))
        self.limiter.spent(*cost)
        self.render_stats.sent(started=started)
        return True

    def stats(self) -> dict[str, Any]:
        """``received``, ``flushed``, ``coalesced``, ``dropped``, ``p50_ms``, ``p99_ms``,
        ``render_p99_ms`` (time to build and send one frame)..."""
        return self.render_stats.as_dict()

    def stop(self) -> None:
        """Stop updating for good: later messages are ignored, no frame is sent."""
        self.stopped = True
        self.limiter.close()
        self.render_stats.discard_pending()

    # Abstract by contract; not enforced with ABCMeta, which clashes with traitlets' metaclass.
    @abstractmethod
    def _apply(self, message: Any) -> bool:
        """Update buffered state from ``message``; False when it is not for this widget."""

    @abstractmethod
    def _render(self) -> tuple[int, int] | None:
        """Push the buffered state to the widget's traits (called under ``hold_sync``);
        the comm messages and bytes sent, or None (one message, ``len(value)`` bytes)."""
