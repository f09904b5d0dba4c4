"""What a run folder records when a run ends badly, the modes of its files, and what reaches the console."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from controlkit.core.errors import ControlkitError
from controlkit.core.io import atomic_write_text
from controlkit.runner.cli import main
from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind, register_kind

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


class _LateConfig(ExperimentConfig):
    kind: str = "test_late_error"
    user_error: bool = True


def _late(config, ctx):
    """Writes data, then fails: with bad input found only now (ControlkitError) or a crash."""
    (ctx.path("data.npz")).write_bytes(b"expensive data")
    ctx.metric(step=0, loss=1.0)
    ctx.log("data collected")
    if config.user_error:
        raise ControlkitError("model.thing: found bad only after the data was collected.")
    raise RuntimeError("boom after the data")


register_kind(ExperimentKind("test_late_error", _LateConfig, _late))


def _only_run(out: Path) -> Path:
    (run,) = [p for p in out.glob("*/*") if p.is_dir()]
    return run


@pytest.mark.parametrize("user_error, code", [(True, 2), (False, 1)])
def test_an_error_mid_run_keeps_the_folder_and_records_it(user_error, code, tmp_path, capsys):
    path = tmp_path / "late.yaml"
    path.write_text(f"kind: test_late_error\nseed: 1\nuser_error: {str(user_error).lower()}\n")
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "-q"]) == code
    run = _only_run(out)
    assert (run / "data.npz").read_bytes() == b"expensive data"  # nothing made before the error is lost
    assert (run / "metrics.csv").is_file() and (run / "config.yaml").is_file()
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["end_time"] and meta["traceback"] == "traceback.txt"
    assert ("found bad only after" if user_error else "RuntimeError: boom after the data") in meta["error"]
    tb = (run / "traceback.txt").read_text()
    assert tb.startswith("Traceback") and ("ControlkitError" if user_error else "RuntimeError") in tb
    log = (run / "log.txt").read_text()
    assert "data collected" in log and "Traceback" in log
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(run) in err and "Traceback" not in err


def test_run_files_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        os.umask(0o002)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o664
        out = tmp_path / "runs"
        os.umask(0o022)
        assert main(["run", str(EXPERIMENTS / "rollout_pendulum.yaml"), "episodes=1", "max_steps=5", "--out",
                     str(out), "-q"]) == 0
    finally:
        os.umask(old)
    run = _only_run(out)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}
    assert {"config.yaml", "meta.json", "summary.json", "returns.png", "metrics.csv", "log.txt"} <= set(modes)
    assert all(mode == 0o644 for mode in modes.values()), modes


def test_messages_go_through_logging_and_bars_only_on_a_terminal(tmp_path):
    """Off a terminal (here: pipes) the console gets log lines only, never a progress bar; -q leaves warnings."""
    cmd = [sys.executable, "-m", "controlkit.runner.cli", "run", str(EXPERIMENTS / "rollout_pendulum.yaml"),
           "episodes=2", "max_steps=5", "--out", str(tmp_path / "runs")]
    normal = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert normal.returncode == 0, normal.stderr
    assert "(kind rollout, seed" in normal.stderr and "completed" in normal.stderr
    assert "\r" not in normal.stderr and "it/s" not in normal.stderr and "episodes:" not in normal.stderr
    quiet = subprocess.run([*cmd, "-q"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    for run in (tmp_path / "runs").glob("*/*"):
        assert "completed" in (run / "log.txt").read_text()  # the file log does not depend on the console's level


def test_summary_json_is_strict_json_with_non_finite_numbers_as_null(tmp_path):
    import json as _json

    import numpy as _np

    from controlkit.core.io import atomic_write_json

    path = atomic_write_json(tmp_path / "s.json", {"a": float("nan"), "b": [1.0, float("inf")],
                                                   "c": _np.array([_np.nan, 2.0]), "d": _np.float64("-inf")})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert _json.loads(text) == {"a": None, "b": [1.0, None], "c": [None, 2.0], "d": None}
