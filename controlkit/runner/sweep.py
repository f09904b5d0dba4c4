"""Sweeps: the product of override values, one run folder per point, and a sweep.csv joining them."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from controlkit.core.errors import ControlkitError
from controlkit.core.executors import map_tasks
from controlkit.core.io import atomic_write_text
from controlkit.runner.config import load_yaml
from controlkit.runner.registry import validate_config
from controlkit.runner.run import new_run_dir, run_experiment


def parse_sweep(overrides: Sequence[str]) -> list[list[str]]:
    """``["a=1,2", "seed=0,1"]`` -> every combination as a list of plain ``key=value`` overrides."""
    axes: list[list[str]] = []
    for item in overrides:
        key, sep, values = item.partition("=")
        if not sep or not key:
            raise ControlkitError(f"sweep override {item!r}: expected key=v1,v2,...")
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
    except Exception as exc:  # one failed point must not lose the others' results
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "summary": {}}


def run_sweep(
    path: str | Path,
    overrides: Sequence[str],
    out: str | Path = "runs",
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    quiet: bool = False,
) -> Path:
    """Validate every point first (no folder on a bad input), run them, write ``sweep.csv``; return its folder."""
    points = parse_sweep(overrides)
    datas = []
    for point in points:
        data = load_yaml(path, point)
        config = validate_config(data)
        if config.seed is None:
            raise ControlkitError("seed: a sweep needs a fixed seed (in the file, or swept: seed=0,1,2).")
        datas.append(config.model_dump(mode="json"))
    name = datas[0].get("name") or Path(path).stem
    sweep_dir = new_run_dir(out, name)
    sweep_dir = sweep_dir.rename(sweep_dir.with_name("sweep-" + sweep_dir.name))
    run_dirs = [str(sweep_dir / f"{i:03d}") for i in range(len(points))]
    results = map_tasks(
        _run_point, list(zip(datas, run_dirs)), executor=executor, workers=workers,
        ray_address=ray_address, desc="sweep", quiet=quiet,
    )
    rows = []
    for i, (point, res, rd) in enumerate(zip(points, results, run_dirs)):
        row: dict[str, Any] = {"point": i, "run_dir": rd, "status": res["status"]}
        row.update({k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in point)})
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
    return sweep_dir


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        elif not isinstance(v, list):
            flat[key] = v
    return flat
