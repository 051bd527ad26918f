"""The one REST client of the package: ``rtstream/api/*`` over tornado's ``AsyncHTTPClient``.

The stream fills alert gaps with it and the widgets create rules and post ticks with it, so
there is one error policy: an HTTP error answer raises :class:`RestError` (with the server's
``error_code``), a transport failure or an unexpected body raises
:class:`~.errors.ClientError`. The constructor does no I/O: without a server or a full
``url`` + ``token`` pair, the server is discovered (off the event loop) on the first request.

::

    api = RestAPI.for_stream(stream)            # or RestAPI() (discovery), RestAPI(url, token)
    await api.post_ticks([{"symbol": "DEMO", "price": 10.0, "volume": 100}])
    rule = await api.create_rule(rule_name="demo", symbol="DEMO", condition="price_above",
                                 target_value=11.0, severity="high")
    alerts = await api.alerts(since=0)          # persisted history, oldest first

Errors answered by the server raise :class:`RestError` with its ``error_code``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import ValidationError
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..core.messages import AlertPayload, format_timestamp
from ..core.rest import InstrumentHistory
from ..core.vocabulary import normalize_symbol
from .discovery import ServerInfo, discover
from .errors import ClientError

if TYPE_CHECKING:
    from .stream import Stream

#: Page size of alert history requests (the server's default; its maximum is 10,000).
ALERT_PAGE = 1000
#: Page size of instrument history requests (the server's maximum).
HISTORY_PAGE = 10_000
#: At most this many pages per history read (10 million alerts): a server that keeps
#: answering full pages forever must not keep a client busy forever.
ALERT_MAX_PAGES = 10_000


class RestError(ClientError):
    """The server refused a REST request (``status``, ``error_code``, ``error_message``)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        code = body.get("error_code") if isinstance(body, dict) else None
        message = body.get("error_message") if isinstance(body, dict) else None
        self.error_code: str | None = str(code) if code is not None else None
        self.error_message: str = str(message) if message is not None else str(body)[:200]
        super().__init__(
            f"{method} {path} answered HTTP {status}"
            + (f" {self.error_code}: {self.error_message}" if self.error_code else "")
        )


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class RestAPI:
    """``rtstream/api/*`` of one Jupyter server, authenticated with its token."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        server: ServerInfo | None = None,
        timeout: float = 10.0,
        validate_cert: bool = True,
    ) -> None:
        if server is None and url is not None and token is not None:
            server = ServerInfo(url, token)  # fully named: nothing to look up
        self._server = server
        self._lookup = (url, token)
        self.timeout = timeout
        self.validate_cert = validate_cert

    @classmethod
    def for_stream(cls, stream: Stream) -> RestAPI:
        """The REST API of the server ``stream`` is connected to (same URL and token)."""
        return cls(server=stream.server, validate_cert=stream.options.validate_cert)

    async def server(self) -> ServerInfo:
        """The server this client talks to (discovered on first use if it was not given)."""
        if self._server is None:
            self._server = await asyncio.to_thread(discover, *self._lookup)
        return self._server

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request; the decoded JSON answer (None for 204), else :class:`RestError`."""
        server = await self.server()
        headers = dict(server.headers())
        payload: str | None = None
        if body is not None:
            payload = json.dumps(body, default=_default)
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            payload = ""
        request = HTTPRequest(
            server.api_url(path),
            method=method,
            headers=headers,
            body=payload,
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            validate_cert=self.validate_cert,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 599:
            raise ClientError(f"{method} {path}: {response.error}")
        decoded: Any = None
        if response.body:
            try:
                decoded = json.loads(response.body)
            except ValueError:
                decoded = response.body.decode(errors="replace")
        if response.code >= 400:
            raise RestError(method, path, response.code, decoded)
        return decoded

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "rtstream/api/status")
        return result

    async def post_ticks(self, ticks: Iterable[Mapping[str, Any]]) -> int:
        """``POST rtstream/api/ticks``; returns how many ticks were accepted."""
        answer = await self.request(
            "POST", "rtstream/api/ticks", {"ticks": [dict(t) for t in ticks]}
        )
        return int(answer["accepted"])

    async def snapshot(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", f"rtstream/api/instruments/{quote(normalize_symbol(symbol), safe='')}/snapshot"
        )
        return result

    async def history(
        self,
        symbol: str,
        kind: str = "market_data",
        *,
        since: int | datetime | None = None,
        limit: int | None = None,
    ) -> InstrumentHistory:
        """One page of ``GET rtstream/api/instruments/{symbol}/history``: the messages the
        server still holds of the topic after seq ``since`` (an int) or published at or
        after ``since`` (a datetime), oldest first, at most ``limit`` (server default 1,000,
        maximum 10,000). Page on with ``since=<last seq>`` until a page comes back short;
        :meth:`history_since` does that."""
        name = quote(normalize_symbol(symbol), safe="")
        path = f"rtstream/api/instruments/{name}/history?kind={kind}"
        if isinstance(since, datetime):
            path += f"&since={quote(format_timestamp(since))}"
        elif since is not None:
            path += f"&since={int(since)}"
        if limit is not None:
            path += f"&limit={int(limit)}"
        answer = await self.request("GET", path)
        try:
            return InstrumentHistory.model_validate(answer)
        except ValidationError as exc:
            raise ClientError(f"GET {path}: unexpected body ({exc.error_count()} errors)") from None

    async def history_since(
        self,
        symbol: str,
        kind: str = "market_data",
        *,
        since: int | datetime | None = None,
        until_seq: int | None = None,
        page: int = HISTORY_PAGE,
    ) -> InstrumentHistory:
        """Every page of the history after ``since`` (up to at least seq ``until_seq`` when
        given), merged into one :class:`InstrumentHistory`; stops when a page is short or
        the seqs stop advancing."""
        first = await self.history(symbol, kind, since=since, limit=page)
        messages = list(first.messages)
        last = first
        for _ in range(ALERT_MAX_PAGES):
            if len(last.messages) < page or (
                until_seq is not None and messages and messages[-1].seq >= until_seq
            ):
                break
            cursor = messages[-1].seq
            last = await self.history(symbol, kind, since=cursor, limit=page)
            if last.epoch != first.epoch:
                break  # the server restarted: seqs of the two pages are not comparable
            messages += [m for m in last.messages if m.seq > cursor]
            if not last.messages or last.messages[-1].seq <= cursor:
                break
        return first.model_copy(update={"messages": messages, "seq": last.seq})

    async def create_rule(self, **fields: Any) -> dict[str, Any]:
        """``POST rtstream/api/alerts/rules`` (``rule_name``, ``symbol``, ``condition``,
        ``target_value``, ``severity``, optional ``indicator``...); the stored rule."""
        body = {key: value for key, value in fields.items() if value is not None}
        result: dict[str, Any] = await self.request("POST", "rtstream/api/alerts/rules", body)
        return result

    async def rules(self) -> list[dict[str, Any]]:
        answer = await self.request("GET", "rtstream/api/alerts/rules")
        return list(answer["rules"])

    async def delete_rule(self, rule_id: int) -> None:
        await self.request("DELETE", f"rtstream/api/alerts/rules/{int(rule_id)}")

    async def alerts(
        self,
        since: int = 0,
        *,
        limit: int | None = None,
        symbol: str | None = None,
        on_invalid: Callable[[str], None] | None = None,
    ) -> list[AlertPayload]:
        """One page of the persisted alert history after alert ``since`` (of ``symbol``),
        oldest first: at most ``limit``, or the server's default page. An item that does
        not validate raises :class:`~.errors.ClientError`, or is skipped and reported to
        ``on_invalid``."""
        payloads, _ = await self._alert_page(since, limit, symbol, on_invalid)
        return payloads

    async def alert_history(
        self,
        since: int = 0,
        *,
        symbol: str | None = None,
        page: int = ALERT_PAGE,
        on_invalid: Callable[[str], None] | None = None,
    ) -> list[AlertPayload]:
        """Every alert after ``since`` (of ``symbol``): pages until one comes back short.

        Stops, without error, if the ids stop advancing, so a misbehaving server cannot
        loop it."""
        out: list[AlertPayload] = []
        cursor = int(since)
        for _ in range(ALERT_MAX_PAGES):
            payloads, count = await self._alert_page(cursor, page, symbol, on_invalid)
            out += payloads
            newest = max((a.alert_id for a in payloads), default=cursor)
            if count < page or newest <= cursor:
                break
            cursor = newest
        return out

    async def _alert_page(
        self,
        since: int,
        limit: int | None,
        symbol: str | None,
        on_invalid: Callable[[str], None] | None,
    ) -> tuple[list[AlertPayload], int]:
        """The valid alerts of one page, and how many items the page held."""
        path = f"rtstream/api/alerts?since={int(since)}"
        if limit is not None:
            path += f"&limit={int(limit)}"
        if symbol is not None:
            path += f"&symbol={quote(symbol)}"
        answer = await self.request("GET", path)
        items = answer.get("alerts") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ClientError(f"GET {path}: unexpected body (no 'alerts' list)")
        payloads = []
        for item in items:
            try:
                payloads.append(AlertPayload.model_validate(item))
            except ValidationError as exc:
                why = f"alert history item: {exc.error_count()} validation errors"
                if on_invalid is None:
                    raise ClientError(f"GET {path}: {why}") from None
                on_invalid(why)
        return payloads, len(items)
