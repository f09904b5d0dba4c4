"""SIGTERM/SIGINT on runs and sweeps (records, stopped workers, sweep.csv), failed sweep points, resuming a sweep.

The signal tests wait for files the run writes (polling), never for fixed times, so they do not depend on speed.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slow_kind  # noqa: F401  (registers test_pool_sleep and test_flaky)

from controlkit.runner.cli import main

HERE = Path(__file__).resolve().parent
EXPERIMENTS = HERE.parents[1] / "experiments"
WAIT_S = 900  # a hang guard only: the tests finish as soon as the files appear (240 s was hit at load 25)


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended ({proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _no_failed_point(root: Path) -> bool:
    """True while no sweep point under ``root`` is recorded as failed; a failed point fails the test at once with
    its error, instead of leaving the wait for running points to its hang guard (the others keep running)."""
    for table in root.glob("runs/*/sweep-*/sweep.csv"):
        with open(table) as fh:
            failed = [r for r in csv.DictReader(fh) if r.get("status") == "failed"]
        if failed:
            pytest.fail(f"sweep point {failed[0]['point']} failed: {failed[0].get('error')}")
    return True


def _session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the test starts each command in a session of its own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    code = "import sys, slow_kind; from controlkit.runner.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process sessions from /proc")
def test_sigterm_records_interrupted_and_stops_the_pool_workers(tmp_path):
    (tmp_path / "sleep.yaml").write_text("kind: test_pool_sleep\nseed: 0\n")
    proc = _start(["run", "sleep.yaml", "--out", "runs", "-q"], tmp_path)
    try:
        workers = _wait_for(lambda: len(list(tmp_path.glob("runs/sleep/*/worker-*.pid"))) >= 2 and
                            list(tmp_path.glob("runs/sleep/*/worker-*.pid")), "two pool workers", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "SIGTERM" in err
    run = workers[0].parent
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["signal"] == "SIGTERM" and meta["end_time"]
    assert (run / "metrics.csv").is_file() and "KeyboardInterrupt" not in meta["error"]
    # no worker outlives the run: nothing of the command's session is left
    _wait_for(lambda: not _session_processes(proc.pid), "the pool workers to exit")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process sessions from /proc")
def test_ctrl_c_on_a_sweep_stops_queued_points_and_writes_the_table(tmp_path):
    # long rollouts: points 0 and 1 run in two pool workers, 2 and 3 wait in the queue
    args = ["sweep", str(EXPERIMENTS / "rollout_pendulum.yaml"), "seed=0,1,2,3", "episodes=100000",
            "max_steps=200", "--workers", "2", "--out", "runs", "-q"]
    proc = _start(args, tmp_path)
    try:
        _wait_for(lambda: _no_failed_point(tmp_path) and
                  len(list(tmp_path.glob("runs/*/sweep-*/00[01]/meta.json"))) == 2, "two running points", proc)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the parent (the workers ignore it)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and "--resume" in err
    (sweep_dir,) = tmp_path.glob("runs/*/sweep-*")
    with open(sweep_dir / "sweep.csv") as fh:
        rows = {r["point"]: r for r in csv.DictReader(fh)}
    assert [rows[p]["status"] for p in "0123"] == ["interrupted", "interrupted", "not run", "not run"]
    for point in ("000", "001"):
        assert json.loads((sweep_dir / point / "meta.json").read_text())["status"] == "interrupted"
    assert not (sweep_dir / "002").exists() and not (sweep_dir / "003").exists()
    _wait_for(lambda: not _session_processes(proc.pid), "the sweep's workers to exit")


def test_a_failed_point_fails_the_sweep_by_name_and_resume_reruns_only_it(tmp_path, capsys):
    flag, counter = tmp_path / "broken", tmp_path / "calls.txt"
    flag.write_text("")
    path = tmp_path / "flaky.yaml"
    path.write_text(f"kind: test_flaky\nseed: 0\nfail_at: 1\nflag: {flag}\ncounter: {counter}\n")
    out = tmp_path / "runs"
    args = ["sweep", str(path), "x=0,1,2", "--workers", "1", "--out", str(out), "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 of 3 sweep points failed" in err and "001 (x=1)" in err and "RuntimeError" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    (sweep_dir,) = out.glob("flaky/sweep-*")
    with open(sweep_dir / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["completed", "failed", "completed"]
    assert rows[0]["value"] == "0" and rows[2]["value"] == "20" and "fails while" in rows[1]["error"]

    # the same command with --resume: only the failed point runs again (the cause is gone now)
    flag.unlink()
    assert main([*args, "--resume", str(sweep_dir)]) == 0
    assert counter.read_text().split() == ["0", "1", "2", "1"]
    with open(sweep_dir / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["completed"] * 3 and rows[1]["value"] == "10"
    assert json.loads((sweep_dir / "001.failed" / "meta.json").read_text())["status"] == "failed"  # kept

    # resuming a finished sweep runs nothing; other points than the folder's are refused
    assert main(["sweep", "--resume", str(sweep_dir), "-q"]) == 0
    assert counter.read_text().split() == ["0", "1", "2", "1"]
    assert main([*args[:2], "x=0,1", "--resume", str(sweep_dir), "-q"]) == 2
    assert "other points" in capsys.readouterr().err


def test_sweep_table_is_written_as_points_finish(tmp_path, monkeypatch):
    """sweep.csv exists (all points listed) before the sweep ends: each finished point rewrites it."""
    from controlkit.runner import sweep as sweep_module

    seen = []
    real = sweep_module._write_table

    def spy(sweep_dir, points, names, results):
        real(sweep_dir, points, names, results)
        with open(sweep_dir / "sweep.csv") as fh:
            seen.append([r["status"] for r in csv.DictReader(fh)])

    counter = tmp_path / "calls.txt"
    path = tmp_path / "ok.yaml"
    path.write_text(f"kind: test_flaky\nseed: 0\ncounter: {counter}\n")
    monkeypatch.setattr(sweep_module, "_write_table", spy)
    sweep_module.run_sweep(path, ["x=0,1"], out=tmp_path / "runs", workers=1, quiet=True)
    assert seen[0] == ["not run", "not run"]
    assert ["completed", "not run"] in seen and seen[-1] == ["completed", "completed"]
