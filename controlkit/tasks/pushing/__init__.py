"""Pushing on the table (``controlkit/Push-v0``, ``controlkit/Sort-v0``): the model-free greedy reference and the
simulator-backed dynamics, candidate starts for MIP-MPC, the sort sequencer (which box, where to, how the pusher
gets there) and routing round keep-out boxes."""

from controlkit.tasks.pushing.greedy import GreedyPusher, PushThroughExplorer, SimDynamics, pre_push_point
from controlkit.tasks.pushing.routing import next_waypoint
from controlkit.tasks.pushing.sort_task import Leg, SortSequencer
from controlkit.tasks.pushing.starts import PipelineMIP

__all__ = [
    "GreedyPusher",
    "Leg",
    "PipelineMIP",
    "PushThroughExplorer",
    "SimDynamics",
    "SortSequencer",
    "next_waypoint",
    "pre_push_point",
]
