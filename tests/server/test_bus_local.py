"""``bus = "local"`` (the default) stays as before: no Redis, nothing read-only, feed ok."""

from __future__ import annotations

from typing import Any

from jupyter_rtstream.server.app import RtstreamApp

from .test_rest import get_json, post_json


async def test_the_default_bus_is_local_and_reports_ok(
    jp_fetch: Any, rtstream_app: RtstreamApp, ws_connect: Any
) -> None:
    assert rtstream_app.bus == "local" and rtstream_app.relay is None
    assert rtstream_app.read_only_symbols() == frozenset()
    status = await get_json(jp_fetch, "status")
    assert status["feed"]["state"] == "ok" and status["feed"]["bus"] == "local"
    code, body = await post_json(
        jp_fetch, "ticks", body={"ticks": [{"symbol": "AAPL", "price": 190.0, "volume": 1}]}
    )
    assert code == 200 and body == {"accepted": 1}
    ws = await ws_connect()
    assert ws.hello["data"]["feed_state"] == "ok"
    ws.close()
