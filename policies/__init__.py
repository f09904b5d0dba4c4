"""Policies for the swimmers: the NCAP circuit, MLP baselines, their training and torch-free export.

Names load on first use, so ``from controlkit.policies.export import load_policy`` runs a trained policy
without importing torch, and the PPO trainer (stable-baselines3) loads only when asked for. The trainers are
functions of the same name as their modules: ``from controlkit.policies.train_es import train_es`` (and
``train_ppo``); re-exporting them here would be shadowed by the submodules once imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "NCAPPolicy": "ncap", "count_parameters": "ncap", "ncap_controller": "ncap",
    "MLPPolicy": "mlp",
    "NCAPNumpy": "export", "MLPNumpy": "export", "load_policy": "export", "save_onnx": "export",
    "TrainingCurve": "train_es", "ModuleActorPolicy": "train_ppo",
    "evaluate": "_rollout", "record_episode": "_rollout",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'controlkit.policies' has no attribute {name!r}")
    return getattr(importlib.import_module(f"controlkit.policies.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
