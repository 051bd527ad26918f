"""Widget tests run without a kernel: comms are counted instead of sent to a frontend."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm


class CommLog:
    """Every comm message the widgets would have published on iopub."""

    def __init__(self) -> None:
        self.messages: Counter[str] = Counter()
        self.updates = 0
        self.bytes = 0
        self.updates_by_comm: Counter[str] = Counter()

    def record(self, comm_id: str, msg_type: str, data: Any, buffers: Any) -> None:
        self.messages[msg_type] += 1
        size = len(json.dumps(data, default=str)) if data is not None else 0
        size += sum(len(memoryview(b)) for b in buffers or ())
        self.bytes += size
        if msg_type == "comm_msg" and isinstance(data, dict) and data.get("method") == "update":
            self.updates += 1
            self.updates_by_comm[comm_id] += 1

    @property
    def iopub(self) -> int:
        return sum(self.messages.values())


class CountingComm(BaseComm):
    log: CommLog

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        self.log.record(self.comm_id, msg_type, data, buffers)


@pytest.fixture(autouse=True)
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommLog]:
    log = CommLog()

    def create_comm(*args: Any, **kwargs: Any) -> BaseComm:
        instance = CountingComm.__new__(CountingComm)
        instance.log = log
        CountingComm.__init__(instance, *args, **kwargs)
        return instance

    monkeypatch.setattr(comm, "create_comm", create_comm)
    yield log
