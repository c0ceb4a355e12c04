"""Typed dataclass configs loaded from YAML, with a registry of named choices.

A config is a tree of dataclasses. Fields whose type is a registered *choice base* (for example
``ArmConfig``) are written in YAML as a mapping with a ``type`` key naming the registered subclass::

    arm: {type: franka, ip: 172.16.0.2}

Every error names the file, the dotted key and what would have been accepted, so a typo in a
cell YAML fails at load time with the fix in the message::

    configs/cells/lab.yaml: arm.type: unknown arm type 'frnaka'; registered: franka, sim, ur, xarm

Command-line overrides use the same paths: ``--set arm.ip=10.0.0.2 --set cameras.0.fps=15``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from robolearn.errors import RobolearnError

T = TypeVar("T")


class ConfigError(RobolearnError, ValueError):
    """A config that cannot be loaded; the message names the source, the key and the fix."""

    def __init__(self, source: str, key: str, problem: str):
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + problem)


class ChoiceRegistry:
    """Registry of named config subclasses of one base (arms, cameras, teleops, tasks, ...).

    Usage::

        @dataclass
        class ArmConfig(ChoiceBase): ...

        @ArmConfig.register("sim")
        @dataclass
        class SimArmConfig(ArmConfig): ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._choices: dict[str, type] = {}
        self._loaders: list[str] = []
        self._loading = threading.RLock()  # two threads loading configs at once both see every choice

    def add(self, name: str, cls: type) -> None:
        if name in self._choices and self._choices[name] is not cls:
            raise ValueError(f"{self.kind} type {name!r} is registered twice")
        self._choices[name] = cls

    def add_lazy_module(self, module: str) -> None:
        """A module that registers choices when imported (keeps hardware SDK imports lazy)."""
        self._loaders.append(module)

    def _load_all(self) -> None:
        import importlib

        with self._loading:
            while self._loaders:
                importlib.import_module(self._loaders[0])
                self._loaders.pop(0)

    def names(self) -> list[str]:
        self._load_all()
        return sorted(self._choices)

    def get(self, name: str) -> type:
        self._load_all()
        return self._choices[name]

    def __contains__(self, name: str) -> bool:
        self._load_all()
        return name in self._choices


class ChoiceBase:
    """Base of a family of configs chosen by a ``type`` key. Subclass it once per family and give
    the subclass a ``registry``; members register with ``@Family.register(name)``."""

    registry: typing.ClassVar[ChoiceRegistry]

    @classmethod
    def register(cls, name: str) -> Callable[[type[T]], type[T]]:
        def wrap(sub: type[T]) -> type[T]:
            cls.registry.add(name, sub)
            sub.type_name = name  # type: ignore[attr-defined]
            return sub

        return wrap

    @property
    def type(self) -> str:
        return type(self).type_name  # type: ignore[attr-defined]


