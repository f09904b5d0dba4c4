"""The experiment runner end to end through the CLI: run folders, overrides, reproducibility, bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controlkit.runner.cli import main
from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind, register_kind

ROLLOUT = """\
kind: rollout
seed: 3
env: Pendulum-v1
controller: random
episodes: 2
max_steps: 20
"""


@pytest.fixture
def exp(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(ROLLOUT)
    return path


def _only_run(out: Path) -> Path:
    runs = [p for p in out.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _csv(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _no_timings(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


def test_run_folder_contents(exp, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 0
    run = _only_run(out)
    assert run.parent.name == "exp"  # experiment name defaults to the file stem
    assert {"config.yaml", "meta.json", "metrics.csv", "summary.json", "log.txt", "returns.png"} <= {
        p.name for p in run.iterdir()
    }
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["seed"] == 3 and config["env_kwargs"] == {} and config["name"] == "exp"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["end_time"] and meta["seed"] == 3
    assert meta["versions"]["gymnasium"] and meta["python"].startswith("3.")
    assert set(meta["git"]) == {"commit", "dirty"}
    rows = _csv(run / "metrics.csv")
    assert [int(r["episode"]) for r in rows] == [0, 1] and all(int(r["length"]) == 20 for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    returns = [float(r["episode_return"]) for r in rows]
    assert summary["return_mean"] == pytest.approx(sum(returns) / 2)
    assert "wall_s" in summary["timings"]
    assert (run / "returns.png").read_bytes()[:4] == b"\x89PNG"
    assert str(run) in capsys.readouterr().out


def test_same_seed_same_numbers_and_fresh_folders(exp, tmp_path):
    out = tmp_path / "runs"
    for _ in range(2):
        assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 0
    a, b = sorted(p for p in out.glob("*/*"))
    assert a != b
    assert _no_timings(_csv(a / "metrics.csv")) == _no_timings(_csv(b / "metrics.csv"))
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    sa.pop("timings"), sb.pop("timings")
    assert sa == sb
    assert main(["run", str(exp), "seed=4", "--out", str(out), "--quiet"]) == 0
    c = max(out.glob("*/*"), key=lambda p: p.stat().st_mtime)
    assert json.loads((c / "summary.json").read_text())["return_mean"] != sa["return_mean"]


def test_overrides_reach_the_resolved_config(exp, tmp_path):
    out = tmp_path / "runs"
    args = ["run", str(exp), "episodes=3", "controller=zero", "env_kwargs.g=9.0", "name=custom", "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    run = _only_run(out)
    assert run.parent.name == "custom"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["episodes"] == 3 and config["controller"] == "zero" and config["env_kwargs"] == {"g": 9.0}
    assert len(_csv(run / "metrics.csv")) == 3


def test_seed_is_drawn_and_recorded_when_omitted(exp, tmp_path):
    exp.write_text(ROLLOUT.replace("seed: 3\n", ""))
    out = tmp_path / "runs"
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 0
    seed = yaml.safe_load((_only_run(out) / "config.yaml").read_text())["seed"]
    assert isinstance(seed, int) and seed >= 0


BAD_INPUTS = [
    # (yaml text or None for a missing file, overrides, words the message must contain)
    (ROLLOUT + "bogus: 1\n", [], ["bogus", "unknown key", "episodes", "env_kwargs"]),
    (ROLLOUT, ["episodes=many"], ["episodes", "integer"]),
    (ROLLOUT, ["episodes=0"], ["episodes", "greater than 0"]),
    (ROLLOUT.replace("env: Pendulum-v1\n", ""), [], ["env", "missing required field"]),
    (ROLLOUT.replace("kind: rollout", "kind: nope"), [], ["kind", "'nope'", "valid choices", "rollout"]),
    (ROLLOUT.replace("kind: rollout\n", ""), [], ["kind", "missing", "rollout"]),
    (ROLLOUT.replace("Pendulum-v1", "NoSuchEnv-v9"), [], ["env", "NoSuchEnv-v9", "unknown gymnasium env id"]),
    (ROLLOUT, ["controller=magic"], ["controller", "magic", "valid choices", "random", "zero"]),
    (ROLLOUT, ["env_kwargs.wind=3"], ["env_kwargs.wind", "Pendulum-v1", "valid", "g"]),
    (ROLLOUT, ["episodes"], ["override", "dotted.key=value"]),
    ("kind: rollout\nenv: [unclosed\n", [], ["malformed YAML"]),
    ("- a\n- b\n", [], ["top level must be a mapping"]),
    (None, [], ["no such file"]),
]


@pytest.mark.parametrize("text,overrides,words", BAD_INPUTS)
def test_bad_input_exits_2_with_a_named_field_and_no_run_folder(text, overrides, words, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "runs"
    assert main(["run", str(path), *overrides, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("controlkit: error: ") and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists() or not any(out.rglob("*"))


def test_cli_subprocess_exit_code_and_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(ROLLOUT + "bogus: 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "controlkit.runner.cli", "run", str(path), "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "bogus" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


class _CrashConfig(ExperimentConfig):
    kind: str = "test_crash"


def _crash(config, ctx):
    ctx.metric(step=0, value=1.0)
    raise RuntimeError("boom in the experiment")


def test_a_crashing_run_is_marked_failed_and_exits_1(tmp_path, capsys):
    register_kind(ExperimentKind("test_crash", _CrashConfig, _crash))
    path = tmp_path / "crash.yaml"
    path.write_text("kind: test_crash\nseed: 1\n")
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 1
    run = _only_run(out)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed" and "boom in the experiment" in meta["error"]
    log = (run / "log.txt").read_text()
    assert "Traceback" in log and "RuntimeError: boom in the experiment" in log
    assert not (run / "summary.json").exists()
    assert "run failed" in capsys.readouterr().err


def test_cli_kinds_lists_rollout(capsys):
    assert main(["kinds"]) == 0
    assert "rollout" in capsys.readouterr().out
