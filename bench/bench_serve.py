"""Load benchmark of `embrm serve` against a plain per-request server, on loopback.

Both servers (`embrm serve`, and `bench/plain_serve.py`: FastAPI's thread pool calling
``RewardModel`` per request) run as subprocesses on 127.0.0.1 on the same texts, and
their runs alternate, so other load on the machine falls on both alike. C concurrent
clients (asyncio, a new connection per request, as OpenRLHF's clients open one) send
either one (prompt, response) per request (OpenRLHF 0.11, ``rollout``) or
``--batch-texts`` per request (OpenRLHF <= 0.9, ``batch``). For each server, mode and
C, the median over ``--repeats`` runs: texts/s, texts per CPU-second of the server and
its model processes, p50/p99 request latency; and the lost answers (non-200) and wrong
ones (vs the in-process reward) of all runs. Prints a table with the ratio of the two
servers and writes JSON. Bounded: ``--texts`` per run, nothing leaves the machine.
Usage:

    python bench/bench_serve.py --bundle results/reward_model [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from embrm import RewardModel
from embrm.data.builtin_prompts import dialogues

from bench_core import ROOT

SERVERS = ("embrm", "plain")
MODES = ("rollout", "batch")  # one text per request (OpenRLHF 0.11), or --batch-texts


def texts(n: int) -> tuple[list[str], list[str]]:
    """``n`` (prompt, response) pairs from the project's own dialogues."""
    rows = [dialogues()[i % len(dialogues())] for i in range(n)]
    return [r["prompt"] for r in rows], [r["completion"] for r in rows]


def start_server(kind: str, bundle: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if kind == "embrm":
        embrm = str(Path(sys.executable).with_name("embrm"))
        cmd = [embrm, "serve", str(bundle), "--port", str(port), *extra]
    else:
        cmd = [sys.executable, str(ROOT / "bench/plain_serve.py"), str(bundle), "--port", str(port)]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's model processes)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += parents.get(out[-1], [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its descendants so far."""
    total = 0
    for p in process_tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of ``pid`` and its descendants, summed."""
    total = 0
    for p in process_tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


async def post(port: int, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a new connection; (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        if key.lower() == "content-length":
            length = int(value)
    payload = await reader.readexactly(length)
    writer.close()
    return status, payload


def load(url: str, pid: int, prompts, responses, want, clients: int, per_request: int) -> dict:
    """``clients`` concurrent clients share the texts, ``per_request`` texts a request;
    ``pid``: the server's process, whose CPU time the run took is reported too."""
    port = int(url.rsplit(":", 1)[1])
    starts = list(range(0, len(prompts) - per_request + 1, per_request))
    latencies, lost, wrong = [], 0, 0

    async def client(mine):
        nonlocal lost, wrong
        for i in mine:
            sl = slice(i, i + per_request)
            payload = {"query": [p + r for p, r in zip(prompts[sl], responses[sl])],
                       "prompts": prompts[sl]}  # fmt: skip
            t0 = time.perf_counter()
            status, body = await post(port, json.dumps(payload).encode())
            latencies.append(1000 * (time.perf_counter() - t0))
            if status != 200:
                lost += per_request
                continue
            got = np.asarray(json.loads(body)["rewards"])
            wrong += int((np.abs(got - want[sl]) > 1e-3).sum())

    async def run():
        await asyncio.gather(*(client(starts[c::clients]) for c in range(clients)))

    t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
    asyncio.run(run())
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    ms = np.array(latencies)
    return {
        "texts_per_s": len(starts) * per_request / wall,
        "texts_per_cpu_s": len(starts) * per_request / max(cpu, 1e-9),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "lost": lost,
        "wrong": wrong,
    }


def median_run(reps: list[dict]) -> dict:
    """The median of each timing over repeats; lost and wrong answers summed."""
    out = {k: float(np.median([r[k] for r in reps])) for k in reps[0] if k not in ("lost", "wrong")}
    return {**out, "lost": sum(r["lost"] for r in reps), "wrong": sum(r["wrong"] for r in reps),
            "repeats": len(reps)}  # fmt: skip


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "results/reward_model")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--texts", type=int, default=1024, help="texts per run")
    ap.add_argument("--batch-texts", type=int, default=32, help="texts per batch-mode request")
    ap.add_argument("--repeats", type=int, default=3, help="runs per cell (median reported)")
    ap.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--serve-args", default="", help="extra `embrm serve` flags, one string")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/bench_serve.json")
    args = ap.parse_args()
    prompts, responses = texts(args.texts)
    rm = RewardModel.from_pretrained(args.bundle)
    want = np.asarray(rm.score(prompts, responses))
    modes = {mode: {"rollout": 1, "batch": args.batch_texts}[mode] for mode in args.modes}
    servers = {}
    try:  # both servers up at once, idle while the other is measured: the runs alternate,
        # so the machine's other load falls on both alike
        for kind in args.servers:
            servers[kind] = start_server(kind, args.bundle, args.serve_args.split())
            proc, url = servers[kind]
            load(url, proc.pid, prompts[:64], responses[:64], want[:64], 8, 1)  # warm-up
        reps: dict[str, list] = {}
        loads = [load_average()]
        for _ in range(args.repeats):
            for mode, per in modes.items():
                for c in args.concurrency:
                    for kind, (proc, url) in servers.items():
                        run = load(url, proc.pid, prompts, responses, want, c, per)
                        reps.setdefault(f"{kind}/{mode}/{c}", []).append(run)
            loads.append(load_average())
        rss = {kind: peak_rss_mb(proc.pid) for kind, (proc, _) in servers.items()}
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    runs = {key: median_run(r) for key, r in reps.items()}
    cpu = os.cpu_count()
    spread = f"load average {min(loads):.1f}-{max(loads):.1f}"
    print(f"bundle {args.bundle} ({rm.config['embedder']['name']}), {args.texts} texts a run, "
          f"median of {args.repeats}, {cpu} CPUs, {spread}")  # fmt: skip
    print(f"{'mode':>7} {'C':>3} | {'server':>6} {'texts/s':>8} {'/cpu-s':>7} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'lost':>4} {'wrong':>5} | {'embrm/plain':>11}")  # fmt: skip
    for mode in modes:
        for c in args.concurrency:
            for kind in args.servers:
                r = runs[f"{kind}/{mode}/{c}"]
                ratio = ""
                if kind == "embrm" and "plain" in args.servers:
                    ratio = f"{r['texts_per_s'] / runs[f'plain/{mode}/{c}']['texts_per_s']:.2f}x"
                cells = (f"{r['texts_per_s']:8.1f} {r['texts_per_cpu_s']:7.1f} {r['p50_ms']:8.1f} "
                         f"{r['p99_ms']:8.1f} {r['lost']:4d} {r['wrong']:5d}")  # fmt: skip
                print(f"{mode:>7} {c:3d} | {kind:>6} {cells} | {ratio:>11}")
    print("peak RSS MB (server and its model processes): "
          + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"bundle": str(args.bundle), "texts": args.texts, "cpus": cpu,
               "batch_texts": args.batch_texts, "repeats": args.repeats,
               "load_average": loads, "runs": runs, "all_runs": reps,
               "peak_rss_mb": rss}  # fmt: skip
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
