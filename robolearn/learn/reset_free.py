"""Reset-free fine-tuning (RoboFuME, Yang et al. 2024) behind ``robolearn finetune --reset-free``.

One twin env, two SAC-family agents (rlpd, calql, wsrl): the forward agent learns the task, the
backward agent learns to reset the scene for it (e.g. ``pick_cube_reset``). ``ResetFreeLoop`` runs
the forward agent until its reward model calls success, then the backward agent until its reward
model calls the scene reset, and so on, with no env reset between phases. Each agent has its own
``MixedBuffer`` (its task's demonstrations from its store, sampled with its own online data as its
config says), learns only from its own phases, ``utd`` critic updates per transition of its own,
and every phase is appended to its store as an online episode of its task.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robolearn.config import ConfigError
from robolearn.learn.agent_policy import AgentPolicy, pick_device
from robolearn.learn.agents import config_class, config_to_dict
from robolearn.learn.api import evaluate, save_agent
from robolearn.learn.buffer import MixedBuffer, ReplayBuffer
from robolearn.learn.finetune import episode_appender, init_agent
from robolearn.learn.losses import wsrl_in_warmup
from robolearn.learn.sac import SACConfig
from robolearn.learn.train import ScalarLogger, load_algo_config, store_buffer
from robolearn.reward.phase_switch import PHASES, ResetFreeConfig, ResetFreeLoop, twin_phase_env


@dataclass
class PhaseSpec:
    """One side of the loop. task: a task name or YAML; store: the task's demonstrations in, this
    phase's episodes out; reward: a reward spec (``oracle``: the task's ground truth, or see
    ``robolearn.reward.SPEC_HELP``); init: a checkpoint to start the agent from; algo, config_path,
    overrides: the agent's algorithm config (``configs/algos/<algo>.yaml`` by default)."""

    task: str
    store: str
    reward: str = "oracle"
    init: str | None = None
    algo: str = "rlpd"
    config_path: str | None = None
    overrides: tuple[str, ...] = ()


class PhaseLearner:
    """One agent of the loop with its buffer and episode recorder; a ``Policy`` for ``ResetFreeLoop``
    (sampled actions; a WSRL agent runs its frozen pretrained policy for its warm-up steps first).

    ``observe(transition)`` stores one of its phase's transitions, runs one update (``cfg.utd``
    critic batches) once past ``start_steps`` and any warm-up, and when the phase ends closes the
    episode in the buffer and hands it to ``on_episode(arrays, meta)`` (``end_episode``)."""

    def __init__(self, cfg: Any, agent: torch.nn.Module, demos: ReplayBuffer, keys: list[str],
                 device: torch.device, capacity: int, seed: int, pretrained: bool,
                 on_episode: Callable[[dict[str, np.ndarray], dict[str, Any]], None]):
        self.cfg, self.agent, self.keys, self.device = cfg, agent, keys, device
        self.on_episode = on_episode
        spaces = {k: (demos.obs[k].shape[1:], demos.obs[k].dtype) for k in keys}
        use_demos = cfg.offline_fraction > 0
        demo = demos if use_demos else ReplayBuffer(spaces, agent.action_dim, 1, seed=seed + 1)
        self.buffer = MixedBuffer(demo, ReplayBuffer(spaces, agent.action_dim, max(capacity, 1), seed=seed),
                                  cfg.offline_fraction, cfg.gamma, cfg.r_neg)
        self.policy = AgentPolicy(agent, keys, device, deterministic=False)
        self.warmup = AgentPolicy(copy.deepcopy(agent).eval(), keys, device, deterministic=False) \
            if pretrained and cfg.warmup_steps else None
        self.random_start = not pretrained and not use_demos
        self.rng = np.random.default_rng(seed)
        self.autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
        self.steps = self.updates = 0
        self.episode: dict[str, list] = {}
        self.last_info: dict[str, float] = {}

    def warming_up(self) -> bool:
        return self.warmup is not None and wsrl_in_warmup(self.steps, self.cfg.warmup_steps)

    def reset(self) -> None:
        self.policy.reset()
        if self.warmup is not None:
            self.warmup.reset()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.warming_up():
            return self.warmup.act(obs)
        if self.random_start and self.steps < self.cfg.start_steps:
            return self.rng.uniform(-1, 1, self.agent.action_dim).astype(np.float32)
        return self.policy.act(obs)

    def observe(self, t: dict[str, Any]) -> None:
        obs = {k: t["obs"][k] for k in self.keys}
        next_obs = {k: t["next_obs"][k] for k in self.keys}
        self.buffer.add(obs, t["action"], float(t["reward"]), next_obs, bool(t["terminated"]))
        record = {**t["obs"], "action": t["action"], "reward": np.float32(t["reward"]),
                  "success": bool(t["terminated"]), "terminated": bool(t["terminated"]), "intervention": False,
                  "stamp_ns": np.int64(t["info"].get("stamp_ns", time.time_ns()))}
        if t["success_true"] is not None:
            record["success_true"] = bool(t["success_true"])
        for k, v in record.items():
            self.episode.setdefault(k, []).append(v)
        if self.steps >= self.cfg.start_steps and not self.warming_up():
            with self.autocast:
                self.last_info = self.agent.update([self.buffer.sample(self.cfg.batch_size, self.device)
                                                    for _ in range(self.cfg.utd)])
            self.updates += 1
        self.steps += 1
        if t["terminated"] or t["truncated"]:
            self.end_episode(success=bool(t["terminated"]))

    def end_episode(self, success: bool = False) -> None:
        """Close the phase's episode in the buffer and hand it on; a run that stops mid-phase calls
        this too, so every step reaches the store (as a truncated episode)."""
        if not self.episode:
            return
        self.buffer.end_episode()
        self.on_episode({k: np.stack(v) for k, v in self.episode.items()}, {"success": success, "source": "online"})
        self.episode = {}


