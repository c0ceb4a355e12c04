"""Drivers behind ``robolearn train`` and ``robolearn finetune``: store → buffer, agent from an algorithm
YAML, evaluation in the twin, checkpoints with resume, scalars to TensorBoard (and wandb)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.cell import cell_label
from robolearn.config import ConfigError, load_config, resolve_config_path
from robolearn.errors import DependencyError, RobolearnError
from robolearn.interfaces import real_cell_keys
from robolearn.learn.agent_policy import AgentPolicy, pick_device
from robolearn.learn.agents import config_class, config_to_dict, make_agent
from robolearn.learn.api import (
    evaluate,
    fit_normalization,
    init_distributed,
    resolve_run_length,
    save_agent,
    train_offline,
)
from robolearn.learn.buffer import BadTransitionError, ReplayBuffer
from robolearn.learn.checkpoint import load_checkpoint, read_config, recover_checkpoint
from robolearn.learn.runs import TrainRun

EPISODE_KEYS = ("action", "reward", "terminated")


class StoreDataError(RobolearnError):
    """A store whose episodes cannot train the chosen algorithm (missing keys, non-finite values)."""


def load_algo_config(algo: str, path: str | None = None, overrides: tuple[str, ...] = ()) -> Any:
    """The algorithm config of ``algo`` from ``path`` (default: the shipped ``configs/algos/<algo>.yaml``)
    with ``KEY=VALUE`` overrides."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(str(path), "", "no such algorithm config file; check the path, or leave out --config for "
                          f"the shipped configs/algos/{algo}.yaml")
    path = Path(path) if path else resolve_config_path(f"configs/algos/{algo}.yaml")
    if not path.exists():
        raise ConfigError(str(path), "algo", f"no shipped config for {algo!r}; pass --config PATH")
    cfg = load_config(config_class(algo), path, overrides)
    if cfg.algo != algo:
        raise ConfigError(str(path), "algo", f"file is for {cfg.algo!r}, not {algo!r}")
    return cfg


