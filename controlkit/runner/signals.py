"""SIGINT and SIGTERM as an exception, so a run or a sweep that is stopped (Ctrl-C, ``timeout``, Slurm, a container
runtime) still records what happened and stops its workers instead of dying mid-write.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGINT or SIGTERM inside :func:`signals_as_interrupts`.

    A subclass of :class:`KeyboardInterrupt`, so ``except Exception`` in user code does not swallow it.

    Attributes:
        signum: The signal received.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit code for an interrupt: its signal's (see :attr:`Interrupted.exit_code`), else SIGINT's 130."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


@contextlib.contextmanager
def signals_as_interrupts(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM raises :class:`Interrupted`; later ones are ignored.

    Ignoring the repeats lets the clean-up that the first one started (writing meta.json, stopping workers) run to
    its end. A signal the process already ignores (SIGINT in a background job, or in a pool worker) stays
    ignored. Outside the main thread, where Python cannot install handlers, the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum, frame):
        nonlocal fired
        if not fired:
            fired = True
            raise Interrupted(signum)

    previous = {}
    for signum in signums:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)