def sac_family_config(spec: PhaseSpec, phase: str) -> Any:
    """The phase's algorithm config; only the SAC family (rlpd, calql, wsrl) trains online."""
    if config_class(spec.algo) is not SACConfig:
        raise ConfigError(f"--{'backward-' if phase == 'backward' else ''}algo", spec.algo,
                          "reset-free training needs an online SAC-family algorithm: rlpd, calql or wsrl")
    return load_algo_config(spec.algo, spec.config_path, spec.overrides)


def require_demos(store_path: str, task: str, phase: str) -> None:
    """Fail early, with the command that fixes it, when a store holds no demonstrations of ``task``."""
    from robolearn.store import DemoStore

    flag = "--backward-store" if phase == "backward" else "--store"
    try:
        metas = DemoStore.open(store_path, mode="r").episode_metas()
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(flag, store_path, str(err)) from err
    if not any(m.get("task") in (None, task) and m.get("source") != "online" for m in metas):
        raise ConfigError(flag, store_path, f"no demonstrations of {task!r} for the {phase} agent; record some with "
                          f"`robolearn collect --task {task} --store {store_path} --episodes 20`")


def train_reset_free(forward: PhaseSpec, backward: PhaseSpec, cell: str, steps: int, out: str,
                     max_phase_steps: int | None = None, hard_reset_every: int = 0, keys: list[str] | None = None,
                     device: str | None = None, seed: int = 0, eval_episodes: int = 10,
                     wandb_project: str | None = None, progress: bool = True,
                     checkpoint_every: int = 2000) -> dict[str, Any]:
    """Train a forward and a backward agent reset-free for ``steps`` env steps in total (both phases).

    max_phase_steps: a phase that runs this long without its reward model's success call is
    truncated (default: the longer of the two tasks' episode lengths). hard_reset_every: reset the
    twin after every N forward phases (0: never). Writes ``out/forward/last`` and
    ``out/backward/last`` every ``checkpoint_every`` env steps and at the end (weights, for recovery:
    a reset-free run is not resumed, its scene never resets), and ``out/logs``; then evaluates each agent on its own task in the twin
    (``eval_episodes`` episodes with resets; a reset task's episodes start from forward successes).
    Returns the loop's summary (per-phase counts, each reward model's online error rates against the
    twin's ground truth) with updates, checkpoints and evaluation per agent."""
    from robolearn.env import make_env
    from robolearn.reward import load_reward_model
    from robolearn.sim.tasks import load_task_config
    from robolearn.store import DemoStore

    specs = {"forward": forward, "backward": backward}
    names = {phase: load_task_config(spec.task).type for phase, spec in specs.items()}
    if names["forward"] == names["backward"]:
        raise ConfigError("--backward-task", backward.task, f"is the forward task {names['forward']!r}; name its reset "
                          "task (e.g. pick_cube_reset)")
    cfgs = {phase: sac_family_config(spec, phase) for phase, spec in specs.items()}
    for phase, spec in specs.items():
        require_demos(spec.store, names[phase], phase)
    dev = pick_device(device)
    torch.manual_seed(seed)
    store_keys = {phase: list(DemoStore.open(spec.store, mode="r").keys) for phase, spec in specs.items()}
    cameras = any(k.startswith("rgb_") for ks in store_keys.values() for k in ks) or \
        any(spec.reward != "oracle" for spec in specs.values())
    env = make_env(cell=cell, task=forward.task, cameras=cameras)
    envs = {"forward": env, "backward": twin_phase_env(env, backward.task)}
    rewards = {phase: load_reward_model(spec.reward, env=envs[phase]) for phase, spec in specs.items()}

    learners: dict[str, PhaseLearner] = {}
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    for i, (phase, spec) in enumerate(specs.items()):
        cfg = cfgs[phase]
        demos, shapes[phase], action_dim = store_buffer(spec.store, names[phase], keys, cfg.gamma, r_neg=cfg.r_neg,
                                                        exclude_sources=("online",))
        agent = init_agent(cfg, spec.init, shapes[phase], action_dim, dev, demos)
        learners[phase] = PhaseLearner(cfg, agent, demos, sorted(shapes[phase]), dev, steps, seed + 7 * i,
                                       pretrained=spec.init is not None,
                                       on_episode=episode_appender(spec.store, names[phase], store_keys[phase]))

    loop_config = ResetFreeConfig(max_phase_steps or max(e.max_episode_steps for e in envs.values()), hard_reset_every)
    loop = ResetFreeLoop(env, learners["forward"], learners["backward"], rewards["forward"], rewards["backward"],
                         loop_config, backward_env=envs["backward"])
    out_dir = Path(out)
    logger = ScalarLogger(out_dir / "logs", wandb_project,
                          {phase: {"algo": specs[phase].algo, **config_to_dict(cfgs[phase])} for phase in PHASES})
    start = time.monotonic()
    bar = tqdm(total=steps, desc="reset-free", unit="step", leave=False, disable=not progress)
    for step, transition in enumerate(loop.run(steps, seed=seed)):
        phase = transition["phase"]
        learner = learners[phase]
        learner.observe(transition)
        if step % 1000 == 0 and learner.last_info:
            logger.log(step, {f"{phase}/{k}": v for k, v in learner.last_info.items()})
        if transition["terminated"] or transition["truncated"]:
            stats = loop.stats[phase]
            logger.log(step, {f"{phase}/phase_success": float(transition["terminated"]),
                              f"{phase}/phase_steps": stats.lengths[-1]})
            bar.set_postfix(fwd=f"{loop.stats['forward'].successes}/{loop.stats['forward'].phases}",
                            bwd=f"{loop.stats['backward'].successes}/{loop.stats['backward'].phases}")
        bar.update(1)
        if checkpoint_every and (step + 1) % checkpoint_every == 0:
            for name, spec in specs.items():
                save_agent(out_dir / name / "last", learners[name].agent, shapes[name], learners[name].steps,
                           task=names[name], cell=cell, store=str(spec.store), reward=spec.reward, phase=name)
    bar.close()
    for learner in learners.values():
        learner.end_episode()
    logger.close()

    result: dict[str, Any] = {"mode": "reset_free", "env_steps": steps, "task": names["forward"],
                              "backward_task": names["backward"], **loop.summary()}
    for i, (phase, spec) in enumerate(specs.items()):
        learner = learners[phase]
        checkpoint = save_agent(out_dir / phase / "last", learner.agent, shapes[phase], learner.steps, task=names[phase],
                                cell=cell, store=str(spec.store), reward=spec.reward, phase=phase)
        success_rate = None
        if eval_episodes > 0:
            eval_env = make_env(cell=cell, task=spec.task, seed=seed + 1000 + i, cameras=cameras)
            success_rate = evaluate(eval_env, AgentPolicy(learner.agent, learner.keys, dev), eval_episodes,
                                    seed=200_000)["success_rate"]
        result.update({f"{phase}_algo": spec.algo, f"{phase}_steps": learner.steps, f"{phase}_updates": learner.updates,
                       f"{phase}_checkpoint": str(checkpoint), f"{phase}_eval_success_rate": success_rate})
    result.update(wall_minutes=round((time.monotonic() - start) / 60, 2), device=str(dev))
    return result
