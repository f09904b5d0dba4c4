"""The NCAP circuit's arithmetic, written once for numpy arrays and torch tensors alike.

Only ``@``, ``*``, ``+``, ``-``, ``**`` and ``.clip`` are used, which numpy and torch spell the same way, so the
torch module (training), the numpy export (deployment without torch) and the activity figure run the same lines.
Weights arrive already sign-constrained and expanded to one entry per joint (see ``NCAPPolicy.circuit_weights``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

# Names of the expanded weights, in the order the export stores them.
WEIGHT_NAMES = ("prop_d", "prop_v", "osc_d", "osc_v", "ipsi_d", "ipsi_v", "contra_d", "contra_v",
                "speed_d", "speed_v", "turn_d", "turn_v")
NAVIGATION = ("hardcoded", "learned")
TURN_GAIN = 2.0  # hard-coded controller: full turn command once the target is 30 degrees off the heading


def circuit(x: Any, osc_d: Any, brake: Any, right: Any, left: Any, w: Mapping[str, Any], activity: bool = False):
    """Joint torques from normalised joint angles.

    Args:
        x: Joint angles divided by the joint limit, clipped to [-1, 1]; shape ``(..., n)``.
        osc_d: Head oscillator's dorsal phase (1 first half-period, 0 second), shape ``(..., 1)``.
        brake: ``1 - speed`` in [0, 1], shape ``(..., 1)``, or ``None`` without speed control.
        right, left: Turn commands in [0, 1], shape ``(..., 1)``, or ``None`` without turn control.
        w: Expanded weights: ``prop_d``/``prop_v`` ``(n, n)`` super-diagonal matrices (joint i-1 -> joint i),
            ``osc_*`` ``(n,)`` non-zero at the head only, ``ipsi_*``, ``contra_*``, ``speed_*``, ``turn_*`` ``(n,)``.
        activity: Also return the B-neuron and muscle activations.

    Returns:
        Torques ``m_d - m_v`` in [-1, 1], shape ``(..., n)``; with ``activity``, also a dict of ``b_d, b_v, m_d, m_v``.
    """
    d = x.clip(0, 1)  # dorsal stretch sensor
    v = (-x).clip(0, 1)  # ventral stretch sensor
    # Proprioception: each B-neuron reads the same side of the joint in front (a shift along the body).
    b_d = d @ w["prop_d"] + osc_d * w["osc_d"]
    b_v = v @ w["prop_v"] + (1 - osc_d) * w["osc_v"]
    if brake is not None:
        b_d = b_d + brake * w["speed_d"]
        b_v = b_v + brake * w["speed_v"]
    if right is not None:
        b_d = b_d + right * w["turn_d"]
        b_v = b_v + left * w["turn_v"]
    b_d = b_d.clip(0, 1)  # graded activation
    b_v = b_v.clip(0, 1)
    # Muscles: ipsilateral excitation, contralateral inhibition.
    m_d = (b_d * w["ipsi_d"] + b_v * w["contra_d"]).clip(0, 1)
    m_v = (b_v * w["ipsi_v"] + b_d * w["contra_v"]).clip(0, 1)
    torque = m_d - m_v
    if activity:
        return torque, {"b_d": b_d, "b_v": b_v, "m_d": m_d, "m_v": m_v}
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
        # Forward is -y in the head frame, so +x is the swimmer's left (see docs/ncap.md for the check).
        right = (-ux * TURN_GAIN).clip(0, 1)
        left = (ux * TURN_GAIN).clip(0, 1)
        return right, left, ux * 0 + 1
    z = ux * lin_w[:, 0] + uy * lin_w[:, 1] + lin_b  # (..., 3): Linear(2, 3) without a matmul reshape
    z = sigmoid(z)
    return z[..., 0:1], z[..., 1:2], z[..., 2:3]
