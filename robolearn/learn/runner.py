"""Drivers behind ``robolearn train`` and ``robolearn finetune``: store → buffer, agent from an algorithm
YAML, evaluation in the twin, checkpoints with resume, TensorBoard scalars."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.config import ConfigError, load_config
from robolearn.learn.agents import config_class, make_agent
from robolearn.learn.api import evaluate, init_distributed, save_agent, train_offline
from robolearn.learn.buffer import ReplayBuffer
from robolearn.learn.checkpoint import load_checkpoint, recover_checkpoint
from robolearn.learn.policy import AgentPolicy, pick_device

ALGO_DIR = Path(__file__).resolve().parents[2] / "configs" / "algos"


def load_algo_config(algo: str, path: str | None = None, overrides: tuple[str, ...] = ()) -> Any:
    path = Path(path) if path else ALGO_DIR / f"{algo}.yaml"
    if not path.exists():
        raise ConfigError(str(path), "algo", f"no config file for {algo!r}; pass --config PATH")
    cfg = load_config(config_class(algo), path, overrides)
    if cfg.algo != algo:
        raise ConfigError(str(path), "algo", f"file is for {cfg.algo!r}, not {algo!r}")
    return cfg


class ScalarLogger:
    """TensorBoard scalars when ``tensorboard`` is installed; always a ``scalars.jsonl`` next to them."""

    def __init__(self, log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = (log_dir / "scalars.jsonl").open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))
        except ImportError:
            self.writer = None
            print("robolearn: tensorboard is not installed; scalars go to scalars.jsonl only", file=sys.stderr)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.jsonl.close()
        if self.writer is not None:
            self.writer.close()


def store_buffer(store_path: str, task: str | None, keys: list[str] | None, gamma: float, chunk: int = 1,
                 r_neg: float | None = 0.0) -> tuple[ReplayBuffer, dict[str, tuple[int, ...]], int]:
    """Every (task) episode of a DemoStore as transitions; returns (buffer, obs shapes, action dim)."""
    from robolearn.store import DemoStore

    store = DemoStore.open(store_path, mode="r")
    if store.n_episodes == 0:
        raise SystemExit(f"robolearn: store {store_path} has no episodes; record demonstrations first")
    first = store.episode(0)
    available = [k for k in first if k == "state" or k == "object_state" or k.startswith("rgb_")]
    keys = keys or [k for k in available if not k.startswith("rgb_")] or available
    missing = [k for k in keys if k not in first]
    if missing:
        raise SystemExit(f"robolearn: store {store_path} lacks {missing}; it has {sorted(first)}")
    spaces = {k: (first[k].shape[1:], np.dtype(np.uint8) if k.startswith("rgb_") else np.dtype(np.float32)) for k in keys}
    action_dim = int(first["action"].shape[1])
    buffer = ReplayBuffer(spaces, action_dim, max(store.n_steps, 1), chunk=chunk)
    for i in range(store.n_episodes):
        meta = store.episode_meta(i)
        if task is not None and meta.get("task") not in (None, task):
            continue
        buffer.add_episode(store.episode(i), gamma, meta.get("success"), r_neg)
    if len(buffer) == 0:
        raise SystemExit(f"robolearn: store {store_path} has no usable transitions for task {task!r}")
    return buffer, {k: tuple(s) for k, (s, _) in spaces.items()}, action_dim


def train_from_store(algo: str, store: str, task: str, cell: str, steps: int, eval_every: int, eval_episodes: int,
                     out: str, config_path: str | None = None, overrides: tuple[str, ...] = (),
                     keys: list[str] | None = None, device: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Offline training with periodic twin evaluation and checkpoints; resumes from ``out/last``."""
    cfg = load_algo_config(algo, config_path, overrides)
    rank, world = init_distributed()
    dev = pick_device(device)
    buffer, shapes, action_dim = store_buffer(store, task, keys, getattr(cfg, "gamma", 0.99), getattr(cfg, "chunk", 1))
    agent = make_agent(cfg, shapes, action_dim).to(dev)
    out_dir = Path(out)
    last = out_dir / "last"
    recover_checkpoint(last)
    start = 0
    if (last / "config.json").exists():
        config, _ = load_checkpoint(last, agent, agent.optimizers(), dev)
        start = int(config["step"])
    logger = ScalarLogger(out_dir / "logs")
    env = None
    if eval_every:
        from robolearn.env import make_env

        env = make_env(cell=cell, task=task, seed=seed + 1, cameras=any(k.startswith("rgb_") for k in shapes))
    evals: list[dict[str, float]] = []
    extra = {"task": task, "cell": cell, "store": str(store)}

    def callback(step: int, agent: torch.nn.Module, info: dict[str, float]) -> None:
        if rank != 0:
            return
        if step % 100 == 0:
            logger.log(step, {f"train/{k}": v for k, v in info.items()})
        if eval_every and step % eval_every == 0:
            result = evaluate(env, AgentPolicy(agent, sorted(shapes), dev), eval_episodes, seed=100_000)
            agent.train()
            evals.append({"step": step, **result})
            logger.log(step, {f"eval/{k}": v for k, v in result.items()})
            save_agent(last, agent, shapes, step, **extra)
            best = max(evals, key=lambda e: e["success_rate"])
            if best["step"] == step:
                save_agent(out_dir / "best", agent, shapes, step, **extra, eval=result)

    train_offline(cfg, buffer, steps, shapes, action_dim, dev, seed, agent=agent, callback=callback, start_step=start)
    if rank == 0:
        save_agent(last, agent, shapes, steps, **extra)
    logger.close()
    return {"algo": algo, "steps": steps, "resumed_from": start, "world_size": world, "transitions": len(buffer), "checkpoint": str(last),
            "success_rate": evals[-1]["success_rate"] if evals else None,
            "best_success_rate": max((e["success_rate"] for e in evals), default=None), "device": str(dev)}
