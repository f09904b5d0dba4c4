"""The registry of twins: one :class:`TwinSpec` per name ties a Mesa model to its one objective and its default
control task.

Everything that controls a twin reads the same spec: the gym env (``controlkit/PredatorPrey-v0``, ...; its reward
is minus the spec's objective), the ``twin_control`` and ``twin_simulate`` experiments (``twin:`` in YAML) and
:func:`make_task`. A user's twin plugs in with :func:`register_twin`, or from YAML as ``twin: "package.module:SPEC"``
(the module is imported; a module that calls :func:`register_twin` also registers its gym env).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from controlkit.core.errors import ControlkitError
from controlkit.core.registry import Registry

if TYPE_CHECKING:
    from controlkit.twins._common import TwinModel
    from controlkit.twins.objectives import Objective, TwinTask

TASK_FIELDS = ("burn_in", "interval", "decisions", "apply", "u_high")


@dataclasses.dataclass(frozen=True)
class TwinSpec:
    """A twin as the control machinery sees it.

    Attributes:
        name: Registry name (``twin:`` in YAML).
        model: The :class:`~controlkit.twins.TwinModel` subclass.
        objective: The twin's :class:`~controlkit.twins.objectives.Objective` subclass: the one cost its gym env
            rewards and ``twin_control`` optimises.
        params: Default parameter overrides of the control task (e.g. whole-animal culls).
        task: Default timing of the control task: any of ``burn_in``, ``interval``, ``decisions``, ``apply``,
            ``u_high`` (see :class:`~controlkit.twins.objectives.TwinTask`).
        objective_settings: Default objective settings (e.g. ``target``) and ``weights``.
        observation: Default :class:`~controlkit.twins.observation.ObservationModel` fields: what a clinic (or a
            census) measures of this twin.
        env_id: Gymnasium id to register the twin's env under (``None``: no env; the built-in twins' envs are
            listed in ``controlkit.envs``).
    """

    name: str
    model: type[TwinModel]
    objective: type[Objective]
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    task: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    objective_settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    observation: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env_id: str | None = None

    def __post_init__(self) -> None:
        for key in self.task:
            if key not in TASK_FIELDS:
                raise ControlkitError(f"task.{key}: unknown task setting of twin {self.name!r}; valid: "
                                      f"{', '.join(TASK_FIELDS)}.")
        if self.objective.TWIN != self.name:
            raise ControlkitError(f"objective: {self.objective.__name__} scores twin {self.objective.TWIN!r}, "
                                  f"not {self.name!r} (set its TWIN to the spec's name).")


def _check_spec(name: str, obj: Any) -> TwinSpec:
    if not isinstance(obj, TwinSpec):
        raise ControlkitError(f"twin: {name!r} is a {type(obj).__name__}, not a controlkit.twins.TwinSpec.")
    return obj


TWINS: Registry[TwinSpec] = Registry("twin", builtins={
    "predator_prey": "controlkit.twins.registry:PREDATOR_PREY",
    "immune": "controlkit.twins.registry:IMMUNE",
    "metabolic": "controlkit.twins.registry:METABOLIC",
    "immune_pk": "controlkit.twins.immune_pk:IMMUNE_PK",
    "predator_prey_paper": "controlkit.twins.companion:PREDATOR_PREY_PAPER",
    "metabolic_paper": "controlkit.twins.companion:METABOLIC_PAPER",
}, group="controlkit.twins", check=_check_spec)
"""The twin registry (:class:`controlkit.core.registry.Registry`): names, installed entry points in the group
``controlkit.twins``, and ``"module:SPEC"`` paths."""


def register_twin(spec: TwinSpec) -> TwinSpec:
    """Register ``spec`` under ``spec.name`` (replacing one of the same name) and its gym env if it names one.

    Returns:
        ``spec``, so a module can write ``SPEC = register_twin(TwinSpec(...))``.
    """
    TWINS.register(spec.name, spec)
    if spec.env_id is not None:
        import gymnasium as gym

        gym.register(spec.env_id, entry_point="controlkit.envs.twin_envs:TwinEnv", kwargs={"twin": spec.name},
                     max_episode_steps=int(spec.task.get("decisions", 30)))
    return spec


def twin_names() -> list[str]:
    """Every registered twin name."""
    return TWINS.names()


def get_twin(name: str) -> TwinSpec:
    """The spec registered as ``name``, or the :class:`TwinSpec` at a ``"package.module:SPEC"`` path.

    Raises:
        ControlkitError: an unknown name (listing the registered ones) or a path that holds no TwinSpec.
    """
    return TWINS.get(name)


def make_twin(name: str, params: Mapping[str, Any] | None = None, seed: int | None = None) -> TwinModel:
    """Build the twin registered as ``name`` with parameter overrides (the model's own defaults otherwise)."""
    return get_twin(name).model(dict(params or {}), seed=seed)


def make_task(twin: str, params: Mapping[str, Any] | None = None, weights: Mapping[str, float] | None = None,
              objective_settings: Mapping[str, Any] | None = None, **timing: Any) -> TwinTask:
    """The control task of ``twin``: the spec's defaults overridden by the given parameters, objective weights
    and settings, and timing (``burn_in``, ``interval``, ``decisions``, ``apply``, ``u_high``; ``None`` keeps
    the default).

    Raises:
        ControlkitError: an unknown twin, timing field, objective term or setting, named.
    """
    from controlkit.twins.objectives import TwinTask, make_objective

    spec = get_twin(twin)
    for key in timing:
        if key not in TASK_FIELDS:
            raise ControlkitError(f"task.{key}: unknown task setting; valid: {', '.join(TASK_FIELDS)}.")
    merged_params = {**spec.params, **(params or {})}
    settings = {**spec.objective_settings, **(objective_settings or {})}
    merged_weights = {**settings.pop("weights", {}), **(weights or {})}
    objective = make_objective(spec.name, merged_weights, merged_params, **settings)
    task = {**spec.task, **{k: v for k, v in timing.items() if v is not None}}
    if task.get("u_high") is not None:
        task["u_high"] = tuple(float(v) for v in task["u_high"])
    # The task keeps the name as given: a worker process resolves a "module:SPEC" path again on its own.
    return TwinTask(twin, merged_params, objective, **task)


def make_observation(twin: str, **overrides: Any):
    """The twin's default :class:`~controlkit.twins.observation.ObservationModel` with field overrides (without a
    default, the twin's first observable, 10 % noise, every 10 ticks).

    Raises:
        ControlkitError: an unknown field or observable, or an invalid value, named.
    """
    from controlkit.twins.observation import ObservationModel

    spec = get_twin(twin)
    fields = {f.name for f in dataclasses.fields(ObservationModel)}
    for key in overrides:
        if key not in fields:
            raise ControlkitError(f"observation.{key}: unknown field; valid: {', '.join(sorted(fields))}.")
    settings = {"observables": spec.model.OBSERVABLES[:1], **spec.observation,
                **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("noise", "floor"):
        if isinstance(settings.get(key), list):
            settings[key] = tuple(settings[key])
    model = ObservationModel(**settings)
    model.columns(spec.model.OBSERVABLES)
    return model


from controlkit.twins.immune import ImmuneTwin  # noqa: E402  (the built-in specs need the models)
from controlkit.twins.metabolic import MetabolicPathway  # noqa: E402
from controlkit.twins.objectives import ImmuneObjective, MetabolicObjective, PredatorPreyObjective  # noqa: E402
from controlkit.twins.predator_prey import PredatorPrey  # noqa: E402

# The defaults of docs/twin_control.md's experiments: whole animals culled once per 10 ticks after a burn-in;
# two doses held per 6-hour interval from 6 hours after inoculation; inflow held per 10 ticks into an empty pathway.
PREDATOR_PREY = TwinSpec(
    "predator_prey", PredatorPrey, PredatorPreyObjective, params={"removal": "count", "max_removal_count": 20},
    task={"burn_in": 500, "interval": 10, "decisions": 30, "apply": "pulse"},
    objective_settings={"target": (220.0, 35.0)},
    # a census of both species every 10 ticks, 10 % error
    observation={"observables": ("sheep", "wolves"), "noise": 0.1, "interval": 10})
IMMUNE = TwinSpec(
    "immune", ImmuneTwin, ImmuneObjective, params={"width": 31, "height": 31},
    task={"burn_in": 36, "interval": 36, "decisions": 28, "apply": "hold"},
    # blood markers every 6 hours (virus load, pro-inflammatory cytokines), 20 % error, results an hour later
    observation={"observables": ("virus", "pro_inflammatory"), "noise": 0.2, "interval": 36, "delay": 6,
                 "floor": 0.01})
METABOLIC = TwinSpec(
    "metabolic", MetabolicPathway, MetabolicObjective,
    params={"scale": 0.05, "initial_S": 0, "initial_P": 0, "initial_Q": 0},
    task={"burn_in": 0, "interval": 10, "decisions": 40, "apply": "hold", "u_high": (300.0,)},
    # product and substrate assays every 10 ticks, 5 % error
    observation={"observables": ("R", "S"), "noise": 0.05, "interval": 10})


__all__ = ["IMMUNE", "METABOLIC", "PREDATOR_PREY", "TASK_FIELDS", "TWINS", "TwinSpec", "get_twin",
           "make_observation", "make_task", "make_twin", "register_twin", "twin_names"]
