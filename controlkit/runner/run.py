"""Running one experiment: a fresh run folder, resolved config, metadata, streamed metrics, summary, plots."""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import logging
import os
import platform
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from controlkit.core.errors import ControlkitError
from controlkit.core.io import atomic_write_json, atomic_write_text, save_figure
from controlkit.core.progress import progress_bar
from controlkit.core.seeding import spawn_seeds
from controlkit.runner.config import ExperimentConfig, config_to_yaml
from controlkit.runner.registry import get_kind
from controlkit.runner.signals import Interrupted, signals_as_interrupts

logger = logging.getLogger("controlkit")

_VERSIONED = ["controlkit", "numpy", "torch", "gymnasium", "mujoco", "highspy", "pyomo", "mesa", "ray"]
TIMINGS_KEY = "timings"  # summary key (and metrics column prefix "time_") that reproducibility checks ignore


class RunFailed(Exception):
    """The experiment raised after its run folder was made; the folder keeps everything written so far, and
    ``meta.json`` records ``status: failed``, the error and ``traceback.txt``.

    Attributes:
        run_dir: The run folder.
        user_error: The cause was a :class:`ControlkitError` (bad input found only while running).
    """

    def __init__(self, run_dir: Path, message: str, user_error: bool = False) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.user_error = user_error


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Where a run wrote its files and what it concluded."""

    run_dir: Path
    summary: dict[str, Any]
    config: ExperimentConfig


class RunContext:
    """What a kind's ``run`` function writes through. One per run folder.

    Messages go through :mod:`logging` (logger ``controlkit``): every message of the run, from this context or
    from any ``controlkit.*`` module, lands in the folder's ``log.txt``; the console shows what the CLI's
    verbosity lets through.
    """

    def __init__(self, run_dir: Path, config: ExperimentConfig, quiet: bool) -> None:
        self.dir = run_dir
        self.config = config
        self.seed: int = int(config.seed)  # type: ignore[arg-type]
        self.quiet = quiet
        self._metrics_file = None
        self._metrics_writer: csv.DictWriter | None = None
        self._log_handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
        self._log_handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        self._log_handler.setLevel(logging.INFO)
        self._logger_level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)  # log.txt gets INFO whatever the console shows
        logger.addHandler(self._log_handler)

    @property
    def rng(self) -> np.random.Generator:
        """A fresh numpy Generator from the run's seed (each call restarts the stream)."""
        return np.random.default_rng(self.seed)

    def seeds(self, n: int, stream: int = 0) -> list[int]:
        """``n`` independent integer seeds for episodes, trajectories or replicates (see :func:`spawn_seeds`)."""
        return spawn_seeds(self.seed, n, stream)

    def log(self, message: str) -> None:
        """Log ``message`` at INFO (into log.txt, and on the console unless the CLI is quiet)."""
        logger.info(message)

    def metric(self, **row: Any) -> None:
        """Append one row to metrics.csv (columns fixed by the first row; timing columns start with ``time_``)."""
        if self._metrics_writer is None:
            self._metrics_file = open(self.dir / "metrics.csv", "w", newline="", encoding="utf-8")
            self._metrics_writer = csv.DictWriter(self._metrics_file, fieldnames=list(row))
            self._metrics_writer.writeheader()
        self._metrics_writer.writerow({k: _scalar(v) for k, v in row.items()})
        self._metrics_file.flush()

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str | None = None):
        """A tqdm progress bar, shown only on a terminal and when the run is not quiet."""
        return progress_bar(iterable, total=total, desc=desc, quiet=self.quiet)

    def path(self, name: str) -> Path:
        """Path of a file inside the run folder."""
        return self.dir / name

    def savefig(self, fig, name: str) -> Path:
        """Save a matplotlib figure into the run folder as PNG (atomically)."""
        return save_figure(fig, self.dir / name)

    def _append_log(self, text: str) -> None:
        """Write ``text`` into log.txt only (a traceback belongs in the file, not on the console)."""
        self._log_handler.acquire()
        try:
            self._log_handler.stream.write(text)
            self._log_handler.flush()
        finally:
            self._log_handler.release()

    def close(self) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        logger.removeHandler(self._log_handler)
        logger.setLevel(self._logger_level)
        self._log_handler.close()


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def new_run_dir(root: str | Path, name: str) -> Path:
    """``root/name/<timestamp>-<short id>/``, created fresh (never an existing folder).

    Raises:
        ControlkitError: ``root`` cannot hold it (not writable, a file, ...), naming ``--out``.
    """
    parent = Path(root) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ControlkitError(f"--out: cannot create the run folder under {str(root)!r} "
                              f"({exc.strerror or exc}).") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ControlkitError(f"--out: {str(parent)!r} is not writable; give another --out.")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        run_dir = parent / f"{stamp}-{secrets.token_hex(3)}"
        try:
            run_dir.mkdir(exist_ok=False)
            return run_dir
        except FileExistsError:
            continue
        except OSError as exc:
            raise ControlkitError(f"--out: cannot create {str(run_dir)!r} ({exc.strerror or exc}).") from None


