"""Bad input through the CLI, for every experiment kind: exit 2, one line on stderr naming the field, no traceback,
no run folder. Each case is checked before any work starts (several used to fail only mid-run, after data and
models were made)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlkit.runner.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
DATA = Path(__file__).resolve().parents[1] / "data"
ROPE = f"model.file={DATA / 'rope_graph_model.npz'}"  # the graph models the experiment files name, as fixtures

# (experiment file, overrides, words the one-line message must contain)
CASES = {
    "rollout": ("rollout_pendulum.yaml", [
        (["controller_kwargs.bogus=1"], ["controller_kwargs", "bogus"]),
        (["env_kwargs.g=abc"], ["env_kwargs", "Pendulum-v1"]),
        (["env_kwargs.wind=3"], ["env_kwargs.wind", "valid"]),
        (["max_steps=-1"], ["max_steps"]),
        (["env_kwargs.g=.nan"], ["env_kwargs.g", "finite", "nan"]),
        (["env_kwargs.g=.inf"], ["env_kwargs.g", "finite", "inf"]),
    ]),
    "sparsify": ("sparsify_pendulum.yaml", [
        (["data.trajectories=2"], ["data.val_fraction", "2 trajectories"]),
        (["train.eval_steps=500"], ["train.eval_steps"]),
        (["sparsify.schedule=[999]"], ["sparsify.schedule", "999"]),
        (["train.bogus=1"], ["train.bogus", "unknown key", "epochs"]),
    ]),
    "model_based_control": ("quickstart.yaml", [
        (["model.file=/nonexistent/model.npz"], ["model.file", "no such file"]),
        (["env_kwargs.shape=zz"], ["env_kwargs", "shape", "box"]),
        (["data.trajectories=1"], ["data.val_fraction"]),
        (["planners.mip_mpc.starts=[nope]"], ["planners.mip_mpc.starts", "nope", "greedy"]),
        (["planners.mppi.warm_tail=nope"], ["planners.mppi.warm_tail", "repeat"]),
        (["planners.cem.lr=1"], ["planners.cem", "lr", "elite_frac"]),
    ]),
    "graph_control": ("rope_mip_mpc.yaml", [
        ([ROPE, "env_kwargs.n_particles=6"], ["model.file", "8 particles", "env_kwargs.n_particles=6"]),
        ([ROPE, "env_kwargs.target=[[0,0],[0.1,0]]"], ["env_kwargs", "target", "(8, 2)"]),
        ([f"model.file={DATA / 'sort_graph_model.npz'}"], ["model.file", "controlkit/Sort-v0"]),
        ([f"model.file={DATA / 'push_16relu_model.npz'}"], ["model.file", "not a graph model"]),
        (["model.file=/nonexistent/model.npz"], ["model.file", "no such file"]),
        ([ROPE, "planners.mppi.type=greedy"], ["planners.mppi.type", "greedy", "mip_mpc"]),
        ([ROPE, "planners.mip_mpc.starts=[nope]"], ["planners.mip_mpc.starts", "nope", "safe"]),
        ([ROPE, "env=controlkit/Push-v0"], ["env", "controlkit/Rope-v0"]),
    ]),
    "swimmer": ("swimmer_ncap_vs_mlp.yaml", [
        (["policies.0.total_steps=abc"], ["policies.0.total_steps", "integer"]),
        (["policies.7.total_steps=1"], ["policies.7.total_steps", "out of range", "4 entries"]),
        (["policies.x.total_steps=1"], ["policies.x.total_steps", "list", "number"]),
        (["policies.0.bogus=1"], ["policies.0.bogus", "unknown key", "total_steps"]),
        (["n_links.x=1"], ["n_links.x", "single value"]),
    ]),
    "twin_simulate": ("twin_immune_baseline.yaml", [
        (["params.bogus=1"], ["params.bogus", "valid"]),
        (["control=[1,2,3,4,5]"], ["control", "antiviral"]),
        (["replicates=0"], ["replicates"]),
    ]),
    "twin_control": ("twin_immune.yaml", [
        (["data.trajectories=1"], ["data.val_fraction"]),
        (["evaluation.spread.bogus=1"], ["evaluation.spread.bogus"]),
        (["evaluation.spread.infectivity=.nan"], ["evaluation.spread.infectivity", "finite"]),
        (["controller_file=/nonexistent"], ["controller_file", "/nonexistent"]),
        (["methods=[nope]"], ["methods", "nope", "neural"]),
    ]),
    "twin_personalise": ("twin_personalise_predator_prey.yaml", [
        (["prior.lynx_reproduce=[0,1]"], ["prior.lynx_reproduce", "predator_prey"]),
        (["prior.sheep_reproduce=[0.5,0.1]"], ["prior.sheep_reproduce", "low < high"]),
        (["observation.observables=[lynx]"], ["observation.observables", "lynx", "sheep"]),
        (["observation.interval=500"], ["observation.interval", "task.burn_in"]),
        (["patients=0"], ["patients"]),
    ]),
}

# Mistakes any kind can make, tried on each kind's file.
COMMON = [
    (["name=../../escaped"], ["name", "plain folder name"]),
    (["name=/tmp/abs"], ["name", "plain folder name"]),
    (["seed=1", "seed=2"], ["seed", "twice"]),
    (["bogus_key=1"], ["bogus_key", "unknown key"]),
    (["seed"], ["override", "key=value"]),
    (["seed=-1"], ["seed"]),
]

MATRIX = [(kind, file, ov, words) for kind, (file, cases) in CASES.items() for ov, words in [*cases, *COMMON]]


def test_the_matrix_covers_every_kind_controlkit_kinds_lists():
    proc = subprocess.run([sys.executable, "-m", "controlkit.runner.cli", "kinds"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert listed == set(CASES)


def _check_one_line_exit_2(code: int, err: str, words: list[str], out: Path) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("controlkit: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


@pytest.mark.parametrize("kind, file, overrides, words", MATRIX,
                         ids=[f"{k}:{' '.join(ov)}" for k, _, ov, _ in MATRIX])
def test_bad_input_exits_2_in_one_line_before_any_folder(kind, file, overrides, words, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["run", str(EXPERIMENTS / file), *overrides, "--out", str(out), "-q"])
    _check_one_line_exit_2(code, capsys.readouterr().err, words, out)


def test_file_level_faults_exit_2_in_one_line(tmp_path, capsys):
    out = tmp_path / "runs"
    cases = {
        "latin1.yaml": (b"kind: rollout\nname: caf\xe9\n", ["not UTF-8", "0xe9"]),
        "dup.yaml": (b"kind: rollout\nseed: 1\nenv: Pendulum-v1\nseed: 2\n", ["seed", "duplicate key", "lines 2 and 4"]),
        "nested_dup.yaml": (b"kind: rollout\nenv_kwargs:\n  g: 1\n  g: 2\n", ["g", "duplicate key"]),
        "bad.yaml": (b"kind: rollout\nenv: [unclosed\n", ["malformed YAML", "line"]),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code = main(["run", str(path), "--out", str(out), "-q"])
        _check_one_line_exit_2(code, capsys.readouterr().err, words, out)
    # --out where a folder cannot be made (a file in the way): nothing is written, one line names --out
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = main(["run", str(EXPERIMENTS / "rollout_pendulum.yaml"), "--out", str(blocker / "runs"), "-q"])
    _check_one_line_exit_2(code, capsys.readouterr().err, ["--out", "a_file"], out)


def test_list_items_take_dotted_overrides(tmp_path):
    from controlkit.runner import load_config

    config = load_config(EXPERIMENTS / "swimmer_ncap_vs_mlp.yaml",
                         ["policies.0.total_steps=1000", "policies.1.mlp.hidden=[8]", "policies.3.es.sigma=0.5"])
    assert config.policies[0].total_steps == 1000 and config.policies[1].mlp.hidden == [8]
    assert config.policies[3].es.sigma == 0.5 and config.policies[2].total_steps == 50000


def test_subprocess_one_line_and_a_closed_pipe_end_quietly(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "controlkit.runner.cli", "run",
                          str(EXPERIMENTS / "rollout_pendulum.yaml"), "name=../../x", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "name" in bad.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path.parent / "x").exists()
    # `controlkit envs | head`: the reader leaves early. A pipe whose read end is closed before the command starts
    # makes every write fail (EPIPE), deterministically: the command must still end quietly.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "controlkit.runner.cli", "envs"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
