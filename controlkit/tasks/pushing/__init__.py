"""Pushing on the table (``controlkit/Push-v0``, ``controlkit/Sort-v0``): the model-free greedy reference and the
simulator-backed dynamics, candidate starts for MIP-MPC, the sort sequencer (which box, where to, how the pusher
gets there), routing round keep-out boxes, and planning on graph models (sorting by a cost over all boxes, shaping
the rope of ``controlkit/Rope-v0``)."""

from controlkit.tasks.pushing.aggregate import (
    ActionRecorder,
    AggregateConfig,
    AggregateResult,
    aggregate,
    closed_loop_data,
    rollout_position_errors,
)
from controlkit.tasks.pushing.graph_sort import (
    GraphSortTask,
    SortExplorer,
    check_graph_env,
    collect_sort_data,
    make_graph_planner,
    sort_goal,
    sort_weights,
)
from controlkit.tasks.pushing.greedy import (
    GreedyPusher,
    PushThroughExplorer,
    SimDynamics,
    pre_push_point,
    surface_reach,
)
from controlkit.tasks.pushing.rope_task import RopeTask, check_rope_env, make_rope_planner, rope_goal, rope_weights
from controlkit.tasks.pushing.routing import next_waypoint
from controlkit.tasks.pushing.sort_task import Leg, SortSequencer
from controlkit.tasks.pushing.starts import PipelineMIP, StartsOnly
from controlkit.tasks.pushing.task import (
    CostConfig,
    EpisodeResult,
    PlannerSpec,
    PushExplorer,
    Task,
    fold_frame,
    frame_matrix,
    load_network,
    make_planner,
    run_episode,
    summarise,
)

__all__ = [
    "ActionRecorder",
    "AggregateConfig",
    "AggregateResult",
    "aggregate",
    "closed_loop_data",
    "rollout_position_errors",
    "CostConfig",
    "EpisodeResult",
    "GraphSortTask",
    "SortExplorer",
    "check_graph_env",
    "collect_sort_data",
    "make_graph_planner",
    "sort_goal",
    "sort_weights",
    "GreedyPusher",
    "Leg",
    "PipelineMIP",
    "PlannerSpec",
    "PushExplorer",
    "PushThroughExplorer",
    "RopeTask",
    "SimDynamics",
    "SortSequencer",
    "StartsOnly",
    "Task",
    "fold_frame",
    "frame_matrix",
    "load_network",
    "make_planner",
    "make_rope_planner",
    "check_rope_env",
    "rope_goal",
    "rope_weights",
    "next_waypoint",
    "pre_push_point",
    "surface_reach",
    "run_episode",
    "summarise",
]
