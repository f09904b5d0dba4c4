"""Shared test set-up: headless MuJoCo rendering, single-threaded torch, skip markers for optional backends."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import importlib.util  # noqa: E402

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("ray") is None:
        skip = pytest.mark.skip(reason="ray is not installed (pip install 'controlkit[ray]')")
        for item in items:
            if "ray" in item.keywords:
                item.add_marker(skip)
