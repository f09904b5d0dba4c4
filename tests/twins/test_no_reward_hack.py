"""No reward hack: on every registered twin env, run at its documented experiment's task, trivial policies (no
control, the maximum at every decision, the maximum once and then nothing: culling every animal, a single bolus)
earn a worse return than the documented baselines (the bang-bang rule and the best one-switch schedule of the
committed ``twin_control`` result, re-run here on the same seeds, and every documented method's cost).

An env with a reward hack, e.g. an episode that ends when the population dies out, would let one of them win; a
new twin env fails ``test_every_registered_twin_env_is_checked`` until it is added here with its documented task.
"""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from controlkit.envs.twin_envs import TwinEnv, control_to_action
from controlkit.twins.baselines import BangBangController
from controlkit.twins.registry import make_task

import controlkit  # noqa: F401  registers the envs
from controlkit.runner.kinds.twin_control import build_task
from controlkit.runner.registry import validate_config

ROOT = Path(__file__).resolve().parents[2]
# Documented baselines: each method's mean cost in the committed result (benchmarks/results/twin_*.json, from
# `controlkit run experiments/twin_*.yaml`), the trivial "none" aside, and the best one-switch schedule found there
# (first decision, then decision, switch after this many decisions).
PP_DOC = {"costs": {"bang_bang": 0.6505, "constant": 0.7959, "few_switch": 0.9434, "mip_mpc": 0.3212, "neural": 0.4095,
                    "open_loop": 0.9296, "ppo": 1.0974},
          "few_switch": ([10.0, 10.0], [20.0, 0.0], 5)}
IMMUNE_DOC = {"costs": {"bang_bang": 0.06762, "constant": 0.08977, "few_switch": 0.05633, "mip_mpc": 0.06075,
                        "neural": 0.06175, "open_loop": 0.06078, "ppo": 0.09564},
              "few_switch": ([1.0, 0.0], [0.0, 0.0], 4)}
METABOLIC_DOC = {"costs": {"bang_bang": -4.6233, "constant": -2.9783, "few_switch": -4.79, "neural": -4.7931,
                           "open_loop": -4.723, "ppo": -2.3906},
                 "few_switch": ([300.0], [0.0], 6)}
# env id -> (experiment whose task the env is run at, twin override or None, documented baselines or None)
DOCUMENTED = {
    "controlkit/PredatorPrey-v0": ("twin_predator_prey", None, PP_DOC),
    "controlkit/ImmuneTwin-v0": ("twin_immune", None, IMMUNE_DOC),
    "controlkit/Metabolic-v0": ("twin_metabolic", None, METABOLIC_DOC),
    # the pharmacokinetic immune twin at the immune experiment's task: no committed control result of its own, so
    # its references are the bang-bang rule and the immune twin's documented schedule, both re-run on it
    "controlkit/ImmunePK-v0": ("twin_immune", "immune_pk", {"costs": {}, "few_switch": IMMUNE_DOC["few_switch"]}),
}
SEEDS = (7_000_001, 7_000_002)  # outside every experiment's seed blocks


def _twin_env_ids() -> set[str]:
    """The twin envs controlkit registers (not those a test or a user registers from YAML)."""
    from controlkit.envs import env_ids

    return {k for k in env_ids() if str(gym.registry[k].entry_point).endswith("twin_envs:TwinEnv")}


def test_every_registered_twin_env_is_checked():
    assert _twin_env_ids() == set(DOCUMENTED)


def _documented_task(experiment: str, twin: str | None):
    raw = yaml.safe_load((ROOT / "experiments" / f"{experiment}.yaml").read_text())
    raw["methods"] = ["none"]
    task = build_task(validate_config(raw))
    if twin is None:
        return task
    return make_task(twin, raw.get("params"), raw["objective"].get("weights"), raw["objective"].get("settings"),
                     burn_in=task.burn_in, interval=task.interval, decisions=task.decisions, apply=task.apply)


def _cost(env: TwinEnv, seed: int, policy) -> float:
    """Minus the env's return (the twin_control cost) of ``policy(k, obs)`` in action space."""
    obs, _ = env.reset(seed=seed)
    total, k, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(k, obs))
        total, k, done = total + reward, k + 1, terminated or truncated
    return -total


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(DOCUMENTED))
def test_trivial_policies_do_not_beat_the_documented_baselines(env_id):
    import torch

    torch.set_num_threads(1)
    experiment, twin, doc = DOCUMENTED[env_id]
    task = _documented_task(experiment, twin)
    env = gym.make(env_id, task=task).unwrapped
    assert env.task is task
    n = env.action_space.shape
    trivial = {"zero": lambda k, o: -np.ones(n, dtype=np.float32),
               "max": lambda k, o: np.ones(n, dtype=np.float32),
               "max_once": lambda k, o: np.ones(n, dtype=np.float32) if k == 0 else -np.ones(n, dtype=np.float32)}
    bang_bang = BangBangController(task)
    baselines = {"bang_bang": lambda k, o: control_to_action(task, bang_bang.act(o[:-1] * env.observation_scale))}
    documented = {}
    if doc is not None:
        documented = doc["costs"]
        first, then, switch = doc["few_switch"]
        sched = np.vstack([np.tile(first, (switch, 1)), np.tile(then, (task.decisions - switch, 1))])
        baselines["few_switch"] = lambda k, o: control_to_action(task, sched[k])
    costs = {name: np.mean([_cost(env, s, p) for s in SEEDS]) for name, p in {**trivial, **baselines}.items()}
    reference = min([costs[b] for b in baselines] + list(documented.values()))
    for name in trivial:
        assert costs[name] > reference, (name, costs, documented)
