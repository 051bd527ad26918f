"""The failure-aware reconnect policy (issue 16), per failure kind, with a fake clock and a
scripted random source: which failure is which, and the delay each one gets."""

from __future__ import annotations

import random

import pytest

from jupyter_rtstream.core.backoff import (
    MAX_RETRY_AFTER,
    TIMEOUT,
    UNREACHABLE,
    Failure,
    FailureKind,
    ReconnectPolicy,
    clamp_retry_after,
    classify_close,
    classify_http,
    parse_retry_after,
    status_text,
)


class Top(random.Random):
    """Draws the top of every range: a delay equals its upper bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Bottom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


OVERLOAD = Failure(FailureKind.OVERLOAD, None, "close 1013")
STARTING = classify_http(503)


@pytest.mark.parametrize(
    ("status", "retry_after", "kind"),
    [
        (401, None, FailureKind.REFUSED),
        (403, None, FailureKind.REFUSED),
        (404, None, FailureKind.REFUSED),
        (400, None, FailureKind.REFUSED),
        (502, None, FailureKind.STARTING),
        (503, None, FailureKind.STARTING),
        (504, None, FailureKind.STARTING),
        (503, 7.0, FailureKind.OVERLOAD),
        (429, None, FailureKind.OVERLOAD),
        (429, 3.0, FailureKind.OVERLOAD),
        (500, None, FailureKind.OVERLOAD),
    ],
)
def test_http_answers_are_classified(status: int, retry_after: float | None, kind: str) -> None:
    failure = classify_http(status, retry_after)
    assert failure.kind is kind and failure.detail == f"HTTP {status}"
    if kind is FailureKind.OVERLOAD:
        assert failure.retry_after == retry_after


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (None, FailureKind.UNREACHABLE),  # the socket died: kill -9, network cut
        (1006, FailureKind.UNREACHABLE),
        (1001, FailureKind.OVERLOAD),
        (1012, FailureKind.OVERLOAD),
        (1013, FailureKind.OVERLOAD),
        (1008, FailureKind.OVERLOAD),
        (1011, FailureKind.OVERLOAD),
        (1000, FailureKind.OVERLOAD),
        (1002, FailureKind.REFUSED),
        (1003, FailureKind.REFUSED),
        (1007, FailureKind.REFUSED),
        (1010, FailureKind.REFUSED),
    ],
)
def test_closes_are_classified(code: int | None, kind: str) -> None:
    assert classify_close(code, 2.0).kind is kind


def test_nothing_listening_is_retried_quickly_for_as_long_as_it_lasts() -> None:
    policy = ReconnectPolicy(rng=random.Random(5))
    delays = [policy.next_delay(UNREACHABLE, now=float(t)) for t in range(500)]
    assert all(0.25 <= d <= 1.0 for d in delays)
    assert min(delays) < 0.3 and max(delays) > 0.95  # jittered over the whole window
    assert policy.level == 0 and policy.attempts == 500  # no escalation, but counted


def test_proxy_502_503_504_is_quick_for_30_s_then_exponential() -> None:
    policy = ReconnectPolicy(rng=Top())
    now, delays = 100.0, []
    while now < 100.0 + 29.9:
        delay = policy.next_delay(STARTING, now)
        delays.append(delay)
        now += delay
    assert set(delays) == {1.0} and policy.level == 0
    after = [policy.next_delay(STARTING, 100.0 + 30.0 + i) for i in range(8)]
    assert after == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # The window is not renewed by an unreachable spell in between...
    policy.next_delay(UNREACHABLE, 200.0)
    assert policy.next_delay(STARTING, 201.0) == 30.0
    # ...only by a stable connection.
    policy.stable()
    assert policy.next_delay(STARTING, 300.0) == 1.0


def test_overload_is_full_jitter_exponential_capped_and_never_below_retry_after() -> None:
    top = ReconnectPolicy(rng=Top())
    assert [top.next_delay(OVERLOAD, 0.0) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    bottom = ReconnectPolicy(rng=Bottom())
    assert [bottom.next_delay(OVERLOAD, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    floor = ReconnectPolicy(rng=Bottom())
    shutdown = classify_close(1001, 12.5)
    assert floor.next_delay(shutdown, 0.0) == 12.5
    assert floor.next_delay(classify_http(429, 3.0), 0.0) == 3.0
    assert floor.next_delay(TIMEOUT, 0.0) == 0.0 and floor.level == 3
    seeded = ReconnectPolicy(rng=random.Random(3))
    for level in range(40):
        assert 0.0 <= seeded.next_delay(OVERLOAD, 0.0) <= min(30.0, 0.5 * 2**level)


def test_connected_restarts_the_attempt_count_but_only_stable_resets_the_level() -> None:
    policy = ReconnectPolicy(rng=Top())
    for _ in range(4):  # a server that accepts, then closes 1013 at once
        policy.next_delay(OVERLOAD, 0.0)
        policy.connected()
    assert policy.attempts == 0 and policy.level == 4
    assert policy.next_delay(OVERLOAD, 0.0) == 8.0  # still escalating
    policy.stable()
    assert policy.next_delay(OVERLOAD, 0.0) == 0.5


def test_a_refusal_has_no_next_attempt() -> None:
    with pytest.raises(ValueError, match="final"):
        ReconnectPolicy().next_delay(classify_http(403), 0.0)


def test_wire_waits_are_clamped() -> None:
    assert clamp_retry_after(2.5) == 2.5
    assert clamp_retry_after(10**9) == MAX_RETRY_AFTER
    for bad in (-1, float("nan"), float("inf"), "5", None, True):
        assert clamp_retry_after(bad) is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("999999") == MAX_RETRY_AFTER
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_epoch=1445412480.0) == 10.0
    assert parse_retry_after("soon", now_epoch=0.0) is None
    assert parse_retry_after(None) is None


def test_status_texts() -> None:
    assert status_text(UNREACHABLE, 0.6) == "server not reachable, retrying"
    assert (
        status_text(classify_close(1013, 1.0), 12.2) == "server busy (close 1013), retrying in 12 s"
    )
    assert status_text(STARTING, 0.4) == "server starting (HTTP 503), retrying"
    assert status_text(classify_http(403), None) == "refused: 403"
