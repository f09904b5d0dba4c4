"""Experiment configs: YAML loading and dotted overrides (OmegaConf), typed validation per kind (pydantic).

Every user mistake ends as one :class:`~controlkit.core.errors.ControlkitError` whose message names the field and,
where there is a finite set, the valid choices.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from controlkit.core.errors import ControlkitError


class ExperimentConfig(BaseModel):
    """Fields every experiment has. Kinds subclass it and add their own (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="Which experiment kind runs this file.")
    name: str | None = Field(None, description="Experiment name; runs go to runs/<name>/. Default: file stem.")
    seed: int | None = Field(None, ge=0, description="Root seed; drawn at random and recorded when omitted.")


def _check_env_id(env_id: str) -> str:
    import controlkit.envs  # noqa: F401  (registers controlkit/* ids)

    try:
        module, _, name = env_id.rpartition(":")
        if module:  # "package.module:Env-v0": the module registers the id when imported (as gym.make does it)
            importlib.import_module(module)
        gym.spec(name)
    except (gym.error.Error, ModuleNotFoundError, ImportError) as exc:
        ours = [i for i in gym.registry if i.startswith("controlkit/")]
        raise ValueError(
            f"unknown gymnasium env id {env_id!r} ({exc}); controlkit's ids: {', '.join(ours) or 'none yet'}; "
            "any id registered with gymnasium (e.g. Pendulum-v1) works too"
        ) from None
    return env_id


EnvId = Annotated[str, AfterValidator(_check_env_id)]
"""A gymnasium env id that must be registered (checked at validation time)."""


def check_env_kwargs(env_id: str, kwargs: Mapping[str, Any], field: str = "env_kwargs") -> None:
    """Raise a ControlkitError if ``kwargs`` names arguments the env's constructor does not take."""
    spec = gym.spec(env_id.rpartition(":")[2])  # the module part was imported when env_id was validated
    entry = spec.entry_point
    if isinstance(entry, str):
        from gymnasium.envs.registration import load_env_creator

        entry = load_env_creator(entry)
    params = inspect.signature(entry).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    for key in kwargs:
        if key not in valid:
            raise ControlkitError(f"{field}.{key}: {env_id} takes no argument {key!r}; valid: {', '.join(valid)}.")


def load_yaml(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load a YAML file and apply ``a.b=value`` overrides; return a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ControlkitError(f"config file: no such file {str(path)!r}.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ControlkitError(f"config file {str(path)!r}: malformed YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ControlkitError(f"config file {str(path)!r}: the top level must be a mapping of keys to values.")
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ControlkitError(f"override {item!r}: expected dotted.key=value.")
    try:
        cfg = OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist(list(overrides)))
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ControlkitError(f"config file {str(path)!r}: {exc}") from None
    data.setdefault("name", path.stem)
    return data


def format_validation_error(exc: ValidationError, schema: type[BaseModel]) -> str:
    """One paragraph naming each bad field, what is wrong, and the valid keys where a key is unknown."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            keys = _valid_keys(schema, err["loc"][:-1])
            parts.append(f"{loc}: unknown key; valid keys here: {', '.join(keys)}")
        elif err["type"] == "missing":
            parts.append(f"{loc}: missing required field")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {err.get('input')!r})")
    return f"invalid {schema.__name__} config: " + "; ".join(parts) + "."


def _valid_keys(schema: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    model: Any = schema
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}))


def config_to_yaml(config: BaseModel) -> str:
    """The fully resolved config as YAML (what goes into a run's config.yaml)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


__all__ = [
    "EnvId",
    "ExperimentConfig",
    "check_env_kwargs",
    "config_to_yaml",
    "load_yaml",
]
