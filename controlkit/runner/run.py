"""Running one experiment: a fresh run folder, resolved config, metadata, streamed metrics, summary, plots."""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from controlkit.core.errors import ControlkitError
from controlkit.core.io import atomic_write_json, atomic_write_text, save_figure
from controlkit.runner.config import ExperimentConfig, config_to_yaml
from controlkit.runner.registry import get_kind

_VERSIONED = ["controlkit", "numpy", "torch", "gymnasium", "mujoco", "highspy", "pyomo", "mesa", "ray"]
TIMINGS_KEY = "timings"  # summary key (and metrics column prefix "time_") that reproducibility checks ignore


class RunFailed(Exception):
    """The experiment raised; the run folder records the traceback and ``status: failed``."""

    def __init__(self, run_dir: Path, message: str) -> None:
        super().__init__(message)
        self.run_dir = run_dir


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Where a run wrote its files and what it concluded."""

    run_dir: Path
    summary: dict[str, Any]
    config: ExperimentConfig


class RunContext:
    """What a kind's ``run`` function writes through. One per run folder."""

    def __init__(self, run_dir: Path, config: ExperimentConfig, quiet: bool) -> None:
        self.dir = run_dir
        self.config = config
        self.seed: int = int(config.seed)  # type: ignore[arg-type]
        self.quiet = quiet
        self._metrics_file = None
        self._metrics_writer: csv.DictWriter | None = None
        self._log = open(run_dir / "log.txt", "a", encoding="utf-8")

    @property
    def rng(self) -> np.random.Generator:
        """A fresh numpy Generator from the run's seed (each call restarts the stream)."""
        return np.random.default_rng(self.seed)

    def log(self, message: str) -> None:
        """Append a line to log.txt (and show it unless quiet)."""
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        self._log.write(f"[{stamp}] {message}\n")
        self._log.flush()
        if not self.quiet:
            tqdm.write(message, file=sys.stderr)

    def metric(self, **row: Any) -> None:
        """Append one row to metrics.csv (columns fixed by the first row; timing columns start with ``time_``)."""
        if self._metrics_writer is None:
            self._metrics_file = open(self.dir / "metrics.csv", "w", newline="", encoding="utf-8")
            self._metrics_writer = csv.DictWriter(self._metrics_file, fieldnames=list(row))
            self._metrics_writer.writeheader()
        self._metrics_writer.writerow({k: _scalar(v) for k, v in row.items()})
        self._metrics_file.flush()

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str | None = None):
        """A tqdm progress bar, silent when the run is quiet."""
        return tqdm(iterable, total=total, desc=desc, disable=self.quiet, leave=False, dynamic_ncols=True)

    def path(self, name: str) -> Path:
        """Path of a file inside the run folder."""
        return self.dir / name

    def savefig(self, fig, name: str) -> Path:
        """Save a matplotlib figure into the run folder as PNG (atomically)."""
        return save_figure(fig, self.dir / name)

    def close(self) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
        self._log.close()


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def new_run_dir(root: str | Path, name: str) -> Path:
    """``root/name/<timestamp>-<short id>/``, created fresh (never an existing folder)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        run_dir = Path(root) / name / f"{stamp}-{secrets.token_hex(3)}"
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            continue


def run_experiment(
    config: ExperimentConfig,
    out: str | Path = "runs",
    quiet: bool = False,
    run_dir: str | Path | None = None,
    argv: list[str] | None = None,
) -> RunResult:
    """Run a validated config in a fresh folder (``run_dir`` if given, else under ``out/<name>/``).

    Raises:
        ControlkitError: a user error found while running; the run folder is removed.
        RunFailed: the experiment crashed; the folder keeps ``meta.json`` (status failed) and the traceback.
    """
    kind = get_kind(config.kind)
    if config.seed is None:
        config = config.model_copy(update={"seed": secrets.randbits(31)})
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
        ctx.log("completed")
    except ControlkitError:
        ctx.close()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        ctx.log(f"{status}:\n{traceback.format_exc()}")
        meta.update(status=status, end_time=_now(), error=f"{type(exc).__name__}: {exc}")
        atomic_write_json(run_dir / "meta.json", meta)
        ctx.close()
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise RunFailed(run_dir, f"{type(exc).__name__}: {exc}") from exc
    atomic_write_json(run_dir / "meta.json", meta)
    ctx.close()
    return RunResult(run_dir, summary, config)


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
