"""Diffusion and decay of scalar fields on a torus, in place on a PropertyLayer's numpy array."""

from __future__ import annotations

import math

import numpy as np


def diffuse(field: np.ndarray, rate: float, decay: float = 0.0) -> None:
    """One explicit step of ``f += rate * laplacian(f)`` on a torus, then ``f *= 1 - decay``, in place.

    The 5-point scheme keeps a field non-negative and conserves its total only while ``rate <= 0.25`` (each
    cell keeps ``1 - 4 rate`` of its content and passes ``rate`` to each neighbour), so a larger rate is split
    into equal sub-steps that each satisfy the bound.

    Args:
        field: ``(H, W)`` float array, modified in place.
        rate: Fraction of a cell's content that moves to each of its 4 neighbours per step (>= 0).
        decay: Fraction of the content lost per step (0..1).
    """
    substeps = max(1, math.ceil(rate / 0.25))
    r = rate / substeps
    for _ in range(substeps):
        neighbours = (np.roll(field, 1, 0) + np.roll(field, -1, 0) + np.roll(field, 1, 1) + np.roll(field, -1, 1))
        field *= 1.0 - 4.0 * r
        field += r * neighbours
    if decay:
        field *= 1.0 - decay

