"""Run many independent tasks: a local process pool (the embedded default) or Ray (local cluster or remote).

Used by sweeps and by anything that needs replicates (twin simulations, evaluations over seeds). Results come
back in the order of the inputs, so the executor never changes the numbers.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from controlkit.core.errors import ControlkitError, choices_error

EXECUTORS = ("local", "ray")


def map_tasks(
    fn: Callable[..., Any],
    args: Sequence[tuple],
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    desc: str | None = None,
    quiet: bool = False,
) -> list[Any]:
    """Return ``[fn(*a) for a in args]``, computed in parallel.

    Args:
        fn: A picklable, module-level function.
        args: One argument tuple per task.
        executor: ``"local"`` (process pool; ``workers=1`` runs in this process) or ``"ray"``.
        workers: Parallel workers (default: CPU count).
        ray_address: Ray cluster address; default ``$RAY_ADDRESS`` or a fresh local cluster.
        desc: Progress-bar label.
        quiet: Hide the progress bar.
    """
    if executor not in EXECUTORS:
        raise choices_error("executor", executor, EXECUTORS)
    if workers is not None and workers < 1:
        raise ControlkitError(f"workers: must be >= 1, got {workers}.")
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(args), desc=desc, disable=quiet, leave=False)
    try:
        if executor == "ray":
            return _map_ray(fn, args, workers, ray_address, bar)
        if workers == 1 or len(args) <= 1:
            out = []
            for a in args:
                out.append(fn(*a))
                bar.update()
            return out
        # spawn: forked children of a process that already started torch/OpenMP threads can deadlock.
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(args)), mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(fn, *a) for a in args]
            for _ in cf.as_completed(futures):
                bar.update()
            return [f.result() for f in futures]
    finally:
        bar.close()


def _map_ray(fn, args, workers, address, bar) -> list[Any]:
    try:
        import ray
    except ImportError:
        raise ControlkitError("executor 'ray' needs Ray: pip install 'controlkit[ray]'.") from None
    address = address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=1)(fn)
        refs = [remote.remote(*a) for a in args]
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            bar.update(len(done))
        return ray.get(refs)
    finally:
        if started:
            ray.shutdown()
