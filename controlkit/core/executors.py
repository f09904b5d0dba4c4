"""Run many independent tasks: a local process pool (the embedded default) or Ray (local cluster or remote).

Used by sweeps and by anything that needs replicates (twin simulations, evaluations over seeds). Results come
back in the order of the inputs, so the executor never changes the numbers.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from controlkit.core.errors import ControlkitError, choices_error
from controlkit.core.extras import missing_extra
from controlkit.core.progress import progress_bar

EXECUTORS = ("local", "ray")


def map_tasks(
    fn: Callable[..., Any],
    args: Sequence[tuple],
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    desc: str | None = None,
    quiet: bool = False,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Return ``[fn(*a) for a in args]``, computed in parallel.

    If the caller is interrupted (Ctrl-C, or SIGTERM turned into an exception) or a task raises, queued tasks are
    cancelled and running workers are stopped (SIGTERM, then SIGKILL after ``STOP_GRACE_S``) before the exception
    propagates: no worker outlives the call.

    Args:
        fn: A picklable, module-level function.
        args: One argument tuple per task.
        executor: ``"local"`` (process pool; ``workers=1`` runs in this process) or ``"ray"``.
        workers: Parallel workers (default: CPU count).
        ray_address: Ray cluster address; default ``$RAY_ADDRESS`` or a fresh local cluster.
        desc: Progress-bar label.
        quiet: Hide the progress bar (it shows only on a terminal anyway).
        on_result: Called as ``on_result(index, result)`` in this process as each task finishes (in finishing
            order), e.g. to save partial results.
    """
    if executor not in EXECUTORS:
        raise choices_error("executor", executor, EXECUTORS)
    if workers is not None and workers < 1:
        raise ControlkitError(f"workers: must be >= 1, got {workers}.")
    workers = workers or os.cpu_count() or 1
    out: list[Any] = [None] * len(args)

    def done(i: int, result: Any) -> None:
        out[i] = result
        if on_result is not None:
            on_result(i, result)
        bar.update()

    bar = progress_bar(total=len(args), desc=desc, quiet=quiet)
    try:
        if executor == "ray":
            _map_ray(fn, args, workers, ray_address, done)
        elif workers == 1 or len(args) <= 1:
            for i, a in enumerate(args):
                done(i, fn(*a))
        else:
            _map_pool(fn, args, min(workers, len(args)), done)
        return out
    finally:
        bar.close()


STOP_GRACE_S = 10.0
"""Seconds a stopped worker gets to finish its clean-up (a run records ``interrupted``) before it is killed."""


def _map_pool(fn, args, workers: int, done: Callable[[int, Any], None]) -> None:
    # spawn: forked children of a process that already started torch/OpenMP threads can deadlock.
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                  initializer=_ignore_sigint)
    # At most one task per worker is handed to the pool at a time: the pool would otherwise pass queued tasks
    # to its workers ahead of time, and a worker stopped mid-task could start one of them before it exits.
    pending = iter(enumerate(args))
    running: dict[cf.Future, int] = {}

    def submit_next() -> None:
        item = next(pending, None)
        if item is not None:
            running[pool.submit(fn, *item[1])] = item[0]

    try:
        for _ in range(workers):
            submit_next()
        while running:
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                done(running.pop(fut), fut.result())
                submit_next()
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel queued tasks and stop the workers: SIGTERM (a run inside records ``interrupted``), then SIGKILL."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the pool has no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()


def _ignore_sigint() -> None:
    """Pool-worker initializer. A terminal's Ctrl-C reaches every process of the group; the parent alone acts on
    it (and stops the workers with SIGTERM), so idle workers do not each print a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _map_ray(fn, args, workers, address, done) -> None:
    try:
        import ray
    except ImportError:
        raise missing_extra("ray", "executor 'ray'") from None
    address = address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=1)(fn)
        refs = [remote.remote(*a) for a in args]
        index = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    done(index[ref], ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
