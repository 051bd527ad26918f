"""``python -m jupyter_rtstream.chaos``: run the fault suite, print the reliability table.

``python -m jupyter_rtstream.chaos [--only kill9,frozen,...] [--quick] [--cycles N]
[--clients N] [--frames N] [--duration S] [--json PATH] [--table PATH]``

Scenarios (in this order): ``kill9`` (1), ``storm`` (2), ``frozen`` (3), ``slow`` (4),
``fuzz`` (5), ``wire`` (6), ``soak`` (7); see each module's docstring and
``docs/reliability.md``. The defaults are the documented full run; ``--quick`` runs the
sizes of the test suite's fast subset. Exit status: 0 when every goal of every scenario run
was met, 1 otherwise (2 for a usage error).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .result import Result, commit, machine_load, table

ORDER = ("kill9", "storm", "frozen", "slow", "fuzz", "wire", "soak")

#: The fast subset's sizes (``--quick``; tests/chaos uses the same or smaller).
QUICK: dict[str, dict[str, Any]] = {
    "kill9": {"cycles": 10, "clients": 5},
    "storm": {"clients": 100},
    "frozen": {},
    "slow": {"healthy": 20, "rate": 2_000.0, "duration": 10.0},
    "fuzz": {"frames": 1_000, "connections": 10},
    "wire": {},
    "soak": {"duration": 30.0, "clients": 20},
}


def _load(name: str) -> Any:
    """A scenario module, imported when it runs (``--only`` pays only for its own)."""
    return importlib.import_module(f"{__package__}.{name}")


def _plan(args: argparse.Namespace) -> dict[str, Callable[[], Awaitable[Result | list[Result]]]]:
    quick = args.quick

    def size(name: str, key: str, full: Any, given: Any = None) -> Any:
        if given is not None:
            return given
        return QUICK[name].get(key, full) if quick else full

    return {
        "kill9": lambda: _load("kill9").run(
            cycles=size("kill9", "cycles", 100, args.cycles),
            clients=size("kill9", "clients", 20, args.clients),
        ),
        "storm": lambda: _load("storm").run(clients=size("storm", "clients", 500, args.clients)),
        "frozen": lambda: _load("frozen").run(),
        "slow": lambda: _load("slow").run(
            healthy=size("slow", "healthy", 99, None if args.clients is None else args.clients),
            rate=size("slow", "rate", 10_000.0),
            duration=size("slow", "duration", 30.0),
        ),
        "fuzz": lambda: _load("fuzz").run(
            frames=size("fuzz", "frames", 10_000, args.frames),
            connections=size("fuzz", "connections", 50),
        ),
        "wire": lambda: _load("wire").run(),
        "soak": lambda: _load("soak").run(
            duration=size("soak", "duration", 1800.0, args.duration),
            clients=size("soak", "clients", 200, args.clients),
        ),
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_rtstream.chaos", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--only", default=",".join(ORDER), help="comma-separated scenarios")
    parser.add_argument("--quick", action="store_true", help="the fast subset's sizes")
    parser.add_argument("--cycles", type=int, default=None, help="kill9: kill -9 cycles")
    parser.add_argument("--clients", type=int, default=None, help="clients (kill9/storm/soak)")
    parser.add_argument("--frames", type=int, default=None, help="fuzz: frames")
    parser.add_argument("--duration", type=float, default=None, help="soak: seconds (1800)")
    parser.add_argument("--json", default=None, help="write every figure to this file")
    parser.add_argument("--table", default=None, help="write the markdown table to this file")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in ORDER]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(ORDER)}")
    plan = _plan(args)
    revision = commit()  # the code that runs (later commits would not be)
    results: list[Result] = []
    crashed: list[str] = []
    for name in ORDER:
        if name not in chosen:
            continue
        print(f"== {name} ({machine_load()})", flush=True)
        started = time.monotonic()
        try:
            outcome = await plan[name]()
        except Exception:  # a scenario that cannot finish is a missed goal, not a crash
            traceback.print_exc()
            crashed.append(name)
            continue
        for result in outcome if isinstance(outcome, list) else [outcome]:
            result.seconds = round(time.monotonic() - started, 1)
            result.load += f"; {machine_load()}"
            results.append(result)
            mark = "met" if result.passed else "MISSED"
            print(f"   {mark}: {result.figure}", flush=True)
            for goal in result.failed():
                print(f"   missed goal: {goal.name} ({goal.measured})", flush=True)
            for note in result.notes:
                print(f"   note: {note}", flush=True)
    text = table(results, at=revision)
    print(text)
    if args.table:
        await asyncio.to_thread(Path(args.table).write_text, text + "\n")
    if args.json:
        body = json.dumps({"results": [r.to_json() for r in results], "crashed": crashed}, indent=1)
        await asyncio.to_thread(Path(args.json).write_text, body)
    if crashed:
        print(f"scenarios that could not finish: {', '.join(crashed)}", file=sys.stderr)
    return 0 if results and not crashed and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
