"""The planning-quality benchmark's bookkeeping: which budget levels share a plan, how references merge, and the
issue #19 target check (the planners themselves run in tests/planning and tests/tasks)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import planning_quality as pq  # noqa: E402


def _work(budget: float) -> dict:
    return {**pq.WORK[budget], "passes": {k: max(1, round(budget / v)) for k, v in pq.PASS_S.items()}}


def test_same_work_shares_a_plan_only_in_the_deterministic_mode():
    key = {b: {n: pq.work_key(n, _work(b), b, wall=False) for n in pq.PLANNERS} for b in (0.05, 0.3, 1.0)}
    # one branch-and-bound node at 0.05 and 0.3 s: the same plan; ten nodes at 1 s
    assert key[0.05]["mip"] == key[0.3]["mip"] != key[1.0]["mip"]
    # the samplers' passes and the window search's slices grow with the budget
    assert key[0.05]["starts_only"] == key[0.3]["starts_only"]
    assert key[0.05]["mppi"] != key[0.3]["mppi"]
    assert key[0.05]["lns_window"] != key[0.3]["lns_window"]
    # different variants never share a key, even with the same work
    assert key[0.3]["mip"] != key[0.3]["mip_heur"]
    assert pq.work_key("mip", _work(0.3), 0.3, wall=True) is None


def test_merged_reference_is_the_lowest_and_proven_only_if_nothing_beat_it():
    def ref(case: int, cost: float, proven: bool) -> dict:
        return {"task": "push", "H": 5, "case": case, "reference": cost, "proven": proven,
                "source": "proven optimum" if proven else "best found (x)"}

    merged = {r["case"]: r for r in pq.merge_references(
        [ref(0, 1.0, True), ref(0, 1.0 + 1e-9, False), ref(1, 2.0, True), ref(1, 1.5, False)])}
    assert merged[0]["reference"] == 1.0 and merged[0]["proven"]
    assert merged[1]["reference"] == 1.5 and not merged[1]["proven"]


def test_targets_count_cases_within_one_percent_certified_and_the_cost_ratios():
    refs = [{"task": t, "H": h, "case": c, "reference": 1.0, "proven": c == 0}
            for t in ("push", "obstacle") for h in (5, 10) for c in range(4)]
    runs = []
    for t in ("push", "obstacle"):
        for h in (5, 10):
            for c in range(4):
                runs.append({"task": t, "H": h, "case": c, "budget": 1.0, "planner": "mppi", "cost": 2.0})
                runs.append({"task": t, "H": h, "case": c, "budget": 1.0, "planner": "starts_only", "cost": 3.0})
                runs.append({"task": t, "H": h, "case": c, "budget": 1.0, "planner": "descent", "cost": 1.5})
                # within 1 % on cases 0-2, certified (gap <= 1 %) on case 0 only, no gap (NaN) on case 3
                runs.append({"task": t, "H": h, "case": c, "budget": 1.0, "planner": "mip",
                             "cost": 1.005 if c < 3 else 1.2, "gap": [0.005, 0.3, 0.6, float("nan")][c]})
    t = pq.targets(runs, refs)
    row = {(r["H"], r["planner"]): r for r in t["certificate"]}
    assert row[(5, "mip")]["cases"] == 8 and row[(5, "mip")]["proven_refs"] == 2
    assert row[(5, "mip")]["within_1pct"] == pytest.approx(0.75)
    assert row[(5, "mip")]["certified_1pct"] == pytest.approx(0.25)
    assert row[(5, "mppi")]["within_1pct"] == 0.0 and "certified_1pct" not in row[(5, "mppi")]
    # ratios only for the MILP variants on obstacle/pushT at H >= 10
    (ratio,) = t["ratios"]
    assert (ratio["task"], ratio["H"], ratio["planner"]) == ("obstacle", 10, "mip")
    assert ratio["vs_mppi"]["median"] == pytest.approx(1.005 / 2.0)
    assert ratio["vs_mppi"]["meets"] == pytest.approx(0.0)  # 0.5025 > 0.5 on cases 0-2, 0.6 on case 3
    assert ratio["vs_best_local"]["median"] == pytest.approx(1.005 / 1.5)
    assert ratio["vs_best_local"]["meets"] == pytest.approx(1.0)  # <= 0.9x the descent on every case
