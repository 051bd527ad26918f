"""Controls: subscribe/unsubscribe symbols, create an alert rule. Errors are shown escaped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ipywidgets import HTML, Button, Dropdown, FloatText, HBox, Layout, Text, VBox

from ..client.rest import RestAPI
from ..core.vocabulary import (
    ALERT_CONDITIONS,
    INDICATOR_KEYS,
    SEVERITIES,
    AlertCondition,
    IndicatorName,
    Severity,
    normalize_symbol,
)
from ._base import esc

log = logging.getLogger("jupyter_rtstream.widgets")

# The choices are the protocol's vocabulary, so the form cannot drift from it.
CONDITIONS: tuple[AlertCondition, ...] = ALERT_CONDITIONS
SEVERITY_CHOICES: tuple[Severity, ...] = SEVERITIES
INDICATORS: tuple[IndicatorName, ...] = INDICATOR_KEYS
OK_COLOR = "#2f855a"
ERROR_COLOR = "#c53030"


def _note(text: str, ok: bool) -> str:
    color = OK_COLOR if ok else ERROR_COLOR
    return f'<span style="color:{color}">{esc(text)}</span>'


class _Tasks:
    """Strong references to the coroutines started by button clicks."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            log.warning("rtstream widgets: no running event loop to run the action on")
            return None
        task = loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


class SymbolControls(HBox):  # type: ignore[misc]
    """A symbol field with Subscribe / Unsubscribe buttons.

    ``on_subscribe`` / ``on_unsubscribe`` are coroutine functions taking the symbol (the
    :class:`~.dashboard.Dashboard` passes its ``add_symbol`` / ``remove_symbol``).
    """

    def __init__(
        self,
        on_subscribe: Callable[[str], Awaitable[Any]],
        on_unsubscribe: Callable[[str], Awaitable[Any]],
        **kwargs: Any,
    ) -> None:
        self.on_subscribe = on_subscribe
        self.on_unsubscribe = on_unsubscribe
        self._tasks = _Tasks()
        self.symbol = Text(placeholder="symbol, e.g. AAPL", layout=Layout(width="12em"))
        self.subscribe_button = Button(description="Subscribe", icon="plus")
        self.unsubscribe_button = Button(description="Unsubscribe", icon="minus")
        self.message = HTML()
        self.subscribe_button.on_click(lambda _: self._tasks.spawn(self.subscribe()))
        self.unsubscribe_button.on_click(lambda _: self._tasks.spawn(self.unsubscribe()))
        super().__init__(
            children=[self.symbol, self.subscribe_button, self.unsubscribe_button, self.message],
            **kwargs,
        )

    async def subscribe(self, symbol: str | None = None) -> bool:
        return await self._run(self.on_subscribe, symbol, "subscribed")

    async def unsubscribe(self, symbol: str | None = None) -> bool:
        return await self._run(self.on_unsubscribe, symbol, "unsubscribed")

    async def _run(
        self, action: Callable[[str], Awaitable[Any]], symbol: str | None, done: str
    ) -> bool:
        name = normalize_symbol(symbol if symbol is not None else self.symbol.value)
        if not name:
            self.message.value = _note("enter a symbol", ok=False)
            return False
        try:
            await action(name)
        except Exception as exc:
            self.message.value = _note(f"{name}: {exc}", ok=False)
            return False
        self.message.value = _note(f"{done} {name}", ok=True)
        return True


class AlertRuleForm(VBox):  # type: ignore[misc]
    """A form that creates an alert rule (``POST rtstream/api/alerts/rules``).

    ``await form.submit()`` does what the Create button does and returns the stored rule
    (or None, with the server's error shown in ``form.message``).
    """

    def __init__(
        self,
        rest: RestAPI | None = None,
        *,
        symbol: str = "",
        on_created: Callable[[dict[str, Any]], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.rest = rest
        self.on_created = on_created
        self._tasks = _Tasks()
        self.rule_name = Text(description="Name", placeholder="rule name")
        self.symbol = Text(description="Symbol", value=symbol)
        self.condition = Dropdown(description="Condition", options=CONDITIONS)
        self.target_value = FloatText(description="Target", value=0.0)
        self.severity = Dropdown(description="Severity", options=SEVERITY_CHOICES, value="medium")
        self.indicator = Dropdown(
            description="Indicator", options=("", *INDICATORS), value="", disabled=True
        )
        self.other_indicator = Dropdown(
            description="Other", options=("", *INDICATORS), value="", disabled=True
        )
        self.create_button = Button(description="Create rule", icon="bell", disabled=rest is None)
        self.message = HTML()
        self.condition.observe(self._condition_changed, names="value")
        self.create_button.on_click(lambda _: self._tasks.spawn(self.submit()))
        self.created: list[dict[str, Any]] = []
        super().__init__(
            children=[
                HBox([self.rule_name, self.symbol]),
                HBox([self.condition, self.target_value]),
                HBox([self.indicator, self.other_indicator]),
                HBox([self.severity, self.create_button]),
                self.message,
            ],
            **kwargs,
        )

    def _condition_changed(self, change: dict[str, Any]) -> None:
        condition = str(change["new"])
        self.indicator.disabled = not condition.startswith(("indicator_", "crosses_"))
        self.other_indicator.disabled = not condition.startswith("crosses_")

    def body(self) -> dict[str, Any]:
        """The request body the form currently describes."""
        body: dict[str, Any] = {
            "rule_name": self.rule_name.value.strip(),
            "symbol": normalize_symbol(self.symbol.value),
            "condition": self.condition.value,
            "target_value": float(self.target_value.value),
            "severity": self.severity.value,
        }
        if not self.indicator.disabled and self.indicator.value:
            body["indicator"] = self.indicator.value
        if not self.other_indicator.disabled and self.other_indicator.value:
            body["other_indicator"] = self.other_indicator.value
        return body

    async def submit(self) -> dict[str, Any] | None:
        if self.rest is None:
            self.message.value = _note("not connected: no server to send the rule to", ok=False)
            return None
        body = self.body()
        if not body["rule_name"] or not body["symbol"]:
            self.message.value = _note("a rule needs a name and a symbol", ok=False)
            return None
        try:
            rule = await self.rest.create_rule(**body)
        except Exception as exc:
            self.message.value = _note(str(exc), ok=False)
            return None
        self.created.append(rule)
        self.message.value = _note(
            f"created rule #{rule.get('rule_id')} {rule.get('rule_name', body['rule_name'])}",
            ok=True,
        )
        if self.on_created is not None:
            self.on_created(rule)
        return rule
