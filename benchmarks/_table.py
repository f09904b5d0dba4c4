"""Shared output for benchmark scripts: print an aligned table and write the JSON next to the others."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from controlkit.core.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def report(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    """Print ``rows`` as a table and write ``results/<name>.json`` with the machine it ran on."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": _cpus()}
    path = atomic_write_json(RESULTS / f"{name}.json", {"rows": rows, "machine": machine, **(extra or {})})
    print(f"\nwritten {path}")
    return path


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