class ScalarLogger:
    """Scalars to ``scalars.jsonl`` always, to TensorBoard when it is installed, and to Weights & Biases
    when ``wandb_project`` is given (``pip install wandb``; ``WANDB_MODE=offline`` works without a login)."""

    def __init__(self, log_dir: Path, wandb_project: str | None = None, run_config: dict[str, Any] | None = None):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = (log_dir / "scalars.jsonl").open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))
        except ImportError:
            self.writer = None
            print("robolearn: tensorboard is not installed; scalars go to scalars.jsonl only", file=sys.stderr)
        self.wandb_run = None
        if wandb_project:
            try:
                import wandb
            except ImportError as err:
                raise DependencyError("--wandb needs the wandb package: pip install wandb (or pip install 'robolearn[wandb]')") from err
            self.wandb_run = wandb.init(project=wandb_project, dir=str(log_dir), config=run_config or {},
                                        name=log_dir.parent.name, resume="allow")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)
        if self.wandb_run is not None:
            self.wandb_run.log(scalars, step=step)

    def close(self) -> None:
        self.jsonl.close()
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def store_buffer(store_path: str, task: str | None, keys: list[str] | None, gamma: float, chunk: int = 1,
                 r_neg: float | None = 0.0, successful_only: bool = False, exclude_sources: Sequence[str] = (),
                 extra_capacity: int = 0, require_reward: bool = True, algo: str = "this algorithm",
                 seed: int = 0) -> tuple[ReplayBuffer, dict[str, tuple[int, ...]], int]:
    """The episodes of a DemoStore as transitions; returns (buffer, obs shapes, action dim).

    task: only that task's episodes. keys: observation keys (default: ``robolearn.interfaces.real_cell_keys``: state and the cameras).
    successful_only / exclude_sources (e.g. ``("online",)``) filter episodes by their metadata.
    extra_capacity: room beyond the stored steps (interventions are added to the demo buffer while
    fine-tuning). require_reward: refuse a store without ``reward`` (everything but BC needs it;
    ``algo`` names the algorithm in the error). seed: the buffer's batch sampler.
    """
    from robolearn.store import DemoStore

    store = DemoStore.open(store_path, mode="r")
    if store.n_episodes == 0:
        raise StoreDataError(f"store {store_path} has no episodes; record demonstrations first")
    if require_reward and "reward" not in store.keys:
        raise StoreDataError(f"store {store_path} has no reward (e.g. imported from a LeRobot dataset without "
                             f"next.reward) and {algo} learns from rewards: label them with `robolearn reward relabel "
                             f"--reward oracle|classifier:CKPT --store {store_path} --out NEW.zarr`, or train --algo bc")
    keys = keys or real_cell_keys(store.keys)
    if not keys:
        raise StoreDataError(f"store {store_path} has neither state nor camera images; pick keys with --obs "
                             f"(it has {sorted(store.keys)})")
    missing = [k for k in keys if k not in store.keys]
    if missing:
        raise StoreDataError(f"store {store_path} lacks {missing}; it has {sorted(store.keys)}: pick keys with --obs")
    first = store.episode(0, keys)
    spaces = {k: (first[k].shape[1:], np.dtype(np.uint8) if k.startswith("rgb_") else np.dtype(np.float32)) for k in keys}
    action_dim = int(store.episode(0, ["action"])["action"].shape[1])
    buffer = ReplayBuffer(spaces, action_dim, max(store.n_steps + extra_capacity, 1), chunk=chunk, seed=seed)
    read_keys = [*keys, *(k for k in EPISODE_KEYS if k in store.keys)]
    unmarked = 0
    for i, meta in enumerate(store.episode_metas()):
        if (task is not None and meta.get("task") not in (None, task)) or meta.get("source") in exclude_sources:
            continue
        if successful_only and not meta.get("success"):
            unmarked += meta.get("success_marked") is False
            continue
        try:
            buffer.add_episode(store.episode(i, read_keys), gamma, r_neg=r_neg)
        except BadTransitionError as err:
            raise StoreDataError(f"store {store_path}, episode {i}, {err}; fix the recording, or delete the episode "
                                 f"(robolearn data delete {store_path} {i} --yes)") from err
    why_unmarked = (f"{unmarked} of its episodes have no success mark (imported from a recording without one, such as "
                    "a LeRobot dataset without next.success), and successful_only keeps marked successes only; train "
                    "on them too with --set successful_only=false")
    if len(buffer) == 0:
        raise StoreDataError(f"store {store_path} has no usable transitions for task {task!r}"
                             + (" among its successful episodes" if successful_only else "")
                             + (f": {why_unmarked}" if unmarked else ""))
    if unmarked:
        print(f"robolearn: store {store_path}: {why_unmarked}", file=sys.stderr)
    return buffer, {k: tuple(s) for k, (s, _) in spaces.items()}, action_dim


def best_success_rate(best_dir: Path) -> float:
    """The evaluated success rate of the checkpoint in ``best_dir`` (−inf when there is none yet)."""
    recover_checkpoint(best_dir)
    if not (best_dir / "config.json").exists():
        return -math.inf
    return float(read_config(best_dir).get("eval", {}).get("success_rate", -math.inf))


def step_checkpoints(out_dir: Path) -> list[Path]:
    """The ``OUT/step_<N>`` checkpoints, oldest first."""
    steps = sorted(int(p.name[5:]) for p in out_dir.glob("step_*") if p.name[5:].isdigit())
    return [out_dir / f"step_{n}" for n in steps]


def twin_only(keys: Sequence[str]) -> bool:
    """Whether a policy on ``keys`` needs the twin: it observes the privileged ``object_state``."""
    return "object_state" in keys


