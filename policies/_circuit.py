"""The NCAP circuit's arithmetic, written once for numpy arrays and torch tensors alike.

Only ``@``, ``*``, ``+``, ``-``, ``**``, slicing and ``.clip`` are used, which numpy and torch spell the same way,
so the torch module (training), the numpy export (deployment without torch) and the activity figure run the
same lines.

Neurons are stacked side by side, ``[dorsal joints 0..n-1 | ventral joints 0..n-1]``, so each layer of the
circuit is one matrix product: sensing (``sense``, ``(n, 2n)``), proprioception (``prop``, block-diagonal
shift matrices), the muscles (``muscle``: ipsilateral weights on the block diagonal, contralateral off it).
That keeps a control step at about ten array operations, which is what lets the policy run in the loop at
nearly the speed of the bare physics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# Expanded, sign-constrained weights (see NCAPPolicy.circuit_weights), in the order the export stores them.
WEIGHT_NAMES = ("sense", "prop", "osc", "muscle", "speed", "turn")
NAVIGATION = ("hardcoded", "learned")
TURN_GAIN = 2.0  # hard-coded controller: full turn command once the target is 30 degrees off the heading


def oscillator_drive(osc_d: Any, w: Mapping[str, Any]) -> Any:
    """The head oscillator's input to the B-neurons, ``(..., 2n)``, from its dorsal phase ``osc_d`` ``(..., 1)``
    (1 in the first half-period, 0 in the second)."""
    return osc_d * (w["osc"][0] - w["osc"][1]) + w["osc"][1]


def circuit(q: Any, drive: Any, brake: Any, right: Any, left: Any, w: Mapping[str, Any], activity: bool = False):
    """Joint torques from joint angles.

    Args:
        q: Joint angles in radians, shape ``(..., n)``.
        drive: Head oscillator input, ``(..., 2n)`` (:func:`oscillator_drive`, or a row of ``w["osc"]``).
        brake: ``1 - speed`` in [0, 1], shape ``(..., 1)``, or ``None`` without speed control.
        right, left: Turn commands in [0, 1], shape ``(..., 1)``, or ``None`` without turn control.
        w: ``sense`` ``(n, 2n)`` = ``[I, -I] / joint_limit``; ``prop`` ``(2n, 2n)`` (joint i-1 -> joint i, same
            side); ``osc`` ``(2, 2n)`` head drive in the dorsal / ventral phase; ``muscle`` ``(2n, 2n)``;
            ``speed`` ``(2n,)``; ``turn`` ``(2, 2n)`` right (dorsal) / left (ventral) drive.
        activity: Also return the B-neuron and muscle activations.

    Returns:
        Torques ``m_d - m_v`` in [-1, 1], shape ``(..., n)``; with ``activity``, also a dict of ``b_d, b_v, m_d, m_v``.
    """
    n = q.shape[-1]
    # Stretch sensors: the angle over the joint limit, clamped to [-1, 1], split into dorsal and ventral parts
    # (clamping [d, -d] to [0, 1] does both at once).
    s = (q @ w["sense"]).clip(0, 1)
    # B-neurons: proprioception from the joint in front, the head oscillator, optional speed and turn inputs.
    b = s @ w["prop"] + drive
    if brake is not None:
        b = b + brake * w["speed"]
    if right is not None:
        b = b + right * w["turn"][0] + left * w["turn"][1]
    b = b.clip(0, 1)  # graded activation
    # Muscles: ipsilateral excitation, contralateral inhibition, graded.
    m = (b @ w["muscle"]).clip(0, 1)
    torque = m[..., :n] - m[..., n:]
    if activity:
        return torque, {"b_d": b[..., :n], "b_v": b[..., n:], "m_d": m[..., :n], "m_v": m[..., n:]}
    return torque


def target_commands(to_target: Any, mode: str, lin_w: Any, lin_b: Any, sigmoid: Callable[[Any], Any]):
    """Map the nose-to-target vector (head frame) to ``(right, left, speed)`` commands in [0, 1].

    ``hardcoded``: steer towards the target in proportion to its bearing, always full speed. ``learned``: a
    ``Linear(2, 3)`` on the unit direction followed by a sigmoid.
    """
    x, y = to_target[..., 0:1], to_target[..., 1:2]
    norm = (x * x + y * y) ** 0.5 + 1e-8
    ux, uy = x / norm, y / norm
    if mode == "hardcoded":
        # Forward is -y in the head frame and +x is the swimmer's left (tests/policies/test_swimmer_ncap.py checks
        # the turn direction).
        right = (-ux * TURN_GAIN).clip(0, 1)
        left = (ux * TURN_GAIN).clip(0, 1)
        return right, left, ux * 0 + 1
    z = ux * lin_w[:, 0] + uy * lin_w[:, 1] + lin_b  # (..., 3): Linear(2, 3) without a matmul reshape
    z = sigmoid(z)
    return z[..., 0:1], z[..., 1:2], z[..., 2:3]
