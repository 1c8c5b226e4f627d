"""Load benchmark of `embrm serve` on loopback, against the in-process callable.

C concurrent clients each send R requests of one (prompt, response), as OpenRLHF 0.11
does, to a real `embrm serve` subprocess on 127.0.0.1. Reports texts/s, p50/p99
latency, the server's peak RSS, lost or wrong answers (vs the in-process reward), and
the in-process texts/s of ``RewardModel.score`` on the same texts. Bounded: C x R
requests, nothing leaves the machine. Prints a table and writes JSON. Usage:

    python bench/bench_serve.py --bundle results/reward_model [--clients 16] [--requests 32]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from embrm import RewardModel
from embrm.generation.builtin_prompts import dialogues

from bench_core import ROOT


def texts(n: int) -> tuple[list[str], list[str]]:
    """``n`` (prompt, response) pairs from the project's own dialogues."""
    rows = [dialogues()[i % len(dialogues())] for i in range(n)]
    return [r["prompt"] for r in rows], [r["completion"] for r in rows]


def in_process(rm: RewardModel, prompts, responses) -> tuple[float, np.ndarray]:
    rm.score(prompts[:8], responses[:8])  # warm-up
    start = time.perf_counter()
    rewards = np.asarray(rm.score(prompts, responses))
    return len(prompts) / (time.perf_counter() - start), rewards


def start_server(bundle: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    embrm = str(Path(sys.executable).with_name("embrm"))
    proc = subprocess.Popen([embrm, "serve", str(bundle), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, prompts, responses, want, clients: int, requests: int) -> dict:
    """Each client sends its share of the texts one per request; latencies in ms."""

    def client(c: int):
        out = []
        with httpx.Client(timeout=180) as session:
            for r in range(requests):
                i = c * requests + r
                payload = {"query": [prompts[i] + responses[i]], "prompts": [prompts[i]]}
                t0 = time.perf_counter()
                reply = session.post(f"{url}/get_reward", json=payload)
                ms = 1000 * (time.perf_counter() - t0)
                ok = reply.status_code == 200
                reward = reply.json()["rewards"][0] if ok else None
                out.append((ms, ok and abs(reward - want[i]) < 1e-3, ok))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [x for part in pool.map(client, range(clients)) for x in part]
    wall = time.perf_counter() - start
    ms = np.array([r[0] for r in results])
    return {
        "texts_per_s": len(results) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "lost": sum(not r[2] for r in results),
        "wrong": sum(r[2] and not r[1] for r in results),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "results/reward_model")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--requests", type=int, default=32, help="per client")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/bench_serve.json")
    args = ap.parse_args()
    n = max(args.clients) * args.requests
    prompts, responses = texts(n)
    rm = RewardModel.from_pretrained(args.bundle)
    inproc, want = in_process(rm, prompts, responses)
    proc, url = start_server(args.bundle)
    try:
        runs = {c: load(url, prompts, responses, want, c, args.requests) for c in args.clients}
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"bundle {args.bundle} ({rm.config['embedder']['name']}), {n} texts")
    print(f"in-process RewardModel.score: {inproc:8.1f} texts/s")
    print(f"{'clients':>7} {'texts/s':>8} {'vs in-proc':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'lost':>5} {'wrong':>5}")  # fmt: skip
    for c, r in runs.items():
        print(f"{c:7d} {r['texts_per_s']:8.1f} {r['texts_per_s'] / inproc:10.0%} "
              f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['lost']:5d} {r['wrong']:5d}")  # fmt: skip
    print(f"server peak RSS: {rss:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bundle": str(args.bundle),
                "texts": n,
                "in_process_texts_per_s": inproc,
                "server": runs,
                "server_peak_rss_mb": rss,
            },  # fmt: skip
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
