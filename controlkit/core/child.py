"""A worker in a child process behind a pipe: how Fallback and AsyncPlanner start one and reap one that died."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


def start_child(target: Callable[[Connection, Any], None], payload: Any, name: str) -> tuple[Any, Connection]:
    """Start ``target(conn, payload)`` in a spawned daemon process; returns the process and the parent's end.

    Spawned, not forked: fork would copy the caller's threads and locks (a control loop's) into the child.
    """
    ctx = mp.get_context("spawn")
    conn, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child, payload), daemon=True, name=name)
    process.start()
    child.close()
    return process, conn


def reap_child(process: Any, conn: Connection) -> int | None:
    """Close the pipe of a child that died (or hangs) and wait for it; returns its exit code."""
    conn.close()
    process.join(timeout=1)  # the pipe closes as the child exits: let it finish, for its exit code
    if process.is_alive():
        process.kill()
        process.join(timeout=5)
    return process.exitcode
