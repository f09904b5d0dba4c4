"""Learn particle-graph dynamics of Rope-v0, compare it with an MLP on the same data and a "rope stays" baseline, and
sparsify it for the MILP.

Collects Rope-v0 transitions under :class:`controlkit.tasks.pushing.rope_data.RopeExplorer` (the pusher keeps
driving through randomly chosen particles), writes each particle as a graph node ``[x, y, 1, 0]``, trains
:class:`controlkit.models.graph_training.GraphDynamics` (built by
:func:`~controlkit.tasks.pushing.rope_data.rope_graph_model`: one node slot per particle, edges between particles
closer than ``--radius``, i.e. chain neighbours and contacts; the pusher's edges only to particles within
``--pusher-radius``, and a particle the pusher reaches neither directly nor along the chain stays exactly still;
with ``--fixed-graph 1`` the rollout loss and errors keep each rollout's first graph, as a plan does) and a dense
:class:`controlkit.models.dynamics.DynamicsModel` of about the same ReLU count on the same trajectories, and
reports on held-out trajectories the 10-step open-loop rollout error: the mean squared error over the state (what
training early-stops on) and the mean particle position error after 10 steps (m).
The baseline predicts that the rope does not move and the pusher moves by the action.

Then the graph model's shared message and update MLPs are sparsified (:func:`controlkit.models.sparsify.sparsify`,
ReLU / identity / removed per neuron, rounds ``--schedule``); the selected round (fewest ReLUs within
``--tolerance`` x the dense 10-step error) is exported as ``rope_graph_model.npz`` (what
``benchmarks/rope_mip_mpc.py`` and ``experiments/rope_mip_mpc.yaml`` plan on), with the ReLUs one plan step of the
compiled rope has (one copy of the message neurons per edge, of the update neurons per particle).

Run (about 10 min on 2 shared cores):
``MUJOCO_GL=egl .venv/bin/python benchmarks/rope_graph_model.py [--trajectories 300] [--epochs 60]``
Writes ``benchmarks/results/rope_graph_model.json`` and the models ``rope_graph_dense.npz``,
``rope_graph_relu<N>.npz`` (every round) and ``rope_graph_model.npz`` (the selected round) next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from controlkit.models.data import TransitionData
from controlkit.models.dynamics import DynamicsModel, TrainSettings, fit, rollout_mse
from controlkit.models.graph import GraphNetwork
from controlkit.models.graph_training import export_graph
from controlkit.models.sparsify import SparsifySettings, fixed_gates, sparsify
from controlkit.tasks.pushing.rope_data import ENV_ID, collect_rope_data, rope_graph_model

RESULTS = Path(__file__).parent / "results"


class StaysModel(torch.nn.Module):
    """Baseline: the particles stay where they are, the pusher moves by the action."""

    def __init__(self, n_particles: int) -> None:
        super().__init__()
        self.n = n_particles

    def rollout(self, x0: torch.Tensor, actions: torch.Tensor, gates=None) -> torch.Tensor:
        pusher = x0[:, None, 4 * self.n:] + torch.cumsum(actions, dim=1)
        nodes = x0[:, None, : 4 * self.n].expand(-1, actions.shape[1], -1)
        return torch.cat([nodes, pusher], dim=-1)


@torch.no_grad()
def particle_error(model, data: TransitionData, steps: int, n: int, gates=None) -> float:
    """Mean distance (m) between predicted and true particle positions ``steps`` steps ahead."""
    x0, actions, targets = (torch.as_tensor(a, dtype=torch.float32) for a in data.windows(steps))
    pred = (model.rollout(x0, actions) if gates is None else model.rollout(x0, actions, gates))[
        :, -1, : 4 * n].reshape(-1, n, 4)[..., :2]
    true = targets[:, -1, : 4 * n].reshape(-1, n, 4)[..., :2]
    return float((pred - true).norm(dim=-1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trajectories", type=int, default=150)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--segment-length", type=float, default=0.03, help="the env's segment_length (m)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--radius", type=float, default=0.038, help="particle-particle edge radius (m)")
    ap.add_argument("--pusher-radius", type=float, default=0.06,
                    help="pusher edges only to particles within this (m); 0: to every particle (the old model)")
    ap.add_argument("--fixed-graph", type=int, default=1,
                    help="1: training rollouts keep their first state's graph, as plans do; 0: read at every state")
    ap.add_argument("--schedule", default="32,16,8", help="ReLU counts of the sparsification rounds")
    ap.add_argument("--wander", type=float, default=0.3,
                    help="probability that the data behaviour's next target is a random table point")
    ap.add_argument("--retreat", type=float, default=0.3,
                    help="probability that the data behaviour's next target is straight away from the rope")
    ap.add_argument("--finetune-epochs", type=int, default=15, help="fine-tuning epochs per round")
    ap.add_argument("--tolerance", type=float, default=1.5, help="operating point: error <= tolerance x dense")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "rope_graph_model.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    n = args.particles
    t0 = time.perf_counter()
    env_kwargs = {"n_particles": n, "segment_length": args.segment_length}
    data = collect_rope_data(args.trajectories, args.steps, seed=args.seed, env_kwargs=env_kwargs, wander=args.wander,
                             retreat=args.retreat)
    t_collect = time.perf_counter() - t0
    train, val = data.split(0.2, seed=args.seed)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, rollout_steps=5, eval_steps=10,
                             patience=10)
    graph = rope_graph_model(train, n, radius=args.radius, seed=args.seed, pusher_radius=args.pusher_radius or None,
                             fixed_graph=bool(args.fixed_graph))
    t1 = time.perf_counter()
    graph_fit = fit(graph, train, val, settings, seed=args.seed + 1)
    t_graph = time.perf_counter() - t1
    mlp = DynamicsModel(data.nx, data.nu, [64], seed=args.seed)
    mlp.fit_normalisation(train)
    t2 = time.perf_counter()
    mlp_fit = fit(mlp, train, val, settings, seed=args.seed + 1)
    t_mlp = time.perf_counter() - t2
    stays = StaysModel(n)
    rows = {}
    for name, model, relu in (("graph", graph, graph.n_relu), ("mlp", mlp, mlp.n_relu), ("rope_stays", stays, 0)):
        rows[name] = {"relu": relu, "val_rollout10_mse": rollout_mse(model, val, 10),
                      "val_particle_error10_m": particle_error(model, val, 10, n),
                      "val_particle_error1_m": particle_error(model, val, 1, n)}
    # sparsify the shared MLPs; the compiled rope has one copy of the message neurons per edge, of the update
    # neurons per particle: a straight rope has 2 (n - 1) particle edges and n pusher edges
    meta = {"env": ENV_ID, "n_particles": n, "segment_length": args.segment_length}
    export_graph(graph, metadata={**meta, "round": "dense"}).save(Path(args.out).with_name("rope_graph_dense.npz"))
    sp = SparsifySettings(schedule=[int(v) for v in args.schedule.split(",")], search_epochs=4,
                          finetune_epochs=args.finetune_epochs, tolerance=args.tolerance)
    t3 = time.perf_counter()
    result = sparsify(graph, train, val, sp, settings, seed=args.seed + 10)
    t_sparse = time.perf_counter() - t3
    for r in result.rounds[1:]:  # every round, so that planning can be compared across ReLU budgets
        graph.load_state_dict(r.state)
        export_graph(graph, r.modes, metadata={**meta, "round": r.round, "val_rollout10": r.val_rollout}).save(
            Path(args.out).with_name(f"rope_graph_relu{r.n_relu}.npz"))
    best = result.best
    graph.load_state_dict(best.state)
    gates = fixed_gates(best.modes)
    net = export_graph(graph, best.modes, metadata={**meta, "round": best.round, "val_rollout10": best.val_rollout,
                                                    "dense_val_rollout10": result.dense.val_rollout})
    net.save(Path(args.out).with_name("rope_graph_model.npz"))
    rows["graph_sparse"] = {"relu": best.n_relu, "identity": best.n_identity,
                            "val_rollout10_mse": rollout_mse(graph, val, 10, gates),
                            "val_particle_error10_m": particle_error(graph, val, 10, n, gates),
                            "val_particle_error1_m": particle_error(graph, val, 1, n, gates)}
    # the pusher 3 cm beside the rope's first particle (the env starts it next to the rope)
    straight = np.concatenate([np.column_stack([np.arange(n) * args.segment_length, np.zeros(n), np.ones(n),
                                                np.zeros(n)]).ravel(), [0.0, 0.03]])
    per_step = {name: g.compact_at(straight).metadata["graph"] for name, g in
                (("dense", GraphNetwork.load(Path(args.out).with_name("rope_graph_dense.npz"))), ("sparse", net))}
    n_edges = len(net.edges(straight)) + len(net.pusher_edges(straight))
    out = {
        "command": "MUJOCO_GL=egl .venv/bin/python benchmarks/rope_graph_model.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "load_average_before": load, "load_average_after": os.getloadavg(),
        "transitions": int(data.n_transitions), "train_trajectories": int(train.n_trajectories),
        "val_trajectories": int(val.n_trajectories),
        "collect_s": t_collect, "train_graph_s": t_graph, "train_mlp_s": t_mlp,
        "epochs": {"graph": graph_fit.epochs, "mlp": mlp_fit.epochs},
        "models": rows,
        "sparsify_s": t_sparse,
        "rounds": [r.row() for r in result.rounds],
        "selected_round": result.selected,
        "rollout10_ratio": best.val_rollout / result.dense.val_rollout,
        "relu_per_plan_step": {k: v["relu_per_edge"] * n_edges + v["relu_per_box"] * n for k, v in per_step.items()},
        "edges_straight_rope": n_edges,
    }
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
