"""Server CPU per request: `mlops serve` on a prepared champion, N requests, CPU read from /proc.

Wall-clock throughput on a shared machine says little; the server process's CPU time (user +
system, all its threads: event loop, model threads, log writer) per request is what bounds
throughput on one core. Sends `--requests` single-row and then 1,000-row `dataframe_split`
requests (the bodies `serving_bench` sends) over `--connections` concurrent keep-alive
connections and prints the server's CPU milliseconds per request for each, after a warm-up,
and how they split over its threads (named by `py-spy dump`: the event loop `MainThread`, the
parse pool, the model threads, the log writers).

    uv run python bench/serving_cpu.py --workdir /tmp/bench   # a champion serving_bench kept
    uv run python bench/serving_cpu.py --workdir /tmp/bench --py-spy /tmp/batch.svg

`--py-spy FILE` records the server (py-spy, installed separately; native frames included)
during the 1,000-row phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from serving_bench import BATCH_ROWS, BIN, ROW, _champion, wait_for_ping

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each of a process's threads, by native thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def py_spy() -> str:
    """py-spy on the PATH, or the one installed in this venv."""
    return shutil.which("py-spy") or str(BIN / "py-spy")


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name (a pool's numbered threads as one, `name_*`),
    from `py-spy dump`; empty without py-spy."""
    spy = py_spy()
    if not Path(spy).exists():
        return {}
    dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
    return {
        int(tid): re.sub(r"_\d+$", "_*", name)
        for tid, name in re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', dump.stdout, re.M)
    }


async def send(url: str, body: bytes, requests: int, connections: int) -> None:
    headers = {"content-type": "application/json"}
    todo = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in todo:
            reply = await client.post(f"{url}/invocations", content=body, headers=headers)
            if reply.status_code != 200:
                sys.exit(f"answered {reply.status_code}: {reply.text[:300]}")

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))


def measure(
    url: str, pid: int, body: bytes, requests: int, connections: int
) -> tuple[float, float, str]:
    """(server CPU ms per request, wall seconds, the CPU ms per request of each thread)."""
    asyncio.run(send(url, body, max(10, requests // 10), connections))  # warm-up
    names = thread_names(pid)  # after the warm-up: pools start their threads on demand
    threads, before, started = thread_cpu(pid), cpu_seconds(pid), time.perf_counter()
    asyncio.run(send(url, body, requests, connections))
    wall = time.perf_counter() - started
    total = (cpu_seconds(pid) - before) * 1000 / requests
    by_name: dict[str, float] = {}
    for tid, seconds in thread_cpu(pid).items():
        name = names.get(tid, "other")
        by_name[name] = by_name.get(name, 0.0) + (seconds - threads.get(tid, 0.0))
    shares = ", ".join(
        f"{name} {seconds * 1000 / requests:.3f}"
        for name, seconds in sorted(by_name.items(), key=lambda item: -item[1])
        if seconds > 0
    )
    return total, wall, shares


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--port", type=int, default=18200)
    parser.add_argument("--requests", type=int, default=400, help="1,000-row requests")
    parser.add_argument("--single", type=int, default=4000, help="single-row requests")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--py-spy", help="record the 1,000-row phase into this file (svg/txt)")
    parser.add_argument("--cpu", help="pin the server to these CPUs (taskset)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLOPS_DATA_DIR"] = str(workdir)
    champion = _champion(workdir, True)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "MLOPS_SERVING_MAX_BODY_BYTES": "4000000",
    }
    command = [str(BIN / "mlops"), "serve", "--port", str(args.port)]
    if args.cpu:
        command = ["taskset", "-c", args.cpu, *command]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        if not wait_for_ping(url, server, seconds=600):
            sys.exit("the server did not start")
        single = json.dumps(
            {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}
        )
        batch = json.dumps(
            {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())] * BATCH_ROWS}}
        )
        if args.single:
            ms, wall, shares = measure(
                url, server.pid, single.encode(), args.single, args.connections
            )
            print(
                f"single row: {ms:.3f} ms server CPU per request ({args.single / wall:,.0f} req/s)"
                f"\n  by thread (ms per request): {shares}"
            )
        spy = None
        if args.py_spy:
            fmt = "raw" if args.py_spy.endswith(".txt") else "flamegraph"
            spy = subprocess.Popen(
                [py_spy(), "record", "--pid", str(server.pid), "--threads", "--native",
                 "--format", fmt, "--output", args.py_spy, "--rate", "500"]
            )  # fmt: skip
            time.sleep(1)
        ms, wall, shares = measure(url, server.pid, batch.encode(), args.requests, args.connections)
        rows_s = args.requests * BATCH_ROWS / wall
        print(
            f"1,000 rows: {ms:.2f} ms server CPU per request "
            f"({1000 / ms * BATCH_ROWS:,.0f} rows per CPU second; wall {rows_s:,.0f} rows/s)"
            f"\n  by thread (ms per request): {shares}"
        )
        status = Path(f"/proc/{server.pid}/status").read_text()
        print(f"peak RSS {int(status.split('VmHWM:')[1].split()[0]) / 1024:.0f} MB")
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
