"""The examples in examples/ run in their short form."""

import ast
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "MUJOCO_GL": "egl"}, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ncap_swimmer_loop_short_form():
    out = _run("ncap_swimmer_loop.py", "--steps", "60")
    assert "60 steps at 33.3333 Hz" in out and "fallbacks 0" in out
    reward = float(out.split("swim reward over the 60 steps: ")[1].split()[0])
    assert reward > 10  # the untrained circuit swims forward from the first strokes


def test_mip_mpc_push_loop_short_forms():
    out = _run("mip_mpc_push_loop.py", "--steps", "5")
    assert "5 steps at 10 Hz" in out and "m from its goal" in out
    statuses = out.split("statuses ")[1].splitlines()[0]
    assert "suboptimal" in statuses or "ok" in statuses  # HiGHS returned plans
    out = _run("mip_mpc_push_loop.py", "--async-100hz", "--seconds", "1.5")
    assert "150 steps at 100 Hz" in out
    # How many plans came back within 1.5 s depends on the machine; what the loop did with them does not:
    # every step is counted, and each one without a plan step is the declared safe action.
    plans = int(out.split("plans computed: ")[1].split(";")[0])
    statuses = ast.literal_eval(out.split("statuses ")[1].splitlines()[0])
    fallbacks = int(out.split("fallbacks ")[1].split()[0])
    assert sum(statuses.values()) == 150 and set(statuses) <= {"ok", "suboptimal", "timeout"}
    assert fallbacks == 0 or f"fallbacks {fallbacks} {{'safe_action': {fallbacks}}}" in out
    if plans == 0:
        assert fallbacks == 150