def run_experiment(
    config: ExperimentConfig,
    out: str | Path = "runs",
    quiet: bool = False,
    run_dir: str | Path | None = None,
    argv: list[str] | None = None,
) -> RunResult:
    """Run a validated config in a fresh folder (``run_dir`` if given, else under ``out/<name>/``).

    Everything that can be checked is checked by the config's validation, before this makes a folder. Once the
    folder exists it is never removed: whatever the run wrote stays, and ``meta.json`` ends as ``completed``,
    ``failed`` (with ``error`` and ``traceback.txt``) or ``interrupted`` (SIGINT/SIGTERM, with ``signal``).

    Raises:
        ControlkitError: ``out`` cannot hold a run folder (nothing is created).
        RunFailed: the experiment raised; the folder records why.
        Interrupted: SIGINT or SIGTERM arrived (a :class:`KeyboardInterrupt`); meta.json says ``interrupted``.
    """
    kind = get_kind(config.kind)
    if config.seed is None:
        config = config.model_copy(update={"seed": secrets.randbits(31)})
    with signals_as_interrupts():
        if run_dir is None:
            run_dir = new_run_dir(out, config.name or config.kind)
        else:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=False)
        atomic_write_text(run_dir / "config.yaml", config_to_yaml(config))
        meta = _meta(config, argv if argv is not None else sys.argv)
        atomic_write_json(run_dir / "meta.json", meta)
        ctx = RunContext(run_dir, config, quiet)
        t0 = time.perf_counter()
        try:
            ctx.log(f"run {run_dir} (kind {config.kind}, seed {config.seed})")
            summary = dict(kind.run(config, ctx))
            summary.setdefault(TIMINGS_KEY, {})["wall_s"] = time.perf_counter() - t0
            atomic_write_json(run_dir / "summary.json", summary)
            meta.update(status="completed", end_time=_now())
            atomic_write_json(run_dir / "meta.json", meta)
            ctx.log("completed")
        except BaseException as exc:
            _record_failure(ctx, meta, exc)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise RunFailed(run_dir, _one_line(exc), user_error=isinstance(exc, ControlkitError)) from exc
        finally:
            ctx.close()
    return RunResult(run_dir, summary, config)


def _record_failure(ctx: RunContext, meta: dict[str, Any], exc: BaseException) -> None:
    """meta.json says how the run ended; the traceback goes to traceback.txt and log.txt."""
    tb = "".join(traceback.format_exception(exc))
    atomic_write_text(ctx.path("traceback.txt"), tb)
    ctx._append_log(tb)
    if isinstance(exc, KeyboardInterrupt):
        sig = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
        meta.update(status="interrupted", signal=sig, error=f"interrupted by {sig}")
        logger.warning("interrupted by %s; what the run wrote so far is kept in %s", sig, ctx.dir)
    else:
        meta.update(status="failed", error=_one_line(exc))
    meta.update(end_time=_now(), traceback="traceback.txt")
    atomic_write_json(ctx.path("meta.json"), meta)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ControlkitError) else f"{type(exc).__name__}: {text}"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _meta(config: ExperimentConfig, argv: list[str]) -> dict[str, Any]:
    versions = {}
    for pkg in _VERSIONED:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "status": "running",
        "kind": config.kind,
        "name": config.name,
        "seed": config.seed,
        "command": argv,
        "cwd": os.getcwd(),
        "git": _git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "host": platform.node(),
        "pid": os.getpid(),
        "start_time": _now(),
        "end_time": None,
    }


def _git_state() -> dict[str, Any]:
    """Commit and dirty flag of the repository holding the controlkit source, if it is one."""
    src = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=src, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
