"""Every YAML in experiments/ validates against its kind's schema (what `controlkit run` checks first)."""

from pathlib import Path

import pytest

from controlkit.runner import load_config

EXPERIMENTS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))


def test_the_quickstart_exists_and_is_the_pushing_pipeline():
    assert load_config(EXPERIMENTS[0].parent / "quickstart.yaml").kind == "model_based_control"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_file_validates(path):
    config = load_config(path)
    assert config.name == path.stem and config.seed is not None  # committed experiments are reproducible
