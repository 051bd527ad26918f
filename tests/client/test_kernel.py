"""Inside ipykernel's running event loop: discovery from the kernel's environment, top-level
``await``, and the no-``await`` start (background task between cells)."""

from __future__ import annotations

import os
from typing import Any

import jupyter_client

from jupyter_rtstream.testing import ServerProcess


def execute(client: Any, code: str) -> str:
    chunks: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            chunks.append(content["text"])
        elif msg["msg_type"] == "error":
            chunks.append("ERROR " + content["ename"] + ": " + content["evalue"])

    reply = client.execute_interactive(code, timeout=60, output_hook=hook)
    output = "".join(chunks)
    assert reply["content"]["status"] == "ok", output
    return output


def test_inside_a_kernel(live_server: ServerProcess, tmp_path: Any) -> None:
    env = {
        **os.environ,
        "JUPYTER_RTSTREAM_URL": live_server.url,
        "JUPYTER_RTSTREAM_TOKEN": live_server.token,
        "JUPYTER_RUNTIME_DIR": str(tmp_path),
    }
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=env)
    try:
        out = execute(
            client,
            "import asyncio, jupyter_rtstream\n"
            "stream = await jupyter_rtstream.connect()\n"
            "seqs = []\n"
            "stream.on('market_data', lambda m: seqs.append(m.seq))\n"
            "ack = await stream.subscribe('market_data', 'AAPL')\n"
            "print(stream.state.value, ack.data.topic)\n",
        )
        assert out.split() == ["connected", "market_data:AAPL"]
        # No await: a plain cell starts a stream; it connects while the kernel is idle.
        execute(client, "background = jupyter_rtstream.Stream().start()\n")
        out = execute(
            client,
            "await asyncio.sleep(1.0)\n"
            "print(background.state.value, len(seqs) > 3, seqs == sorted(seqs))\n"
            "print(round(await stream.ping(), 3) < 5)\n"
            "await background.close(); await stream.close()\n"
            "print(stream.state.value, stream.stats.invalid_frames)\n",
        )
        assert out.split() == ["connected", "True", "True", "True", "disconnected", "0"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
