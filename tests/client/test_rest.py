"""The one REST client: no I/O in its constructor, one error policy for every caller."""

from __future__ import annotations

import pytest

from jupyter_rtstream.client import ClientError, DiscoveryError, RestAPI, RestError

from ._fake_server import FakeServer, alert_payload
from ._helpers import run


def test_the_constructor_does_no_io_and_discovery_fails_on_first_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("JUPYTER_RTSTREAM_URL", "JUPYTER_RTSTREAM_TOKEN", "JUPYTERHUB_SERVICE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))  # no running-server files
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    api = RestAPI()  # nothing to find, and nothing is looked up yet

    async def first_use() -> None:
        with pytest.raises(DiscoveryError):
            await api.status()

    run(first_use())


def test_alert_history_error_policy() -> None:
    async def scenario() -> None:
        fake = FakeServer().start()
        fake.alert_history = [alert_payload(1), alert_payload(2), alert_payload(3)]
        api = RestAPI(fake.url, fake.token)
        assert [a.alert_id for a in await api.alerts(since=1)] == [2, 3]
        assert fake.alert_queries[-1].endswith("since=1")
        await api.alerts(since=0, limit=2)
        assert fake.alert_queries[-1].endswith("since=0&limit=2")

        # An item that does not validate: skipped and reported, or a ClientError.
        fake.raw_history = [{"alert_id": "not a number"}]
        reported: list[str] = []
        got = await api.alerts(since=0, on_invalid=reported.append)
        assert [a.alert_id for a in got] == [1, 2, 3]
        assert len(reported) == 1 and "validation" in reported[0]
        with pytest.raises(ClientError, match="validation"):
            await api.alerts(since=0)

        # An HTTP error answer is a RestError with its status.
        fake.alerts_status = 503
        with pytest.raises(RestError) as refused:
            await api.alerts(since=0)
        assert refused.value.status == 503
        await fake.stop()

    run(scenario())
