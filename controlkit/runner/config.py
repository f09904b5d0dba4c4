"""Experiment configs: YAML loading and dotted overrides (OmegaConf), typed validation per kind (pydantic).

Every user mistake ends as one :class:`~controlkit.core.errors.ControlkitError` whose message names the field and,
where there is a finite set, the valid choices.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from controlkit.core.errors import ControlkitError


def _check_run_name(name: str) -> str:
    # The name becomes a folder under --out: a path in it would write elsewhere (``name=../../x``).
    if not _NAME.fullmatch(name):
        raise ValueError("must be a plain folder name (letters, digits, '.', '_', '-'; no '/' and not starting "
                         "with '.'), since runs go to <out>/<name>/")
    return name


_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
RunName = Annotated[str, AfterValidator(_check_run_name)]
"""An experiment name: one plain folder name, so a run folder always lands inside ``--out``."""


class ExperimentConfig(BaseModel):
    """Fields every experiment has. Kinds subclass it and add their own (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="Which experiment kind runs this file.")
    name: RunName | None = Field(None, description="Experiment name; runs go to runs/<name>/. Default: file stem.")
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping with the same key twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML reports unhashable keys itself
            if key in seen:
                raise ControlkitError(f"{key}: duplicate key in the YAML (lines {seen[key] + 1} and "
                                      f"{key_node.start_mark.line + 1}); give each key once.")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_error(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def read_text(path: Path, what: str = "config file") -> str:
    """The UTF-8 text of ``path``, or a ControlkitError naming the file (missing, unreadable, not UTF-8)."""
    if not path.is_file():
        raise ControlkitError(f"{what}: no such file {str(path)!r}.")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ControlkitError(f"{what} {str(path)!r}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                              f"{exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise ControlkitError(f"{what} {str(path)!r}: cannot read it ({exc.strerror}).") from None


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """``["a.b=1", "l.0.x=y"]`` -> ``[("a.b", 1), ("l.0.x", "y")]`` (values parsed as YAML, as OmegaConf does).

    Raises:
        ControlkitError: an item without ``key=value``, or the same key twice.
    """
    parsed: list[tuple[str, Any]] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ControlkitError(f"override {item!r}: expected dotted.key=value.")
        if any(k == key for k, _ in parsed):
            raise ControlkitError(f"{key}: overridden twice on the command line; give it once.")
        try:  # OmegaConf's own value grammar (YAML scalars, [lists], {maps}, ${interpolations})
            parsed.append((key, OmegaConf.to_container(OmegaConf.from_dotlist([f"value={value}"]))["value"]))
        except (yaml.YAMLError, OmegaConfBaseException) as exc:
            detail = _yaml_error(exc) if isinstance(exc, yaml.YAMLError) else _omegaconf_message(exc)
            raise ControlkitError(f"{key}: cannot parse the value {value!r}: {detail}.") from None
    return parsed


def check_env_builds(env_id: str, kwargs: Mapping[str, Any], field: str = "env_kwargs", **make_kwargs: Any):
    """Build ``env_id`` with ``kwargs`` once, so a bad keyword *value* fails before a run starts; return the env.

    The caller closes it. Raises a ControlkitError naming ``field`` when the env refuses the values.
    """
    import controlkit.envs  # noqa: F401  (registers controlkit/* ids)

    check_env_kwargs(env_id, kwargs, field)
    try:
        return gym.make(env_id, **make_kwargs, **kwargs)
    except ControlkitError as exc:
        raise ControlkitError(f"{field}: {exc}") from None
    except (TypeError, ValueError, AssertionError, gym.error.Error) as exc:
        raise ControlkitError(f"{field}: {env_id} refuses these values ({type(exc).__name__}: {exc}).") from None


def load_yaml(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load a YAML file and apply ``a.b=value`` overrides; return a plain dict.

    An override reaches into lists by index (``policies.0.total_steps=1000``); a key the file does not have is
    added (the schema then says whether it is valid).
    """
    path = Path(path)
    text = read_text(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ControlkitError(f"config file {str(path)!r}: malformed YAML: {_yaml_error(exc)}.") from None
    if not isinstance(raw, dict):
        raise ControlkitError(f"config file {str(path)!r}: the top level must be a mapping of keys to values.")
    cfg = _omegaconf(raw, path)
    for key, value in parse_overrides(overrides):
        _apply_override(cfg, key, value)
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ControlkitError(f"config file {str(path)!r}: {_omegaconf_message(exc)}") from None
    data.setdefault("name", path.stem)
    return data


def _omegaconf(raw: dict[str, Any], path: Path):
    try:
        return OmegaConf.create(raw)
    except OmegaConfBaseException as exc:
        raise ControlkitError(f"config file {str(path)!r}: {_omegaconf_message(exc)}") from None


def _apply_override(cfg, key: str, value: Any) -> None:
    """Set ``key`` (dots through mappings, integer indices through lists) in ``cfg``, naming ``key`` on failure."""
    node = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth + 1])
        last = depth == len(parts) - 1
        if OmegaConf.is_list(node):
            if not part.lstrip("-").isdigit():
                raise ControlkitError(f"{key}: {'.'.join(parts[:depth]) or 'the config'} is a list; "
                                      f"index it with a number, not {part!r}.")
            index = int(part)
            if not 0 <= index < len(node):
                raise ControlkitError(f"{key}: index {index} is out of range; {'.'.join(parts[:depth])} has "
                                      f"{len(node)} entries (0 to {len(node) - 1}).")
            if last:
                node[index] = value
                return
            node = node[index]
        elif OmegaConf.is_dict(node):
            if last:
                node[part] = value
                return
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            raise ControlkitError(f"{key}: {'.'.join(parts[:depth])} is a single value ({node!r}), so {here!r} "
                                  "cannot be set inside it.")


def _omegaconf_message(exc: OmegaConfBaseException) -> str:
    # OmegaConf appends a multi-line "full_key/object_type" block; the first line says what is wrong.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


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
        elif not loc:  # a check across fields: its message names them
            parts.append(err["msg"].removeprefix("Value error, "))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {err.get('input')!r})")
    return f"invalid {schema.__name__} config: " + "; ".join(parts) + "."


def _valid_keys(schema: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    model: Any = schema
    for part in loc:
        if isinstance(part, int):  # an element of a list field: its item type
            model = next((a for a in typing.get_args(model) if a is not type(None)), None)
            continue
        model = next((a for a in (model, *typing.get_args(model)) if hasattr(a, "model_fields")), None)
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    model = next((a for a in (model, *typing.get_args(model)) if hasattr(a, "model_fields")), None)
    return sorted(getattr(model, "model_fields", {}))


def config_to_yaml(config: BaseModel) -> str:
    """The fully resolved config as YAML (what goes into a run's config.yaml)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


__all__ = [
    "EnvId",
    "RunName",
    "ExperimentConfig",
    "check_env_builds",
    "check_env_kwargs",
    "config_to_yaml",
    "load_yaml",
    "parse_overrides",
    "read_text",
]
