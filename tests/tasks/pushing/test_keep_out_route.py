"""Routing round a keep-out box: the next waypoint of the shortest path from the object to its target."""

import numpy as np
import pytest

from controlkit.tasks.pushing.routing import next_waypoint

LOW, HIGH, C = np.array([-0.07, -0.07]), np.array([0.07, 0.07]), 0.02


def _path_length(start, target):
    """Follow the waypoints to the target and add up the legs (a corner is reached exactly)."""
    total, here = 0.0, np.asarray(start, dtype=float)
    for _ in range(5):
        nxt = next_waypoint(here, target, LOW, HIGH, C)
        total += float(np.linalg.norm(nxt - here))
        if np.allclose(nxt, target):
            return total
        here = nxt
    raise AssertionError("no path to the target in five legs")


def test_a_clear_line_goes_straight_to_the_target():
    np.testing.assert_allclose(next_waypoint([-0.15, 0.1], [0.15, 0.1], LOW, HIGH, C), [0.15, 0.1])


@pytest.mark.parametrize("start, target, corner", [
    ([-0.15, 0.05], [0.15, 0.02], [-0.09, 0.09]),  # above the centre line: over the top
    ([-0.15, -0.05], [0.15, -0.02], [-0.09, -0.09]),  # below: underneath
    ([-0.09, 0.09], [0.15, 0.02], [0.09, 0.09]),  # at the first corner: the second one
])
def test_a_blocked_line_heads_for_the_nearer_corner(start, target, corner):
    np.testing.assert_allclose(next_waypoint(start, target, LOW, HIGH, C), corner)


def test_the_route_is_the_shortest_round_the_box():
    start, target = np.array([-0.15, 0.01]), np.array([0.15, 0.0])
    over = (np.linalg.norm([-0.09, 0.09] - start) + 0.18 + np.linalg.norm(target - [0.09, 0.09]))
    assert _path_length(start, target) == pytest.approx(over)  # the top, shorter than the bottom by the offset


def test_from_inside_the_box_the_route_starts_beyond_the_nearest_side():
    # out through the right side, then the target is behind the box: over the top corner (the target is above)
    np.testing.assert_allclose(next_waypoint([0.06, 0.0], [-0.2, 0.02], LOW, HIGH, C), [0.09, 0.09])
    # out through the bottom, then round the bottom-right corner
    np.testing.assert_allclose(next_waypoint([0.0, -0.065], [0.2, 0.2], LOW, HIGH, C), [0.09, -0.09])
    # out through the bottom, and the target is in view from there
    np.testing.assert_allclose(next_waypoint([0.0, -0.065], [0.2, -0.1], LOW, HIGH, C), [0.2, -0.1])


def test_a_target_inside_the_box_is_returned_as_it_is():
    np.testing.assert_allclose(next_waypoint([-0.15, 0.0], [0.0, 0.0], LOW, HIGH, C), [0.0, 0.0])
