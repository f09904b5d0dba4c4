"""Test-only experiment kinds: ``test_pool_sleep`` (a run whose pool workers sleep until stopped) and ``test_flaky``
(fails while a flag file exists). Imported by the tests, and by subprocesses through PYTHONPATH."""

import os
import time
from pathlib import Path

from controlkit.core.executors import map_tasks
from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind, register_kind


class PoolSleepConfig(ExperimentConfig):
    kind: str = "test_pool_sleep"
    tasks: int = 6


def sleep_task(folder: str, i: int) -> int:
    """Announce this worker (its pid in a file), then sleep far longer than any test waits."""
    (Path(folder) / f"worker-{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(600)
    return i


def _pool_sleep(config, ctx):
    ctx.metric(stage="before pool", value=1)
    map_tasks(sleep_task, [(str(ctx.dir), i) for i in range(config.tasks)], workers=2, quiet=True)
    return {}


class FlakyConfig(ExperimentConfig):
    kind: str = "test_flaky"
    x: int = 0
    fail_at: int = -1
    flag: str = ""
    counter: str = ""


def _flaky(config, ctx):
    with open(config.counter, "a") as fh:
        fh.write(f"{config.x}\n")
    if config.x == config.fail_at and Path(config.flag).exists():
        raise RuntimeError(f"point x={config.x} fails while {config.flag} exists")
    return {"value": config.x * 10}


register_kind(ExperimentKind("test_pool_sleep", PoolSleepConfig, _pool_sleep))
register_kind(ExperimentKind("test_flaky", FlakyConfig, _flaky))
