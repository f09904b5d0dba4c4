"""NCAP: the C. elegans locomotion circuit as a policy for N-link swimmers (Bhattasali, Zador & Engel, 2022).

Per joint ``i`` (0 = head) a dorsal and a ventral B-neuron read the joint in front (proprioception, which carries
the bend from head to tail); the head's B-neurons are driven instead by a square-wave oscillator. Muscles take
ipsilateral excitation and contralateral inhibition from the B-neurons; the torque is dorsal minus ventral
muscle activity. With weight sharing the whole circuit has 4 parameters for any body length.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from controlkit.envs.swimmer import EPISODE_STEPS, SwimmerLayout
from controlkit.policies._circuit import NAVIGATION, circuit, oscillator_drive, target_commands
from torch import nn

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError, choices_error

# Sign of each weight group: +1 excitatory, -1 inhibitory.
_SIGN = {"prop": 1.0, "osc": 1.0, "ipsi": 1.0, "contra": -1.0, "speed": -1.0, "turn": 1.0}


class NCAPPolicy(nn.Module, Controller):
    """The NCAP swimmer circuit: a torch module (batched, differentiable) and a :class:`Controller`.

    Args:
        n_joints: Actuated joints (``n_links - 1``).
        oscillator_period: Head oscillator period in control steps (60 = 1.8 s); must be > 0.
        proprioception: B-neurons read the joint in front (off: only the head moves actively).
        oscillator: Square-wave drive of the head B-neurons.
        weight_sharing: One weight per connection type for all segments (4 parameters); off: one per segment
            and side, ``2(n-1) + 2 + 4n`` parameters, and the policy is tied to ``n_joints``.
        sign_constraints: Clamp excitatory weights to >= 0 and inhibitory ones to <= 0 in the forward pass.
        constant_init: Excitatory weights start at +1, inhibitory at -1; off: magnitudes drawn from U(0, 1)
            (U(-1, 1) without sign constraints) with ``seed``.
        navigation: ``None`` (swim), ``"hardcoded"`` or ``"learned"`` target controller feeding speed and turn
            inputs to the circuit (the observation must then hold ``to_target``).
        n_turn_joints: How many joints from the head receive the turn input.
        time_obs: The observation's last entry is the episode fraction ``step / 1000`` (env ``time_obs=True``);
            otherwise the controller counts steps itself from ``reset``.
        seed: Seed for random initialisation.
    """

    def __init__(
        self,
        n_joints: int,
        oscillator_period: int = 60,
        proprioception: bool = True,
        oscillator: bool = True,
        weight_sharing: bool = True,
        sign_constraints: bool = True,
        constant_init: bool = True,
        navigation: str | None = None,
        n_turn_joints: int = 1,
        time_obs: bool = False,
        seed: int = 0,
    ) -> None:
        nn.Module.__init__(self)
        if isinstance(n_joints, bool) or not isinstance(n_joints, (int, np.integer)) or n_joints < 2:
            raise ControlkitError(f"n_joints: must be an integer >= 2 (n_links >= 3), got {n_joints!r}.")
        if not isinstance(oscillator_period, (int, np.integer)) or oscillator_period <= 0:
            raise ControlkitError(f"oscillator_period: must be a positive integer (control steps), "
                                  f"got {oscillator_period!r}.")
        if navigation is not None and navigation not in NAVIGATION:
            raise choices_error("navigation", navigation, NAVIGATION)
        if not 1 <= n_turn_joints <= n_joints:
            raise ControlkitError(f"n_turn_joints: must be in [1, {n_joints}], got {n_turn_joints}.")
        self.n_joints = int(n_joints)
        self.oscillator_period = int(oscillator_period)
        self.proprioception = proprioception
        self.oscillator = oscillator
        self.weight_sharing = weight_sharing
        self.sign_constraints = sign_constraints
        self.constant_init = constant_init
        self.navigation = navigation
        self.n_turn_joints = int(n_turn_joints)
        self.time_obs = time_obs
        self.seed = seed
        self.layout = SwimmerLayout(self.n_joints + 1, "navigate" if navigation else "swim", time_obs)
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterDict({name: self._init(name, size, gen) for name, size in self._shapes().items()})
        if navigation == "learned":
            self.target_net = nn.Linear(2, 3)
            bound = 1 / math.sqrt(2)  # torch's default Linear init, from our generator
            for p in self.target_net.parameters():
                with torch.no_grad():
                    p.uniform_(-bound, bound, generator=gen)
        self._clock = 0
        self._numpy_cache: tuple[tuple[int, ...], Any] | None = None

    # ---- parameters ---------------------------------------------------------------------------------------
    def _shapes(self) -> dict[str, int]:
        """Parameter name -> size; shared parameters have one name per connection type, others one per side."""
        n, groups = self.n_joints, {}
        if self.proprioception:
            groups["prop"] = n - 1
        if self.oscillator:
            groups["osc"] = 1
        groups["ipsi"] = groups["contra"] = n
        if self.navigation:
            groups["speed"] = n
            groups["turn"] = self.n_turn_joints
        if self.weight_sharing:
            return {g: 1 for g in groups}
        return {f"{g}_{side}": size for g, size in groups.items() for side in ("d", "v")}

    def _init(self, name: str, size: int, gen: torch.Generator) -> nn.Parameter:
        sign = _SIGN[name.split("_")[0]]
        if self.constant_init:
            return nn.Parameter(torch.full((size,), sign))
        w = torch.empty(size)
        if self.sign_constraints:
            w.uniform_(0, 1, generator=gen).mul_(sign)
        else:
            w.uniform_(-1, 1, generator=gen)
        return nn.Parameter(w)

    def _effective(self, group: str, side: str) -> torch.Tensor:
        w = self.weights[group if self.weight_sharing else f"{group}_{side}"]
        if self.sign_constraints:
            w = w.clamp(min=0) if _SIGN[group] > 0 else w.clamp(max=0)
        return w

    def circuit_weights(self) -> dict[str, torch.Tensor]:
        """Sign-constrained weights laid out for :func:`~controlkit.policies._circuit.circuit` (one matrix per
        layer over ``[dorsal | ventral]`` neurons)."""
        n, k = self.n_joints, self.n_turn_joints
        zn, znn = torch.zeros(n), torch.zeros(n, n)
        eye = torch.eye(n)
        side = {}
        for s in ("d", "v"):
            side[f"prop_{s}"] = (torch.diag(self._effective("prop", s).expand(n - 1), 1) if self.proprioception
                                 else znn)
            side[f"osc_{s}"] = (torch.cat([self._effective("osc", s), zn[1:]]) if self.oscillator else zn)
            side[f"ipsi_{s}"] = torch.diag(self._effective("ipsi", s).expand(n))
            side[f"contra_{s}"] = torch.diag(self._effective("contra", s).expand(n))
            if self.navigation:
                side[f"speed_{s}"] = self._effective("speed", s).expand(n)
                side[f"turn_{s}"] = torch.cat([self._effective("turn", s).expand(k), zn[k:]])
            else:
                side[f"speed_{s}"] = side[f"turn_{s}"] = zn
        return {
            "sense": torch.cat([eye, -eye], 1) / (2 * math.pi / (n + 1)),  # normalise by the joint limit
            "prop": torch.block_diag(side["prop_d"], side["prop_v"]),
            "osc": torch.stack([torch.cat([side["osc_d"], zn]), torch.cat([zn, side["osc_v"]])]),
            # rows: B-neurons [d | v]; columns: muscles [d | v]
            "muscle": torch.cat([torch.cat([side["ipsi_d"], side["contra_v"]], 1),
                                 torch.cat([side["contra_d"], side["ipsi_v"]], 1)], 0),
            "speed": torch.cat([side["speed_d"], side["speed_v"]]),
            "turn": torch.stack([torch.cat([side["turn_d"], zn]), torch.cat([zn, side["turn_v"]])]),
        }

    def with_n_joints(self, n_joints: int) -> NCAPPolicy:
        """The same circuit on a body with ``n_joints`` joints (transfer without retraining; needs sharing)."""
        if not self.weight_sharing and n_joints != self.n_joints:
            raise ControlkitError(
                f"n_joints: this policy was built for {self.n_joints} joints without weight sharing, so it has "
                f"per-segment weights and cannot drive {n_joints} joints; build it with weight_sharing=True."
            )
        other = NCAPPolicy(n_joints, **{**self.hparams(), "n_turn_joints": min(self.n_turn_joints, n_joints)})
        other.load_state_dict(self.state_dict())
        return other

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments except ``n_joints`` (for rebuilding and for the export's metadata)."""
        return {k: getattr(self, k) for k in ("oscillator_period", "proprioception", "oscillator", "weight_sharing",
                                               "sign_constraints", "constant_init", "navigation", "n_turn_joints",
                                               "time_obs", "seed")}

    @classmethod
    def for_env(cls, env, **kwargs: Any) -> NCAPPolicy:
        """Build for a ``controlkit/Swimmer-v0`` env (reads its joint count, task and clock)."""
        layout: SwimmerLayout = env.unwrapped.layout
        if layout.task == "navigate" and kwargs.get("navigation") is None:
            kwargs["navigation"] = "hardcoded"
        if layout.task == "swim" and kwargs.get("navigation") is not None:
            raise ControlkitError("navigation: the swim task has no target; use task: navigate or navigation: null.")
        return cls(layout.n_joints, time_obs=layout.time_obs, **kwargs)

    # ---- forward ------------------------------------------------------------------------------------------
    def _check_obs(self, size: int) -> None:
        if size != self.layout.size:
            raise ControlkitError(
                f"observation: this NCAP policy expects {self.layout.size} entries ({self.n_joints} joints, "
                f"{'navigate' if self.navigation else 'swim'}, time_obs={self.time_obs}), got {size}; "
                "use policy.with_n_joints(n) for another body length."
            )

    def oscillator_phase(self, step: torch.Tensor) -> torch.Tensor:
        """1.0 during the dorsal half of the period, 0.0 during the ventral half."""
        return ((torch.round(step) % self.oscillator_period) < self.oscillator_period // 2).to(torch.float32)

    def forward(self, obs: torch.Tensor, step: torch.Tensor | float | None = None, activity: bool = False):
        """Torques for a batch of observations ``(..., obs_dim)``.

        ``step`` is the control step index (scalar or ``(...,)``); it is read from the observation when the
        policy was built with ``time_obs=True``.
        """
        obs = torch.as_tensor(obs, dtype=torch.float32)
        self._check_obs(obs.shape[-1])
        lay = self.layout
        if self.time_obs:
            step = obs[..., lay.time_index] * EPISODE_STEPS
        elif step is None:
            raise ControlkitError("step: needed when the observation has no time entry (time_obs=False).")
        step = torch.as_tensor(step, dtype=torch.float32).expand(obs.shape[:-1]).unsqueeze(-1)
        brake = right = left = None
        if self.navigation:
            lin = getattr(self, "target_net", None)
            right, left, speed = target_commands(obs[..., lay.to_target], self.navigation,
                                                 None if lin is None else lin.weight,
                                                 None if lin is None else lin.bias, torch.sigmoid)
            brake = 1 - speed.clamp(0, 1)
        w = self.circuit_weights()
        drive = oscillator_drive(self.oscillator_phase(step), w)
        return circuit(obs[..., lay.joints], drive, brake, right, left, w, activity)

    # ---- numpy form and Controller ------------------------------------------------------------------------
    def to_numpy(self):
        """The numpy-only form (:class:`~controlkit.policies.export.NCAPNumpy`): same outputs, no torch."""
        from controlkit.policies.export import NCAPNumpy

        with torch.no_grad():
            w = {k: v.detach().double().numpy().copy() for k, v in self.circuit_weights().items()}
            lin = getattr(self, "target_net", None)
            return NCAPNumpy(
                n_joints=self.n_joints, oscillator_period=self.oscillator_period, navigation=self.navigation,
                time_obs=self.time_obs, weights=w,
                target_w=None if lin is None else lin.weight.detach().double().numpy().copy(),
                target_b=None if lin is None else lin.bias.detach().double().numpy().copy(),
            )

    def _numpy(self):
        # Parameters change in place (optimizer steps); their version counters tell when the cache is stale.
        key = tuple(p._version for p in self._parameters_list())
        if self._numpy_cache is None or self._numpy_cache[0] != key:
            self._numpy_cache = (key, self.to_numpy())
        return self._numpy_cache[1]

    def _parameters_list(self) -> list[nn.Parameter]:
        if getattr(self, "_plist", None) is None:  # parameters() is a generator walk; act() runs every step
            self._plist = list(self.parameters())
        return self._plist

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: the internal clock (used without ``time_obs``) returns to step 0."""
        Controller.reset(self, seed)
        self._clock = 0

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        action = self._numpy()(np.asarray(obs, dtype=np.float64), None if self.time_obs else self._clock)
        self._clock += 1
        return action.astype(np.float32), StepInfo()

    def extra_repr(self) -> str:
        return f"n_joints={self.n_joints}, params={sum(p.numel() for p in self.parameters())}, " + ", ".join(
            f"{k}={v}" for k, v in self.hparams().items())


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["NCAPPolicy", "count_parameters"]


def ncap_controller(env: Any, **kwargs: Any) -> NCAPPolicy:
    """The ``ncap`` entry of the controller registry: :meth:`NCAPPolicy.for_env` (the runner's factory form)."""
    return NCAPPolicy.for_env(env, **kwargs)
