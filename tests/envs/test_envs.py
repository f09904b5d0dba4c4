"""Every registered controlkit env passes gymnasium's checker; the registry and `controlkit envs` agree."""

import gymnasium as gym
import pytest
from controlkit.envs import env_ids
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import check_env

import controlkit  # noqa: F401  registers the envs
from controlkit.runner.cli import main


@pytest.mark.parametrize("env_id", env_ids())
def test_check_env(env_id):
    modes = getattr(load_env_creator(gym.spec(env_id).entry_point), "metadata", {}).get("render_modes", [])
    env = gym.make(env_id, render_mode="rgb_array" if "rgb_array" in modes else None)
    try:
        check_env(env.unwrapped, skip_render_check=False)
    finally:
        env.close()


def test_ids_are_registered_under_the_namespace_only():
    for env_id in env_ids():
        assert env_id.startswith("controlkit/") and env_id in gym.registry
        bare = env_id.split("/", 1)[1]
        assert bare not in gym.registry  # the bare id stays free for other packages
        with pytest.raises(gym.error.Error):  # and gym.make never hands out ours under it
            gym.make(bare)


def test_module_colon_form_makes_the_env():
    for env_id in env_ids():
        env = gym.make(f"controlkit.envs:{env_id}")
        assert env.spec.id == env_id
        env.close()


def test_cli_envs_lists_every_id(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in env_ids():
        assert env_id in out


@pytest.mark.parametrize("env_id", env_ids())
def test_every_env_refuses_a_nan_action(env_id):
    from controlkit.core.errors import ControlkitError

    env = gym.make(env_id)
    try:
        env.reset(seed=0)
        action = env.action_space.sample()
        action[...] = float("nan")
        with pytest.raises(ControlkitError, match="action"):
            env.step(action)
    finally:
        env.close()
