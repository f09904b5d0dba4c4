"""MIPMPC(highs_options=...): passed to HiGHS for the MILP, checked at construction."""

import numpy as np
import pytest

from controlkit.core.errors import ControlkitError
from controlkit.models.network import CompactNetwork
from controlkit.planning.mip_mpc import MIPMPC


def net() -> CompactNetwork:
    rng = np.random.default_rng(0)
    return CompactNetwork([rng.normal(size=(6, 4)), rng.normal(size=(2, 6)) * 0.1], [rng.normal(size=6) * 0.1,
                          np.zeros(2)], [np.ones(6, bool)], 2, 2)


def test_options_reach_highs_and_leave_the_optimum_unchanged():
    plain = MIPMPC(net(), 3, [-1, -1], [1, 1], x_low=[-5, -5], x_high=[5, 5], mip_gap=0.0, tighten_steps=0)
    tuned = MIPMPC(net(), 3, [-1, -1], [1, 1], x_low=[-5, -5], x_high=[5, 5], mip_gap=0.0, tighten_steps=0,
                   highs_options={"presolve": "off", "mip_detect_symmetry": False})
    a, b = plain.plan([0.1, -0.2], [1.0, 0.5]), tuned.plan([0.1, -0.2], [1.0, 0.5])
    assert tuned._milp.h.getOptionValue("presolve")[-1] == "off"
    assert plain._milp.h.getOptionValue("presolve")[-1] != "off"
    np.testing.assert_allclose(a.objective, b.objective, atol=1e-7)


@pytest.mark.parametrize("options, field", [({"presolv": "off"}, "highs_options.presolv"),
                                            ({"presolve": 3}, "highs_options.presolve")])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(ControlkitError, match=field):
        MIPMPC(net(), 3, [-1, -1], [1, 1], highs_options=options)
    with pytest.raises(ControlkitError, match="highs_options: need backend='highs'"):
        MIPMPC(net(), 3, [-1, -1], [1, 1], backend="pyomo", highs_options={"presolve": "off"})
