"""The ``graph_control`` kind end to end (tiny) on the rope and on Sort-v0, and its bad input: one line naming the
field, exit 2, no run folder."""

import json
from pathlib import Path

import pytest

from controlkit.runner.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
DATA = Path(__file__).resolve().parents[1] / "data"
MODELS = {"rope_mip_mpc.yaml": DATA / "rope_graph_model.npz", "sort_graph.yaml": DATA / "sort_graph_model.npz"}


def _run(tmp_path, file: str, *overrides: str) -> tuple[int, Path]:
    out = tmp_path / "runs"
    return main(["run", str(EXPERIMENTS / file), *overrides, "--out", str(out), "-q"]), out


@pytest.mark.parametrize("file, planners", [
    ("rope_mip_mpc.yaml", ["planners.mip_mpc.warm_samples=50", "planners.mip_mpc.polish_lps=5", "planners.mppi.n_samples=50",
                           "planners.cem.n_samples=40", "planners.cem.iterations=2"]),
    ("sort_graph.yaml", ["planners.mip_mpc.warm_samples=50", "planners.mip_mpc.time_limit=null",
                         "planners.mip_mpc.polish_lps=5", "planners.mip_mpc.branch_and_bound=false",
                         "planners.mip_mpc.tighten_steps=0",
                         "planners.mppi.n_samples=50"]),
])
def test_tiny_run_writes_a_summary_per_planner_and_plots(tmp_path, file, planners):
    code, out = _run(tmp_path, file, f"model.file={MODELS[file]}", "episodes=1", "max_steps=3", "cost.horizon=3",
                     *planners)
    assert code == 0
    (run,) = [p for p in out.glob("*/*") if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["controllers"]) == ({"mip_mpc", "mppi", "cem"} if "rope" in file else {"mip_mpc", "mppi"})
    for c in summary["controllers"].values():
        assert c["episodes"] == 1 and c["steps_mean"] == 3 and c["fallbacks"] == 0
    assert summary["model"]["n_relu"] > 0
    for plot in summary["plots"]:
        assert Path(plot).is_file()
    if "rope" in file:
        assert any(p.endswith("rope_shapes.png") for p in summary["plots"])


SORT = f"model.file={DATA / 'sort_graph_model.npz'}"


@pytest.mark.parametrize("overrides, words", [
    ([SORT, "env_kwargs.n_objects=5"], ["env_kwargs", "n_objects", "2 to 4"]),
    ([f"model.file={DATA / 'rope_graph_model.npz'}"], ["model.file", "controlkit/Rope-v0"]),
    ([SORT, "env_kwargs.shape=t"], ["model.file", "shape 'box'", "env_kwargs.shape='t'"]),
    ([SORT, "planners.mppi.bogus=1"], ["planners.mppi", "bogus"]),
])
def test_sort_bad_input_exits_2_before_any_folder(tmp_path, capsys, overrides, words):
    code, out = _run(tmp_path, "sort_graph.yaml", *overrides)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("controlkit: error: "), err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists() or not any(out.rglob("*"))
