"""Policies for the swimmers: the NCAP circuit, MLP baselines, their training and torch-free export.

``import controlkit.policies`` loads torch and numpy only; the PPO trainer (stable-baselines3) loads on first use.
"""

from controlkit.policies.export import MLPNumpy, NCAPNumpy, load_policy, save_onnx
from controlkit.policies.mlp import MLPPolicy
from controlkit.policies.ncap import NCAPPolicy, count_parameters

__all__ = ["MLPNumpy", "MLPPolicy", "NCAPNumpy", "NCAPPolicy", "count_parameters", "load_policy", "save_onnx"]
