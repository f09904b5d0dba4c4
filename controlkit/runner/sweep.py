"""Sweeps: the product of override values, one run folder per point, and a sweep.csv joining them.

A sweep folder holds ``sweep.json`` (the file, the overrides and every point's resolved config), one run folder
per point (``000``, ``001``, ...) and ``sweep.csv``, rewritten each time a point finishes, so an interrupted or
crashed sweep still has its table. ``run_sweep(..., resume=DIR)`` (``controlkit sweep --resume DIR``) runs again
only the points of ``DIR`` that did not complete.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from controlkit.core.errors import ControlkitError
from controlkit.core.executors import map_tasks
from controlkit.core.io import atomic_write_json, atomic_write_text
from controlkit.runner.config import load_yaml
from controlkit.runner.registry import validate_config
from controlkit.runner.run import RunFailed, new_run_dir, run_experiment

logger = logging.getLogger(__name__)
MANIFEST = "sweep.json"
MANIFEST_VERSION = 1


class SweepFailed(Exception):
    """Some points of a sweep failed (the others' results and sweep.csv are written).

    Attributes:
        sweep_dir: The sweep folder.
        failed: ``(point folder name, its overrides, the error)`` of each failed point.
    """

    def __init__(self, sweep_dir: Path, failed: list[tuple[str, list[str], str]], total: int) -> None:
        names = "; ".join(f"{name} ({' '.join(point) or 'no overrides'}): {error}" for name, point, error in failed)
        super().__init__(f"{len(failed)} of {total} sweep points failed: {names}")
        self.sweep_dir = sweep_dir
        self.failed = failed


def parse_sweep(overrides: Sequence[str]) -> list[list[str]]:
    """``["a=1,2", "seed=0,1"]`` -> every combination as a list of plain ``key=value`` overrides."""
    axes: list[list[str]] = []
    keys: list[str] = []
    for item in overrides:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ControlkitError(f"sweep override {item!r}: expected key=v1,v2,...")
        if key in keys:
            raise ControlkitError(f"{key}: swept twice on the command line; give its values once (key=v1,v2).")
        keys.append(key)
        # A bracketed value is one list, not several points.
        parts = [values] if values.startswith("[") else values.split(",")
        if any(p == "" for p in parts):
            raise ControlkitError(f"sweep override {item!r}: empty value in the list.")
        axes.append([f"{key}={p}" for p in parts])
    return [list(point) for point in itertools.product(*axes)] if axes else [[]]


def _run_point(data: dict[str, Any], run_dir: str) -> dict[str, Any]:
    try:
        result = run_experiment(validate_config(data), run_dir=run_dir, quiet=True, argv=["sweep-point"])
        return {"status": "completed", "summary": result.summary}
    except (RunFailed, ControlkitError) as exc:  # one failed point must not lose the others' results
        return {"status": "failed", "error": str(exc), "summary": {}}
    except Exception as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "summary": {}}


def _validated_points(path: str | Path, overrides: Sequence[str]) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Every point's overrides and resolved config, all validated before anything runs."""
    points = parse_sweep(overrides)
    datas = []
    for point in points:
        config = validate_config(load_yaml(path, point))
        if config.seed is None:
            raise ControlkitError("seed: a sweep needs a fixed seed (in the file, or swept: seed=0,1,2).")
        datas.append(config.model_dump(mode="json"))
    return points, datas


def run_sweep(
    path: str | Path | None,
    overrides: Sequence[str],
    out: str | Path = "runs",
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    quiet: bool = False,
    resume: str | Path | None = None,
) -> Path:
    """Validate every point first (no folder on a bad input), run them, write ``sweep.csv``; return its folder.

    Args:
        path: The experiment YAML (may be None with ``resume``: the sweep folder records it).
        overrides: ``key=v1,v2`` axes and plain ``key=value`` overrides.
        out: Root folder; the sweep goes to ``out/<name>/sweep-<stamp>/``.
        executor, workers, ray_address: Where points run (see :func:`controlkit.core.executors.map_tasks`).
        quiet: No progress bar.
        resume: An earlier sweep folder: points that completed there are kept, the others run again (their old
            folders are kept, renamed ``NNN.<status>``).

    Raises:
        ControlkitError: a bad point, file or resume folder (nothing runs).
        SweepFailed: some points failed; sweep.csv is written.
        KeyboardInterrupt: SIGINT/SIGTERM; queued points are cancelled, running ones stopped, sweep.csv written.
    """
    if resume is not None:
        sweep_dir, points, datas = _resume(Path(resume), path, overrides)
    else:
        if path is None:
            raise ControlkitError("file: give the experiment YAML (or --resume DIR of an earlier sweep).")
        points, datas = _validated_points(path, overrides)
        name = datas[0].get("name") or Path(path).stem
        sweep_dir = new_run_dir(out, name)
        sweep_dir = sweep_dir.rename(sweep_dir.with_name("sweep-" + sweep_dir.name))
        atomic_write_json(sweep_dir / MANIFEST, {"version": MANIFEST_VERSION, "file": str(path),
                                                 "overrides": list(overrides), "points": points, "configs": datas})
    names = [f"{i:03d}" for i in range(len(points))]
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for i, name in enumerate(names):
        done = _completed(sweep_dir / name)
        if done is not None:
            results[i] = done
        else:
            _move_aside(sweep_dir / name)
            todo.append(i)
    if resume is not None:
        logger.info("resuming %s: %d of %d points completed, running %d", sweep_dir, len(results), len(points),
                    len(todo))

    def finished(k: int, result: dict[str, Any]) -> None:
        results[todo[k]] = result
        _write_table(sweep_dir, points, names, results)

    _write_table(sweep_dir, points, names, results)
    try:
        map_tasks(_run_point, [(datas[i], str(sweep_dir / names[i])) for i in todo], executor=executor,
                  workers=workers, ray_address=ray_address, desc="sweep", quiet=quiet, on_result=finished)
    except KeyboardInterrupt:
        logger.warning("sweep interrupted: %d of %d points finished (table: %s); continue with: controlkit sweep "
                       "--resume %s", len(results), len(points), sweep_dir / "sweep.csv", sweep_dir)
        raise
    finally:
        _write_table(sweep_dir, points, names, results)
    failed = [(names[i], points[i], r["error"]) for i, r in sorted(results.items()) if r["status"] != "completed"]
    if failed:
        raise SweepFailed(sweep_dir, failed, len(points))
    return sweep_dir


def _resume(sweep_dir: Path, path, overrides) -> tuple[Path, list[list[str]], list[dict[str, Any]]]:
    manifest_file = sweep_dir / MANIFEST
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        points, datas = manifest["points"], manifest["configs"]
    except FileNotFoundError:
        raise ControlkitError(f"--resume: {str(sweep_dir)!r} is not a sweep folder (no {MANIFEST}).") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ControlkitError(f"--resume: {str(manifest_file)!r} is unreadable ({exc}).") from None
    if path is not None:
        again = _validated_points(path, overrides)
        if again != (points, datas):
            raise ControlkitError(f"--resume: the file and overrides given now define other points than the sweep "
                                  f"in {str(sweep_dir)!r}; give the same ones, or only --resume DIR.")
    for data in datas:
        validate_config(data)  # the code may have changed since: fail before running anything
    return sweep_dir, points, datas


def _completed(run_dir: Path) -> dict[str, Any] | None:
    """The result of a point that completed in an earlier attempt, else None."""
    try:
        meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
        if meta.get("status") == "completed":
            return {"status": "completed", "summary": json.loads((run_dir / "summary.json").read_text("utf-8"))}
    except (OSError, ValueError):
        pass
    return None


def _move_aside(run_dir: Path) -> None:
    """Keep an unfinished attempt's folder under another name, so the point runs again in a fresh one."""
    if not run_dir.exists():
        return
    status = _status(run_dir) or "incomplete"
    for k in itertools.count(1):
        target = run_dir.with_name(f"{run_dir.name}.{status}" + (f"-{k}" if k > 1 else ""))
        if not target.exists():
            run_dir.rename(target)
            return


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "meta.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError):
        return None


def _write_table(sweep_dir: Path, points, names, results: dict[int, dict[str, Any]]) -> None:
    """sweep.csv: one row per point; a point without a result says ``running``, ``interrupted`` or ``not run``."""
    rows = []
    for i, (point, name) in enumerate(zip(points, names)):
        res = results.get(i)
        status = res["status"] if res else (_status(sweep_dir / name) or "not run")
        row: dict[str, Any] = {"point": i, "run_dir": str(sweep_dir / name), "status": status}
        row.update({k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in point)})
        if res:
            row.update(_flatten(res["summary"]))
            if res["status"] != "completed":
                row["error"] = res["error"]
        rows.append(row)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "sweep.csv", buf.getvalue())


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        elif not isinstance(v, list):
            flat[key] = v
    return flat
