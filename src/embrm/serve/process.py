"""The server's model in a child process: scoring never waits for the event loop's GIL.

In one process, the HTTP event loop (parsing, JSON, reading texts) and the scoring
thread share one GIL: under load a batch took up to 3.6 times its CPU time, waiting for
it. :class:`ModelProcesses` loads the
:class:`~embrm.serve.model.RewardModel` in spawned children and scores over pipes, one
batch per child at a time (several children score several batches at once, each with
its own GIL); the parent keeps only what the server reads (the head, the text reader,
the golden range, device and dtype), not the model.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue

from embrm.io.errors import InputError
from embrm.serve.texts import FormatTally, TextReader

log = logging.getLogger(__name__)


class ScoringError(RuntimeError):
    """Scoring failed in the model process; the message names the original error."""


def _run_model(conn, bundle, threads: int, options: dict) -> None:
    """The child: load the model, send what the parent needs, then score until None."""
    import torch

    from embrm.serve.model import RewardModel

    torch.set_num_threads(threads)
    try:
        rm = RewardModel.from_pretrained(bundle, **options)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(
        (
            "ready",
            {
                "config": rm.config,
                "head": rm.head,
                "conservative": rm.conservative,
                "device": str(rm.device),
                "dtype": str(rm.dtype).removeprefix("torch."),
                "golden_range": rm.golden_range,
                "formats": rm.reader.formats,
            },
        )
    )
    while (texts := conn.recv()) is not None:
        try:
            conn.send(("ok", rm.rewards_and_spread(texts)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ModelProcesses:
    """``workers`` RewardModels, each in its own process behind a pipe, with the
    attributes the server reads; ``rewards_and_spread`` scores on whichever is free.

    ``options``: :meth:`RewardModel.from_pretrained`'s keywords; ``threads``: each
    child's torch threads. Loading errors are raised here, as :class:`InputError`."""

    def __init__(self, bundle, *, workers: int, threads: int, **options):
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        self.procs, conns = [], []
        for _ in range(workers):  # started together: they load in parallel
            conn, child = ctx.Pipe()
            proc = ctx.Process(
                target=_run_model, args=(child, str(bundle), threads, options), daemon=True
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            conns.append(conn)
        self.idle: queue.Queue = queue.Queue()
        for conn in conns:
            info = self._ready(conn, bundle)
            self.idle.put(conn)
        self.workers = self.live = workers
        self.config, self.head, self.conservative = (
            info["config"],
            info["head"],
            info["conservative"],
        )
        self.device, self.dtype, self.golden_range = (
            info["device"],
            info["dtype"],
            info["golden_range"],
        )
        self.reader = TextReader(info["formats"])
        self.formats_seen = FormatTally()

    def _ready(self, conn, bundle) -> dict:
        try:
            kind, info = conn.recv()
        except EOFError:
            self.close()
            raise InputError(f"{bundle}: a model process exited while loading") from None
        if kind == "error":
            self.close()
            raise InputError(info)
        return info

    def rewards_and_spread(self, texts: list[str]):
        """Rewards ``(B,)`` and spread ``(B,)`` of texts in step 4's format (blocks until
        a model process is free; raises at once when none is left)."""
        conn = None
        while conn is None:
            if not self.live:
                raise ScoringError("no model process is left; see the server's log")
            try:
                conn = self.idle.get(timeout=1)
            except queue.Empty:
                continue
        try:
            conn.send(texts)
            kind, out = conn.recv()
        except (EOFError, OSError) as exc:  # the process died (killed, out of memory)
            self.live -= 1
            log.error("a model process is gone (%s); %d left", exc or type(exc).__name__, self.live)
            raise ScoringError(f"a model process is gone ({type(exc).__name__})") from None
        self.idle.put(conn)
        if kind == "error":
            raise ScoringError(out)
        return out

    def close(self) -> None:
        while not self.idle.empty():
            try:
                self.idle.get_nowait().send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
