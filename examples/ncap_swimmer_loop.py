"""NCAP swimming a 6-link MuJoCo swimmer in a 33 Hz real-time loop, from its exported numpy form.

The policy is exported once (that step uses torch); the loop itself runs numpy and MuJoCo only.

    python examples/ncap_swimmer_loop.py              # 1000 steps = one 30 s episode in real time
    python examples/ncap_swimmer_loop.py --steps 60   # the short form the test suite runs
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402

import controlkit  # noqa: E402,F401  registers controlkit/Swimmer-v0
from controlkit.core.loop import GymPlant, run_loop  # noqa: E402
from controlkit.export import NumpyController, load_numpy  # noqa: E402


def export_policy(path: Path) -> None:
    """Export the constant-initialised circuit (it swims before training); a trained one exports the same way."""
    from controlkit.policies import NCAPPolicy

    from controlkit.export import export_numpy

    export_numpy(NCAPPolicy(n_joints=5), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--policy", type=Path, default=None, help="an exported .npz (default: export a fresh one)")
    args = parser.parse_args()
    path = args.policy or Path(tempfile.mkdtemp()) / "ncap.npz"
    if args.policy is None:
        export_policy(path)
    env = gym.make("controlkit/Swimmer-v0", n_links=6)
    plant = GymPlant(env, seed=0)
    controller = NumpyController(load_numpy(path))
    controller.reset(seed=0)
    report = run_loop(controller, plant, rate_hz=1 / 0.03, steps=args.steps)
    print(report)
    print(f"swim reward over the {args.steps} steps: {plant.total_reward:.1f} (at most 1 per step)")


if __name__ == "__main__":
    main()
