import gymnasium as gym
import numpy as np
import pytest

import controlkit
from controlkit import ConstantController, ControlkitError, Controller, RandomController, Status, StepInfo


def test_random_controller_is_seeded_and_in_bounds():
    space = gym.spaces.Box(low=np.array([-2.0, 0.0]), high=np.array([2.0, 1.0]), dtype=np.float32)
    a, b = RandomController(space), RandomController(space)
    a.reset(seed=7)
    b.reset(seed=7)
    seq_a = np.array([a.act(None) for _ in range(20)])
    seq_b = np.array([b.act(None) for _ in range(20)])
    np.testing.assert_array_equal(seq_a, seq_b)
    assert seq_a.shape == (20, 2) and seq_a.dtype == np.float32
    assert np.all(seq_a >= space.low) and np.all(seq_a <= space.high)
    b.reset(seed=8)
    assert not np.array_equal(seq_a[0], b.act(None))


def test_constant_controller_clips_and_reports_step_facts():
    space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    ctrl = ConstantController(space, value=[0.5, 3.0, -9.0])
    action = ctrl.act(np.zeros(4))
    np.testing.assert_array_equal(action, [0.5, 1.0, -1.0])
    step = ctrl.last_step
    assert isinstance(step, StepInfo)
    assert step.status is Status.OK and not step.used_fallback and step.fallback is None
    assert step.compute_time_s > 0.0


def test_zero_controller_from_registry_on_a_real_env():
    env = gym.make("Pendulum-v1")
    ctrl = controlkit.make_controller("zero", env)
    obs, _ = env.reset(seed=0)
    action = ctrl.act(obs)
    assert env.action_space.contains(action) and np.all(action == 0)
    with pytest.raises(ControlkitError, match="controller: unknown value 'nope'; valid choices: .*random"):
        controlkit.make_controller("nope", env)
    with pytest.raises(ControlkitError, match="controller_kwargs"):
        controlkit.make_controller("zero", env, bogus=1)


def test_a_subclass_only_needs_act_and_gets_timing():
    class Half(Controller):
        def _act(self, obs):
            return np.asarray(obs) / 2, StepInfo(status=Status.SUBOPTIMAL, fallback="shifted_plan", message="x")

    c = Half()
    np.testing.assert_allclose(c.act([2.0, 4.0]), [1.0, 2.0])
    assert c.last_step.status is Status.SUBOPTIMAL and c.last_step.used_fallback
    c.reset(seed=1)
    assert c.last_step == StepInfo()
    with pytest.raises(TypeError):
        Controller()  # abstract