def _type_label(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _is_choice_base(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, ChoiceBase) and "registry" in tp.__dict__


def _choice_base_of(tp: type) -> type | None:
    for klass in tp.__mro__:
        if _is_choice_base(klass):
            return klass
    return None


def _convert(value: Any, tp: Any, source: str, key: str) -> Any:
    """Convert one YAML value to ``tp``, raising ConfigError with the key on mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            return _convert(value, options[0], source, key)
        errors = []
        for arg in options:
            try:
                return _convert(value, arg, source, key)
            except ConfigError as err:
                errors.append(err.problem)
        raise ConfigError(source, key, " or ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(source, key, f"got {value!r}; allowed values: {', '.join(map(repr, args))}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, f"expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(source, key, f"expected {len(args)} values, got {len(value)}: {value!r}")
            return tuple(_convert(v, a, source, f"{key}.{i}") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, source, f"{key}.{i}") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a mapping, got {type(value).__name__} {value!r}")
        val_tp = args[1] if args else Any
        return {k: _convert(v, val_tp, source, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # already typed (a pipeline hands its loaded cell to each stage)
            return value
        return from_dict(tp, value, source, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(source, key, f"expected a path, got {value!r}")
        return Path(value)
    return value


def from_dict(cls: type[T], data: Any, source: str = "<dict>", key: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, resolving registered choices by their ``type`` key."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, key, f"expected a mapping for {_type_label(cls)}, got {data!r}")
    data = dict(data)
    base = _choice_base_of(cls)
    if base is not None:
        registry: ChoiceRegistry = base.registry
        type_key = f"{key}.type" if key else "type"
        if "type" in data:
            name = data.pop("type")
            if name not in registry:
                raise ConfigError(
                    source, type_key,
                    f"unknown {registry.kind} type {name!r}; registered: {', '.join(registry.names())}",
                )
            cls = registry.get(name)
        elif cls is base:
            raise ConfigError(
                source, type_key, f"missing; set it to one of: {', '.join(registry.names())}"
            )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        sub = f"{key}.{unknown[0]}" if key else str(unknown[0])
        raise ConfigError(
            source, sub, f"unknown key for {_type_label(cls)}; allowed keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        sub = f"{key}.{name}" if key else name
        kwargs[name] = _convert(value, hints[name], source, sub)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        sub = f"{key}.{missing[0]}" if key else missing[0]
        raise ConfigError(source, sub, f"required key missing for {_type_label(cls)}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(source, key, str(err)) from err


def to_dict(config: Any) -> Any:
    """The inverse of ``from_dict``: plain data with ``type`` keys for choices (YAML/JSON-safe)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out: dict[str, Any] = {}
        if _choice_base_of(type(config)) is not None and hasattr(type(config), "type_name"):
            out["type"] = type(config).type_name
        for f in dataclasses.fields(config):
            out[f.name] = to_dict(getattr(config, f.name))
        return out
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"arm.ip=10.0.0.2"`` → ``(["arm", "ip"], "10.0.0.2")``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError("--set", text, "expected KEY=VALUE, for example --set control_hz=20")
    path, raw = text.split("=", 1)
    return path.strip().split("."), _yaml_value(raw)


def _yaml_value(raw: str) -> Any:
    """A ``--set`` value parsed as YAML, with ``1e-3`` a number as on every command line (YAML 1.1
    reads a float only with a dot, ``1.0e-3``; NaN and inf stay strings for the typed layer to name)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            return number
    return value


def apply_overrides(data: Any, overrides: Iterable[str]) -> Any:
    """Apply ``KEY=VALUE`` overrides to plain YAML data (before typing, so errors name the key)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            node = node[_list_index(node, path, i)] if isinstance(node, list) else node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError("--set", ".".join(path[: i + 1]), f"is a value, not a section: {node!r}")
        if isinstance(node, list):
            node[_list_index(node, path, len(path) - 1)] = value
        else:
            node[path[-1]] = value
    return data


def _list_index(items: list, path: list[str], i: int) -> int:
    """``path[i]`` as an index into ``items`` (the list at ``path[:i]``), or a ConfigError naming the
    key and the valid indices."""
    key, part = ".".join(path[: i + 1]), path[i]
    valid = f"valid indices: 0..{len(items) - 1}" if items else "the list is empty; set the whole list instead"
    try:
        index = int(part)
    except ValueError:
        raise ConfigError("--set", key, f"{'.'.join(path[:i])} is a list: use an index, not {part!r}; {valid}") from None
    if not 0 <= index < len(items):
        raise ConfigError("--set", key, f"index {index} is out of range: {'.'.join(path[:i])} has {len(items)} "
                          f"entries; {valid}")
    return index


SHIPPED_CONFIGS_ROOTS = (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1])
"""Where the shipped ``configs/...`` and ``launch/...`` live: inside the package (a wheel installs them
as ``robolearn/configs`` and ``robolearn/launch``), or in the checkout robolearn runs from (an
editable install). Such a path that does not exist relative to the working directory is looked up
there, so the shipped cells, tasks, algorithms and launch files load from any directory."""


def resolve_config_path(path: str | Path) -> Path:
    """``path`` itself, or the shipped config of that relative path (see ``SHIPPED_CONFIGS_ROOTS``)."""
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    for root in SHIPPED_CONFIGS_ROOTS:
        if (root / path).is_file():
            return root / path
    return path


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, turning syntax errors and missing files into ConfigError."""
    path = resolve_config_path(path)
    if not path.is_file():
        raise ConfigError(str(path), "", "no such file; check the path (configs live in configs/cells, configs/tasks, configs/algos)")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(str(path), "", f"not valid YAML: {err}") from err


def load_config(cls: type[T], path: str | Path, overrides: Iterable[str] = ()) -> T:
    """Load ``cls`` from a YAML file with ``KEY=VALUE`` overrides applied on top."""
    data = apply_overrides(read_yaml(path), overrides)
    return from_dict(cls, data, source=str(path))
