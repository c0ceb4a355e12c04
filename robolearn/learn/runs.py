"""Run configs: everything a ``robolearn train`` or ``robolearn finetune`` run depends on, typed,
written to ``OUT/run.yaml`` before the first step, and read back to repeat or resume the run.

A run config is built from, in order: the defaults, an optional YAML (``--config``: a ``run.yaml``
of an earlier run, or an algorithm YAML such as ``configs/algos/bc.yaml`` for the ``agent``
section), the command-line flags the user gave, and ``--set KEY=VALUE`` on the agent config. The
written ``run.yaml`` adds a ``provenance`` section (versions, the command line, the cell's
contents, the store's fingerprint) that is recorded, never compared.

Resuming is explicit: an output directory that holds a run is refused without ``--resume``; with it
the saved ``run.yaml`` is the base, and a resume whose config differs from the saved one names each
difference and is refused unless ``--allow-config-change``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robolearn.cell import DEFAULT_CELL, CellConfig, as_cell, checked_cell
from robolearn.config import ConfigError, apply_overrides, from_dict, read_yaml, resolve_config_path, to_dict
from robolearn.errors import AlreadyExistsError, NotFoundError, UsageError

RUN_FILE = "run.yaml"
CHECKPOINT_DIRS = ("last", "learner")
"""What makes an output directory hold a run: a checkpoint to resume from."""


@dataclass
class RunBase:
    """What every run has. algo: the algorithm (its ``agent`` config is typed by it). store: the
    DemoStore. task: selects episodes and the evaluation task. cell: the cell YAML of the twin.
    obs: observation keys (None: ``state`` and the store's cameras, what a real cell has). seed:
    seeds torch, every replay buffer's sampler, the env episodes and evaluation. device: cpu or cuda
    (None: cuda when available). compile: ``torch.compile`` the networks. wandb: also log to this
    project. agent: the algorithm config (``configs/algos/<algo>.yaml`` with ``--set`` applied)."""

    algo: str
    store: str
    task: str
    out: str = ""
    cell: str | CellConfig | None = None
    obs: list[str] | None = None
    seed: int = 0
    device: str | None = None
    compile: bool = False
    wandb: str | None = None
    agent: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainRun(RunBase):
    """An offline run (``robolearn train``). steps: gradient steps. eval_every / eval_episodes: twin
    evaluation (and a ``step_<N>`` checkpoint) every N steps, 0: never. checkpoint_every: write
    ``OUT/last`` every N steps (None: ``eval_every``, else 1000). keep_checkpoints: keep only the K
    newest ``step_<N>`` checkpoints (None: all)."""

    steps: int = 20_000
    eval_every: int = 5_000
    eval_episodes: int = 10
    checkpoint_every: int | None = None
    keep_checkpoints: int | None = None


@dataclass
class FinetuneRun(RunBase):
    """An online run (``robolearn finetune``). steps: env steps in all. init: the checkpoint to
    continue (the pretrained agent). reward: ``oracle`` or a reward spec (``classifier:DIR``, ...).
    teleop / intervene_probability: interventions (``expert`` or a device type). actors: actor
    processes over Zenoh (0: one process). checkpoint_every: write ``OUT/last`` (resumable) at the
    first episode end after every N env steps. eval_episodes: the final twin evaluation."""

    steps: int = 20_000
    init: str | None = None
    reward: str = "oracle"
    teleop: str | None = None
    intervene_probability: float = 0.05
    actors: int = 0
    checkpoint_every: int = 2_000
    eval_episodes: int = 10


def run_field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"agent", "provenance"}


def _algo_defaults(algo: str) -> dict[str, Any]:
    path = resolve_config_path(f"configs/algos/{algo}.yaml")
    if not path.is_file():
        raise ConfigError(str(path), "algo", f"no shipped config for {algo!r}; pass --config PATH")
    return read_yaml(path)


def read_config_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(run fields, agent section or None)`` of ``--config PATH``: a ``run.yaml`` (its own fields and
    ``agent``) or an algorithm YAML (which is the ``agent`` section, its ``algo`` a run field)."""
    if not Path(path).is_file():
        raise ConfigError(str(path), "", "no such config file; pass a run.yaml of an earlier run or an algorithm YAML "
                          "(configs/algos/<algo>.yaml)")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", f"expected a mapping, got {type(data).__name__}")
    if "agent" in data or "provenance" in data:
        data = {k: v for k, v in data.items() if k != "provenance"}
        return data, data.pop("agent", None)
    return {"algo": data["algo"]} if "algo" in data else {}, data


def build_run(cls: type, flags: Mapping[str, Any], config_path: str | None = None, overrides: Iterable[str] = (),
              base: Mapping[str, Any] | None = None) -> Any:
    """The typed run ``cls`` from ``base`` (a saved run, when resuming) or ``config_path``, then the
    ``flags`` the user gave (None values are not given), then ``overrides`` on the agent config."""
    from robolearn.learn.agents import config_class

    fields, agent = dict(base or {}), None
    if base is not None:
        agent = fields.pop("agent", None)
        fields.pop("provenance", None)
    elif config_path is not None:
        fields, agent = read_config_file(config_path)
    given = {k: v for k, v in flags.items() if v is not None}
    if given.get("algo") not in (None, fields.get("algo")):
        agent = None  # another algorithm than the file's: its shipped config
    fields.update(given)
    missing = [name for name in ("algo", "store", "task") if name not in fields]
    if missing:
        raise UsageError(f"{', '.join('--' + m for m in missing)} needed (or a --config, or --resume --out OUT, "
                         "that sets them)")
    algo = fields["algo"]
    agent_data = dict(agent) if agent is not None else _algo_defaults(algo)
    agent_data = apply_overrides(agent_data, overrides)
    agent_data["algo"] = agent_data.get("algo", algo)
    if agent_data["algo"] != algo:
        raise ConfigError(config_path or "--config", "algo", f"the agent config is for {agent_data['algo']!r}, not {algo!r}")
    source = config_path or "command line"
    run = from_dict(cls, {k: v for k, v in fields.items() if k in run_field_names(cls)}, source=source)
    unknown = sorted(set(fields) - run_field_names(cls))
    if unknown:
        raise ConfigError(source, unknown[0], f"unknown run setting; allowed: {', '.join(sorted(run_field_names(cls)))}")
    run.agent = from_dict(config_class(algo), agent_data, source=f"{source} (agent)")
    return run


def differences(saved: Any, new: Any) -> list[str]:
    """``key: saved → new`` for every setting that differs (provenance aside), dotted keys."""
    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(data, dict):
            out: dict[str, Any] = {}
            for k, v in data.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out
        return {prefix[:-1]: data}

    a, b = flat(run_dict(saved)), flat(run_dict(new))
    keys = sorted((set(a) | set(b)) - {k for k in set(a) | set(b) if k.startswith("provenance.")})
    return [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def run_dict(run: Any) -> dict[str, Any]:
    """Plain data of a run config (``run.yaml``'s contents): the run's settings, then ``agent``, then
    ``provenance``."""
    data = to_dict(run)
    data = {**{k: v for k, v in data.items() if k not in ("agent", "provenance")}, "agent": data["agent"],
            "provenance": data["provenance"]}
    return json.loads(json.dumps(data, default=str))


def resolve_store_defaults(run: Any) -> None:
    """Fill what defaults to the store: the observations (``state`` and its cameras, what a real cell
    has) and the cell (the one the store recorded, else the reference cell)."""
    from robolearn.interfaces import real_cell_keys
    from robolearn.store import DemoStore

    store = DemoStore.open(run.store, mode="r")
    if run.obs is None:
        run.obs = real_cell_keys(store.keys)
    if run.cell is None:
        run.cell = store_cell(store) or DEFAULT_CELL


def store_cell(store: Any) -> CellConfig | None:
    """The cell a store recorded, loaded and checked (None when it recorded none)."""
    if not store.cell_config:
        return None
    return checked_cell(from_dict(CellConfig, store.cell_config, source=f"{store.path} (its cell_config)"))


def store_fingerprint(store_path: str) -> dict[str, Any]:
    """The store's size and a digest of its committed episodes' ends and metadata."""
    from robolearn.store import DemoStore

    store = DemoStore.open(store_path, mode="r")
    digest = hashlib.sha256(json.dumps([store.episode_ends.tolist(), store.episode_metas()], sort_keys=True,
                                       default=str).encode()).hexdigest()[:16]
    return {"path": str(Path(store_path).resolve()), "n_episodes": store.n_episodes, "n_steps": store.n_steps,
            "digest": digest}


def provenance(run: Any, argv: list[str] | None = None) -> dict[str, Any]:
    """What the run ran with, beside its settings: versions, the command line, the cell's contents
    and the store's fingerprint."""
    from importlib.metadata import version

    from robolearn import __version__

    return {"robolearn": __version__, "python": platform.python_version(),
            **{name: version(name) for name in ("torch", "numpy", "mujoco", "zarr")},
            "command": " ".join(["robolearn", *(argv if argv is not None else sys.argv[1:])]),
            "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cell_config": to_dict(as_cell(run.cell)), "store": store_fingerprint(run.store)}


def write_run(run: Any, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_FILE
    path.write_text(yaml.safe_dump(run_dict(run), sort_keys=False, allow_unicode=True))
    return path


def prepare_run_dir(run: Any, resume: bool, allow_config_change: bool = False) -> None:
    """Refuse an output directory that already holds a run (a checkpoint) unless resuming; when
    resuming, refuse a config that differs from the saved one unless ``allow_config_change``; write
    ``run.yaml`` (a run that stopped before its first checkpoint simply starts again)."""
    out_dir = Path(run.out)
    saved_path = out_dir / RUN_FILE
    holds_run = any((out_dir / name).exists() for name in CHECKPOINT_DIRS)  # a run.yaml alone: stopped before any
    if holds_run and not resume:
        raise AlreadyExistsError(f"{out_dir} already holds a run; continue it with --resume, or pick a new --out")
    if resume:
        if not saved_path.is_file():
            raise NotFoundError(f"nothing to resume in {out_dir} (no {RUN_FILE}); start the run without --resume")
        saved = load_saved_run(type(run), out_dir)
        changed = differences(saved, run)
        if changed and not allow_config_change:
            raise UsageError(f"--resume with a config that differs from {saved_path}: {'; '.join(changed)}; run it "
                             "as saved, pass --allow-config-change to resume with the new settings anyway, or pick a "
                             "new --out")
    write_run(run, out_dir)


def load_saved_run(cls: type, out_dir: str | Path) -> Any:
    """The run config saved in ``out_dir/run.yaml``."""
    path = Path(out_dir) / RUN_FILE
    data = read_yaml(path)
    return build_run(cls, {}, base=data) if isinstance(data, dict) else None
