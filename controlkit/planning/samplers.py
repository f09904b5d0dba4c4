"""Sampling and gradient planners over the same network and cost as :class:`~controlkit.planning.mip_mpc.MIPMPC`.

Random shooting, the cross-entropy method (CEM), MPPI and gradient shooting (Adam through the network, actions
projected onto the box) roll out whole batches of action sequences in torch. They take the same constructor
arguments as MIP-MPC plus their own knobs. Constraints they cannot impose (state bounds, ``A x <= b``, keep-out
boxes) enter the cost as ``penalty * violation``; ``Plan.extras["violation"]`` reports what is left.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from controlkit.core.controller import Plan, Status
from controlkit.core.errors import ControlkitError
from controlkit.planning.receding import RecedingHorizonPlanner


def _whole(name: str, value: Any, low: int) -> int:
    """``value`` as an integer ``>= low``, else a :class:`ControlkitError` naming the field."""
    try:
        ok = not isinstance(value, bool) and float(value).is_integer() and int(value) >= low
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ControlkitError(f"{name}: must be an integer >= {low}, got {value!r}.")
    return int(value)


def _real(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` when ``low_open``), else a ControlkitError.

    Finite, so an ``inf`` is caught here under its own name rather than as a NaN cost later under another's.
    """
    try:
        v = float(value)
        ok = not isinstance(value, bool) and math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        where = f"{'(' if low_open else '['}{low:g}, {high:g}]" if math.isfinite(high) else (
            f"{'>' if low_open else '>='} {low:g}")
        raise ControlkitError(f"{name}: must be a finite number {'in ' if math.isfinite(high) else ''}{where}, "
                              f"got {value!r}.")
    return v