def train_from_store(run: TrainRun, progress: bool = True) -> dict[str, Any]:
    """Offline training (``robolearn train``): twin evaluation every ``run.eval_every`` steps (each also
    writes ``OUT/step_<N>``, the newest ``keep_checkpoints`` kept), ``OUT/best`` with the best-evaluated
    weights, and ``OUT/last`` every ``checkpoint_every`` steps (weights, optimizers, torch and buffer RNG
    states, step), from which the same run resumes (``prepare_run_dir`` decides whether it may)."""
    cfg = resolve_run_length(run.agent, run.steps)
    rank, world = init_distributed()
    dev = pick_device(run.device)
    torch.manual_seed(run.seed)
    buffer, shapes, action_dim = store_buffer(run.store, run.task, run.obs, getattr(cfg, "gamma", 0.99),
                                              getattr(cfg, "chunk", 1), getattr(cfg, "r_neg", 0.0),
                                              getattr(cfg, "successful_only", False), require_reward=_learns_rewards(cfg),
                                              algo=run.algo, seed=run.seed)
    agent = make_agent(cfg, shapes, action_dim)
    fit_normalization(agent, buffer)
    agent = agent.to(dev)
    out_dir = Path(run.out)
    last = out_dir / "last"
    recover_checkpoint(last)
    start = 0
    if (last / "config.json").exists():
        config, _ = load_checkpoint(last, agent, agent.optimizers(), dev, rngs={"buffer": buffer.rng})
        start = int(config["step"])
    checkpoint_every = run.checkpoint_every or run.eval_every or 1000
    logger = ScalarLogger(out_dir / "logs", run.wandb, {"algo": run.algo, **config_to_dict(cfg)}) if rank == 0 else None
    env = None
    if run.eval_every and rank == 0:
        from robolearn.env import make_env

        env = make_env(cell=run.cell, task=run.task, seed=run.seed + 1, cameras=camera_names(shapes))
    evals: list[dict[str, float]] = []
    best = best_success_rate(out_dir / "best")
    extra = {"task": run.task, "cell": cell_label(run.cell), "store": str(run.store), "twin_only": twin_only(shapes)}

    def callback(step: int, agent: torch.nn.Module, info: dict[str, float]) -> None:
        nonlocal best
        if rank != 0:
            return
        if step % 100 == 0:
            logger.log(step, {f"train/{k}": v for k, v in info.items()})
        if run.eval_every and step % run.eval_every == 0:
            result = evaluate(env, AgentPolicy(agent, sorted(shapes), dev), run.eval_episodes, seed=100_000)
            agent.train()
            evals.append({"step": step, **result})
            logger.log(step, {f"eval/{k}": v for k, v in result.items()})
            save_agent(out_dir / f"step_{step}", agent, shapes, step, resumable=False, **extra, eval=result)
            if run.keep_checkpoints is not None:
                saved = step_checkpoints(out_dir)
                for old in saved[: max(len(saved) - run.keep_checkpoints, 0)]:
                    shutil.rmtree(old)
            if result["success_rate"] > best:
                best = result["success_rate"]
                save_agent(out_dir / "best", agent, shapes, step, **extra, eval=result)
        if step % checkpoint_every == 0:
            save_agent(last, agent, shapes, step, rngs={"buffer": buffer.rng}, **extra)

    train_offline(cfg, buffer, run.steps, shapes, action_dim, dev, run.seed, agent=agent, callback=callback,
                  start_step=start, compile=run.compile, progress=progress and rank == 0)
    if rank == 0:
        save_agent(last, agent, shapes, run.steps, rngs={"buffer": buffer.rng}, **extra)
        logger.close()
    return {"algo": run.algo, "steps": run.steps, "resumed_from": start, "world_size": world,
            "transitions": len(buffer), "checkpoint": str(last), "observations": sorted(shapes),
            "twin_only": twin_only(shapes),
            "success_rate": evals[-1]["success_rate"] if evals else None,
            "best_success_rate": None if best == -math.inf else best,
            "step_checkpoints": [str(p) for p in step_checkpoints(out_dir)], "device": str(dev)}


def _learns_rewards(cfg: Any) -> bool:
    """Whether offline training of ``cfg`` needs rewards (not behaviour cloning)."""
    return cfg.algo != "bc" and getattr(cfg, "pretrain", "rl") == "rl"


def camera_names(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """The cameras whose images a policy on these observations reads."""
    return sorted(k[len("rgb_"):] for k in shapes if k.startswith("rgb_"))
