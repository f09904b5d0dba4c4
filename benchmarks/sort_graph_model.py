"""Learn the graph dynamics of Sort-v0 (2-4 boxes, one model), sparsify it, and measure what sparsification costs.

Collects push data on Sort-v0 with 2, 3 and 4 boxes (:class:`controlkit.tasks.pushing.graph_sort.SortExplorer`), trains one
:class:`controlkit.models.graph.GraphDynamics` on all of it (one-step + 5-step rollout loss), sparsifies the shared
message and update MLPs with :func:`controlkit.models.sparsify.sparsify` (ReLU / identity / removed per neuron) and
reports the 10-step validation rollout error of the dense model and of every round, overall and per box count.
With ``--pusher-radius`` the pusher has edges only to boxes within that distance (boxes it does not reach stay
still); with ``--fixed-graph 1`` the training rollouts keep their first state's graph, as a plan does.
Target (issue 18): at most 1/4 of the dense model's ReLUs at <= 1.5x its 10-step rollout error.

Run (about 25 min on 2 shared cores):
``MUJOCO_GL=egl .venv/bin/python benchmarks/sort_graph_model.py [--trajectories 120] [--epochs 25]``
Writes ``benchmarks/results/sort_graph_model.json`` and the models ``sort_graph_dense.npz`` and
``sort_graph_model.npz`` (the selected operating point) next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from controlkit.models.data import load_dataset, save_dataset
from controlkit.models.dynamics import TrainSettings, fit, rollout_mse
from controlkit.models.graph import MAX_OBJECTS
from controlkit.models.graph_training import GraphDynamics, export_graph
from controlkit.models.sparsify import SparsifySettings, fixed_gates, sparsify
from controlkit.tasks.pushing.graph_sort import collect_sort_data

RESULTS = Path(__file__).parent / "results"


def counts_of(data) -> np.ndarray:
    """Number of boxes of each trajectory (a missing box has cos = sin = 0)."""
    boxes = data.states[:, 0, : 4 * MAX_OBJECTS].reshape(len(data.states), MAX_OBJECTS, 4)
    return (np.abs(boxes[:, :, 2:]).sum(-1) > 0.5).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trajectories", type=int, default=120, help="trajectories per box count")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--pusher-radius", type=float, default=0.0,
                    help="pusher edges only to boxes within this (m); 0: to every box (the first model)")
    ap.add_argument("--fixed-graph", type=int, default=0,
                    help="1: training rollouts keep their first state's graph, as plans do; 0: read at every state")
    ap.add_argument("--schedule", default="24,16", help="ReLU counts of the sparsification rounds")
    ap.add_argument("--finetune-epochs", type=int, default=15, help="fine-tuning epochs per round")
    ap.add_argument("--data", default=None, help="dataset file: loaded if it exists, else collected and saved")
    ap.add_argument("--out", default=str(RESULTS / "sort_graph_model.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    t0 = time.perf_counter()
    if args.data and Path(args.data).is_file():
        data = load_dataset(args.data)
    else:
        data = collect_sort_data((2, 3, 4), args.trajectories, args.steps, seed=args.seed)
        if args.data:
            save_dataset(data, args.data)
    t_collect = time.perf_counter() - t0
    train, val = data.split(0.15, seed=args.seed)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=3e-3, rollout_steps=5, eval_steps=10,
                             patience=15)
    model = GraphDynamics(seed=args.seed, pusher_radius=args.pusher_radius or None, fixed_graph=bool(args.fixed_graph))
    model.fit_normalisation(train)
    t1 = time.perf_counter()
    dense_fit = fit(model, train, val, settings, seed=args.seed + 1)
    t_train = time.perf_counter() - t1
    export_graph(model, metadata={"env": "controlkit/Sort-v0", "round": "dense"}).save(
        Path(args.out).with_name("sort_graph_dense.npz"))
    sp = SparsifySettings(schedule=[int(v) for v in args.schedule.split(",")], search_epochs=4,
                          finetune_epochs=args.finetune_epochs, tolerance=1.5)
    t2 = time.perf_counter()
    result = sparsify(model, train, val, sp, settings, seed=args.seed + 10)
    t_sparse = time.perf_counter() - t2
    by_count = {}
    vc = counts_of(val)
    for r in (result.dense, result.best):
        g = fixed_gates(r.modes)
        model.load_state_dict(r.state)
        by_count[r.round] = {int(n): rollout_mse(model, val.subset(np.flatnonzero(vc == n)), 10, g)
                             for n in sorted(set(vc.tolist()))}
    best = result.best
    model.load_state_dict(best.state)
    meta = {"env": "controlkit/Sort-v0", "shape": "box", "counts": [2, 3, 4], "round": best.round,
            "val_rollout10": best.val_rollout, "dense_val_rollout10": result.dense.val_rollout}
    net = export_graph(model, best.modes, metadata=meta)
    net.save(Path(args.out).with_name("sort_graph_model.npz"))
    out = {
        "command": "MUJOCO_GL=egl .venv/bin/python benchmarks/sort_graph_model.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "data")),
        "load_average_before": load, "load_average_after": os.getloadavg(),
        "transitions": int(data.n_transitions), "collect_s": t_collect, "train_s": t_train, "sparsify_s": t_sparse,
        "dense_epochs": dense_fit.epochs,
        "rounds": [r.row() for r in result.rounds],
        "selected_round": result.selected,
        "dense_relu": result.dense.n_relu, "selected_relu": best.n_relu, "selected_identity": best.n_identity,
        "rollout10_dense": result.dense.val_rollout, "rollout10_selected": best.val_rollout,
        "rollout10_ratio": best.val_rollout / result.dense.val_rollout,
        "rollout10_by_count": {"dense": by_count[0], "selected": by_count[best.round]},
        "target": {"relu_fraction": best.n_relu / result.dense.n_relu,
                   "met": best.n_relu * 4 <= result.dense.n_relu
                   and best.val_rollout <= 1.5 * result.dense.val_rollout},
    }
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("rounds", "target", "rollout10_by_count")}, indent=1))


if __name__ == "__main__":
    main()