class _TorchPlanner(RecedingHorizonPlanner):
    """Batched torch rollout and cost; subclasses implement :meth:`_search`.

    Every knob is checked when the planner is built (finite, in range), so a bad config fails before any planning.
    """

    def __init__(self, *args: Any, seed: int = 0, penalty: float = 1e3, **kwargs: Any) -> None:
        self.seed = _whole("seed", seed, 0)
        self.penalty = _real("penalty", penalty, 0.0)
        super().__init__(*args, **kwargs)
        p = self.problem
        self._f = p.net.to_torch()
        self._f.requires_grad_(False)
        t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
        self._u_lo, self._u_hi = t(p.u_low), t(p.u_high)
        self._x_lo, self._x_hi = t(p.x_low), t(p.x_high)
        self._w = t(p.step_weights)
        self._a, self._b = t(p.a_state), t(p.b_state)
        # a soft keep-out box is priced at its own penalty, everything else at the planner's
        self._boxes = [(list(b.coords), t(b.low), t(b.high), self.penalty if b.penalty is None else b.penalty)
                       for b in p.keep_out]

    def reset(self, seed: int | None = None) -> None:
        """Forget the last plan and re-seed the sampler (``None`` keeps the constructor's seed)."""
        super().reset(seed)
        self._gen = torch.Generator().manual_seed(self.seed if seed is None else int(seed))

    def _rollout(self, x0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """States ``(N, H+1, nx)`` for action batches ``(N, H, nu)``."""
        x = x0.expand(actions.shape[0], -1)
        states = [x]
        for t in range(actions.shape[1]):
            y = self._f(torch.cat([x, actions[:, t]], dim=-1))
            x = x + y if self.problem.net.residual else y
            states.append(x)
        return torch.stack(states, dim=1)

    def _cost(self, states: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Penalised cost per sequence: the L1 objective plus ``penalty`` times the constraint violation."""
        xs = states[:, 1:]
        c = (self._w * (xs - goal).abs()).sum((-1, -2)) + self.problem.control_weight * actions.abs().sum((-1, -2))
        v = (torch.relu(self._x_lo - xs) + torch.relu(xs - self._x_hi)).nan_to_num(0.0).sum((-1, -2))
        if self._b.numel():
            v = v + torch.relu(xs @ self._a.T - self._b).sum((-1, -2))
        c = c + self.penalty * v
        for coords, lo, hi, weight in self._boxes:
            xc = xs[..., coords]
            c = c + weight * torch.relu(torch.minimum(xc - lo, hi - xc).min(-1).values).sum(-1)
        return c

    def _uniform(self, n: int) -> torch.Tensor:
        H, nu = self.problem.horizon, self.problem.nu
        r = torch.rand((n, H, nu), generator=self._gen, dtype=torch.float64)
        return self._u_lo + r * (self._u_hi - self._u_lo)

    def _clip(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(actions, self._u_hi), self._u_lo)

    def _search(self, x0: torch.Tensor, goal: torch.Tensor, init: torch.Tensor | None) -> tuple[torch.Tensor, int]:
        """Return the best ``(H, nu)`` actions found and the number of sequences evaluated."""
        raise NotImplementedError

    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None) -> Plan:
        """Search action sequences from ``x0`` towards ``goal``; ``warm_start`` seeds the search."""
        p = self.problem
        x0, goal = p.check_state(x0), p.check_goal(goal)
        t0 = time.perf_counter()
        init = None if warm_start is None else self._clip(torch.as_tensor(warm_start, dtype=torch.float64))
        with torch.no_grad():
            best, evaluated = self._search(torch.as_tensor(x0), torch.as_tensor(goal), init)
        actions = best.detach().numpy().copy()
        states = p.net.rollout(x0, actions)
        extras = {"violation": float(p.violation(states)), "evaluated": evaluated}
        return Plan(actions, states, float(p.cost(states, actions, goal)), Status.OK, time.perf_counter() - t0,
                    None, extras)


class RandomShootingPlanner(_TorchPlanner):
    """Best of ``n_samples`` uniform action sequences (plus the warm start).

    Args:
        *args: Problem arguments of :class:`~controlkit.planning.mip_mpc.MIPMPC`.
        n_samples: Sequences per plan.
        seed: Seed of the sampler.
        penalty: Weight of constraint violation in the cost.
        **kwargs: Further problem arguments.
    """

    def __init__(self, *args: Any, n_samples: int = 1000, **kwargs: Any) -> None:
        self.n_samples = _whole("n_samples", n_samples, 1)
        super().__init__(*args, **kwargs)

    def _search(self, x0, goal, init):
        a = self._uniform(self.n_samples)
        if init is not None:
            a = torch.cat([init[None], a])
        c = self._cost(self._rollout(x0, a), a, goal)
        return a[torch.argmin(c)], a.shape[0]


class CEMPlanner(_TorchPlanner):
    """Cross-entropy method: refit a Gaussian to the elite sequences, ``iterations`` times.

    Args:
        *args: Problem arguments.
        n_samples: Sequences per iteration.
        iterations: Refits per plan.
        elite_frac: Fraction of samples kept as elites.
        **kwargs: ``seed``, ``penalty`` and further problem arguments.
    """

    def __init__(self, *args: Any, n_samples: int = 200, iterations: int = 10, elite_frac: float = 0.1,
                 **kwargs: Any) -> None:
        self.n_samples, self.iterations = _whole("n_samples", n_samples, 1), _whole("iterations", iterations, 1)
        self.elite_frac = _real("elite_frac", elite_frac, 0.0, 1.0, low_open=True)
        self.n_elite = max(1, int(round(self.elite_frac * self.n_samples)))
        super().__init__(*args, **kwargs)

    def _search(self, x0, goal, init):
        H, nu = self.problem.horizon, self.problem.nu
        mean = (self._u_lo + self._u_hi).expand(H, nu) / 2 if init is None else init
        std = ((self._u_hi - self._u_lo) / 2).expand(H, nu).clone()
        best, best_c = mean, torch.inf
        for _ in range(self.iterations):
            noise = torch.randn((self.n_samples, H, nu), generator=self._gen, dtype=torch.float64)
            a = torch.cat([mean[None], self._clip(mean + std * noise)])
            c = self._cost(self._rollout(x0, a), a, goal)
            order = torch.argsort(c)
            if c[order[0]] < best_c:
                best, best_c = a[order[0]], c[order[0]]
            elite = a[order[: self.n_elite]]
            mean, std = elite.mean(0), elite.std(0, unbiased=False) + 1e-6
        return best, self.iterations * (self.n_samples + 1)


class MPPIPlanner(_TorchPlanner):
    """Model-predictive path integral control: exponentially weighted average of perturbed sequences.

    Args:
        *args: Problem arguments.
        n_samples: Sequences per iteration.
        iterations: Weighted-average updates per plan.
        temperature: Softmax temperature on costs (lower = greedier).
        noise_std: Perturbation std as a fraction of the action range.
        **kwargs: ``seed``, ``penalty`` and further problem arguments.
    """

    def __init__(self, *args: Any, n_samples: int = 200, iterations: int = 5, temperature: float = 0.1,
                 noise_std: float = 0.3, **kwargs: Any) -> None:
        self.n_samples, self.iterations = _whole("n_samples", n_samples, 1), _whole("iterations", iterations, 1)
        self.temperature = _real("temperature", temperature, 0.0, low_open=True)
        self.noise_std = _real("noise_std", noise_std, 0.0)
        self.n_elites = 16
        super().__init__(*args, **kwargs)

    def _search(self, x0, goal, init):
        H, nu = self.problem.horizon, self.problem.nu
        mean = (self._u_lo + self._u_hi).expand(H, nu) / 2 if init is None else init
        std = self.noise_std * (self._u_hi - self._u_lo)
        best, best_c = mean, torch.inf
        for _ in range(self.iterations):
            noise = torch.randn((self.n_samples, H, nu), generator=self._gen, dtype=torch.float64)
            a = torch.cat([mean[None], self._clip(mean + std * noise)])
            c = self._cost(self._rollout(x0, a), a, goal)
            i = torch.argmin(c)
            if c[i] < best_c:
                best, best_c = a[i], c[i]
            w = torch.softmax(-(c - c[i]) / self.temperature, dim=0)
            mean = (w[:, None, None] * a).sum(0)
        # the last iteration's best samples, best first: further starts for a local descent (PipelineMIP)
        self.elites = a[torch.argsort(c)[: self.n_elites]].detach().numpy().copy()
        final = self._cost(self._rollout(x0, mean[None]), mean[None], goal)[0]
        return (mean if final <= best_c else best), self.iterations * (self.n_samples + 1) + 1


class GradientPlanner(_TorchPlanner):
    """Gradient shooting: Adam on action sequences through the network, projected onto the action box.

    Args:
        *args: Problem arguments.
        iterations: Adam steps.
        lr: Adam learning rate (in action units).
        n_restarts: Sequences optimised in parallel (the warm start is one of them).
        **kwargs: ``seed``, ``penalty`` and further problem arguments.
    """

    def __init__(self, *args: Any, iterations: int = 100, lr: float = 0.05, n_restarts: int = 8,
                 **kwargs: Any) -> None:
        self.iterations = _whole("iterations", iterations, 0)
        self.lr = _real("lr", lr, 0.0, low_open=True)
        self.n_restarts = _whole("n_restarts", n_restarts, 1)
        super().__init__(*args, **kwargs)

    def _search(self, x0, goal, init):
        a = self._uniform(self.n_restarts)
        if init is not None:
            a[0] = init
        with torch.enable_grad():
            return self._descend(x0, goal, a)

    def _descend(self, x0, goal, a):
        a.requires_grad_(True)
        opt = torch.optim.Adam([a], lr=self.lr)
        best, best_c = a[0].detach().clone(), torch.inf
        for _ in range(self.iterations + 1):
            c = self._cost(self._rollout(x0, a), a, goal)
            i = torch.argmin(c.detach())
            if c[i] < best_c:
                best, best_c = a[i].detach().clone(), c[i].detach()
            opt.zero_grad()
            c.sum().backward()
            opt.step()
            with torch.no_grad():
                a.copy_(self._clip(a))
        return best, (self.iterations + 1) * self.n_restarts
