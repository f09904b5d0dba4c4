"""A slim core: heavy dependencies live in extras, and a feature whose extra is missing says which one to install
(as a ControlkitError the CLI prints in one line, which is also an ImportError)."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_core_dependencies_are_slim_and_every_extra_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("[")[0].split("=")[0].strip().lower() for d in project["dependencies"]}
    assert core == {"numpy", "scipy", "torch", "gymnasium", "omegaconf", "pydantic", "pyyaml", "tqdm", "matplotlib"}
    extras = project["optional-dependencies"]
    for extra in ("mpc", "swimmer", "twins", "rl", "ray", "onnx", "all", "dev"):
        assert extra in extras, extra
    assert {"highspy>=1.7", "pyomo>=6.7"} <= set(extras["mpc"]) and "mesa>=3.1" in extras["twins"]
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")


def _blocked(module: str, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``module`` cannot be imported (as if its extra were missing)."""
    prelude = f"import sys; sys.modules[{module!r}] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.mark.parametrize("module, code, extra", [
    ("mesa", "import controlkit.twins", "controlkit[twins]"),
    ("highspy", "from controlkit.planning import MIPMPC", "controlkit[mpc]"),
    ("mujoco", "import gymnasium as gym, controlkit; gym.make('controlkit/Push-v0')", "controlkit[mujoco]"),
    ("stable_baselines3", "import controlkit.policies.train_ppo", "controlkit[rl]"),
])
def test_a_missing_extra_is_named(module, code, extra):
    check = ("\ntry:\n    " + code.replace("\n", "\n    ") +
             "\nexcept ImportError as e:\n    from controlkit.core.errors import ControlkitError\n"
             "    print(type(e).__name__, isinstance(e, ControlkitError), e)\n")
    proc = _blocked(module, check)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MissingExtraError True") and extra in proc.stdout, proc.stdout


@pytest.mark.parametrize("module, file, extra", [
    ("mesa", "twin_immune_baseline.yaml", "controlkit[twins]"),
    ("stable_baselines3", "swimmer_ncap_vs_mlp.yaml", "controlkit[rl]"),  # found before any arm trains
    ("highspy", "quickstart.yaml", "controlkit[mpc]"),
])
def test_the_cli_names_the_missing_extra_in_one_line_before_any_folder(module, file, extra, tmp_path):
    code = ("from controlkit.runner.cli import main\n"
            f"sys.exit(main(['run', 'experiments/{file}', '--out', {str(tmp_path / 'o')!r}]))")
    proc = _blocked(module, code)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and extra in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()
