"""The outbox's conflation index, built only once a client lags, conflates exactly as an index
kept on every push would (the reference below is the outbox's former, eager bookkeeping)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jupyter_rtstream.core.outbox import Frame, Outbox


class EagerReference:
    """Every push records its topic's position; forget_topic drops it (the old outbox)."""

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes, self.max_messages = max_bytes, max_messages
        self.lag_bytes, self.lag_messages = max_bytes // 4, max(1, max_messages // 4)
        self.queue: list[Frame] = []
        self.pending: dict[str, int] = {}
        self.nbytes = self.conflated = 0
        self.closed = False

    def push(self, frame: Frame) -> None:
        if self.closed:
            return
        if frame.conflatable and frame.topic is not None:
            lagging = self.nbytes > self.lag_bytes or len(self.queue) > self.lag_messages
            index = self.pending.get(frame.topic) if lagging else None
            if index is not None:
                self.nbytes += frame.nbytes - self.queue[index].nbytes
                self.queue[index] = frame
                self.conflated += 1
                return
            self.pending[frame.topic] = len(self.queue)
            self.queue.append(frame)
            self.nbytes += frame.nbytes
        else:
            self.queue.append(frame)
            self.nbytes += frame.nbytes
            if self.nbytes > self.max_bytes or len(self.queue) > self.max_messages:
                self.closed = True
                self.queue, self.pending, self.nbytes = [], {}, 0

    def forget_topic(self, topic: str) -> None:
        self.pending.pop(topic, None)

    def drain(self) -> list[Frame]:
        frames, self.queue, self.pending, self.nbytes = self.queue, [], {}, 0
        return frames


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from("ABC"), st.integers(1, 40)),
        st.tuples(st.just("alert"), st.just(""), st.integers(1, 40)),
        st.tuples(st.just("forget"), st.sampled_from("ABC"), st.just(0)),
        st.tuples(st.just("drain"), st.just(""), st.just(0)),
    ),
    max_size=120,
)


@given(ops=ops, max_messages=st.integers(2, 24), max_bytes=st.integers(40, 600))
def test_lazy_index_conflates_like_an_eager_one(
    ops: list[tuple[str, str, int]], max_messages: int, max_bytes: int
) -> None:
    box = Outbox("c", max_bytes=max_bytes, max_messages=max_messages)
    ref = EagerReference(max_bytes, max_messages)
    for seq, (op, topic, size) in enumerate(ops, start=1):
        if op == "push":
            frame = Frame("x" * size, f"market_data:{topic}", seq, conflatable=True)
        elif op == "alert":
            frame = Frame("a" * size, "alerts:*", seq)
        if op in ("push", "alert"):
            box.push(frame)
            ref.push(frame)
        elif op == "forget":
            box.forget_topic(f"market_data:{topic}")
            ref.forget_topic(f"market_data:{topic}")
        else:
            assert box.drain_frames() == ref.drain()
        assert (box.nbytes, box.conflated, len(box)) == (ref.nbytes, ref.conflated, len(ref.queue))
        assert (box.close_request is not None) == ref.closed
    assert box.drain_frames() == ref.drain()


def test_index_follows_pushes_after_the_client_stops_lagging() -> None:
    """Built while lagging, the index must follow appends made after a smaller frame took
    the outbox back under the lag bound, or a later conflation would replace an older frame
    (and the client would see seqs out of order)."""
    box = Outbox("c", max_bytes=400, max_messages=100)  # lagging above 100 bytes
    md = "market_data:A"
    for seq, size in enumerate((60, 60, 10, 50, 5), start=1):
        box.push(Frame("x" * size, md, seq, conflatable=True))
    # 3 replaced 2 (lagging at 120 bytes), 4 was appended (70 bytes: not lagging), 5 replaced 4.
    assert [f.seq for f in box.drain_frames()] == [1, 3, 5]
    assert box.conflated == 2
