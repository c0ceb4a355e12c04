"""Twin evaluation of a policy in K worker processes, deterministic per seed.

Episode ``i`` is reset with seed ``seed + i`` in whichever worker runs it, every worker builds its
own env and policy and runs torch on one thread, so the outcome of each episode, and so the whole
record, is the same for any number of workers. Failed episodes keep their last camera frame (for
the report); ``video_dir`` gets one MP4 per episode.
"""

from __future__ import annotations

import base64
import io
import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robolearn.errors import NotFoundError, UsageError
from robolearn.evaluate.results import EpisodeRecord, EvalRecord, evaluation_path, model_digest, policy_id_of
from robolearn.interfaces import Observation, Policy

EXPERT = "expert"


@dataclass
class EvalSettings:
    """What to evaluate on. cell: cell YAML; task: task name or YAML; episode ``i`` uses seed
    ``seed + i``; workers: processes (1 runs in this process); cameras: which cameras the env renders
    (None: the ones the policy observes); failure_frames: how many failed episodes keep their last
    frame; video_dir: one MP4 per episode when set; device: torch device for checkpoints (None: CUDA
    when available)."""

    cell: str = "configs/cells/sim_panda.yaml"
    task: str = "pick_cube"
    episodes: int = 20
    workers: int = 1
    seed: int = 0
    cameras: bool | list[str] | None = None
    failure_frames: int = 6
    video_dir: str | None = None
    device: str | None = None
    cell_overrides: tuple[str, ...] = ()
    task_overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise UsageError(f"episodes must be positive, got {self.episodes}")
        if self.workers <= 0:
            raise UsageError(f"workers must be positive, got {self.workers}")


class ExpertPolicy:
    """The task's scripted expert as a ``Policy`` (the baseline, and a policy that needs no training).

    Build it with the env: ``ExpertPolicy(env, noise_scale)``. Its noise is drawn from a generator
    seeded from the env's episode generator at every ``reset``, so episodes are reproducible per seed.
    """

    observation_keys: list[str] = []

    def __init__(self, env: Any, noise_scale: float = 0.0):
        from robolearn.sim.experts import make_expert

        self.env = env.unwrapped
        self.expert = make_expert(env, noise_scale=noise_scale)
        self.config = {"algo": EXPERT, "noise_scale": noise_scale}

    def reset(self) -> None:
        self.expert.reset()
        self.expert.rng = np.random.default_rng(int(self.env.np_random.integers(2**63)))

    def act(self, obs: Observation) -> np.ndarray:
        return self.expert.read().action()


def checkpoint_config(source: Any) -> dict[str, Any]:
    """The checkpoint's ``config.json`` ({} for the expert or a factory)."""
    if isinstance(source, (str, Path)) and str(source) != EXPERT:
        path = Path(source) / "config.json"
        if not path.is_file():
            raise NotFoundError(f"{source} is not a checkpoint directory (no config.json); pass a directory "
                                    f"written by `robolearn train`/`finetune`, or `{EXPERT}` for the scripted expert")
        return json.loads(path.read_text())
    return {}


def _cameras_for(source: Any, settings: EvalSettings) -> bool | list[str]:
    if settings.cameras is not None:
        return settings.cameras
    keys = checkpoint_config(source).get("observation_keys", [])
    return sorted({k.split("_", 1)[1] for k in keys if k.startswith(("rgb_", "depth_"))})


def _make_policy(source: Any, env: Any, device: str | None) -> Policy:
    if callable(source):
        return source(env)
    if str(source) == EXPERT:
        return ExpertPolicy(env)
    from robolearn.learn import load_policy

    return load_policy(source, device=device)


def _render(env: Any) -> np.ndarray:
    """The first camera's image now, ``(H, W, 3) uint8`` (rendered even for state-only envs)."""
    twin = env.unwrapped.twin
    return next(iter(twin.cameras.values())).read().color


class _Worker:
    """One env and one policy; runs episodes by index."""

    def __init__(self, source: Any, settings: EvalSettings):
        import torch

        from robolearn.env import make_env

        torch.set_num_threads(1)
        self.settings = settings
        self.env = make_env(settings.cell, settings.task, cameras=_cameras_for(source, settings),
                            overrides=settings.cell_overrides, task_overrides=settings.task_overrides)
        self.policy = _make_policy(source, self.env, settings.device)

    def run(self, index: int) -> tuple[EpisodeRecord, np.ndarray | None]:
        from robolearn.rollout import run_episode
        from robolearn.video import write_mp4

        settings = self.settings
        seed = settings.seed + index
        record_frames = settings.video_dir is not None and bool(self.env.unwrapped.twin.cameras)
        result = run_episode(self.env, self.policy.act, seed=seed, record_frames=record_frames, on_reset=self.policy.reset)
        video = None
        if record_frames:
            video = str(write_mp4(Path(settings.video_dir) / f"episode_{index:04d}.mp4", result.frames,
                                  fps=self.env.unwrapped.cell.control_hz))
        failure_frame = None
        if not result.success and self.env.unwrapped.twin.cameras and settings.failure_frames:
            failure_frame = result.frames[-1] if result.frames else _render(self.env)
        episode = EpisodeRecord(index=index, seed=seed, success=result.success, episode_return=result.episode_return,
                                steps=result.steps, violations=result.violations, ended_by=result.ended_by, video=video)
        return episode, failure_frame

    def close(self) -> None:
        self.env.close()


_worker: _Worker | None = None


def _init_worker(source: Any, settings: EvalSettings) -> None:
    global _worker
    _worker = _Worker(source, settings)


def _run_in_worker(index: int) -> tuple[EpisodeRecord, np.ndarray | None]:
    assert _worker is not None
    return _worker.run(index)


def png_base64(image: np.ndarray) -> str:
    """A ``(H, W, 3) uint8`` image as base64 PNG text."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def evaluate_policy(source: Any, settings: EvalSettings, progress: bool = True) -> EvalRecord:
    """Evaluate ``source`` (a checkpoint directory, ``"expert"``, or a picklable ``factory(env) ->
    Policy``) on ``settings.episodes`` twin episodes; returns the record (not yet saved)."""
    from robolearn.cell import load_cell

    cell = load_cell(settings.cell, list(settings.cell_overrides))
    config = checkpoint_config(source)
    outcomes: list[tuple[EpisodeRecord, np.ndarray | None]] = []
    bar = tqdm(total=settings.episodes, desc=f"eval {Path(settings.task).stem}", unit="ep", disable=not progress or None)
    if settings.workers == 1:
        import torch

        threads = torch.get_num_threads()
        worker = _Worker(source, settings)
        try:
            for index in range(settings.episodes):
                outcomes.append(worker.run(index))
                bar.update(1)
        finally:
            worker.close()
            torch.set_num_threads(threads)
    else:
        context = mp.get_context("spawn")
        with context.Pool(min(settings.workers, settings.episodes), initializer=_init_worker,
                          initargs=(source, settings)) as pool:
            for outcome in pool.imap_unordered(_run_in_worker, range(settings.episodes)):
                outcomes.append(outcome)
                bar.update(1)
    bar.close()
    outcomes.sort(key=lambda o: o[0].index)
    failures = [(e.index, frame) for e, frame in outcomes if frame is not None][: settings.failure_frames]
    name = source if isinstance(source, (str, Path)) else getattr(source, "__name__", type(source).__name__)
    return EvalRecord(
        kind="sim", policy=str(name), policy_id=policy_id_of(name) if str(name) != EXPERT else EXPERT,
        cell=cell.name, task=Path(settings.task).stem, episode_results=[e for e, _ in outcomes], seed=settings.seed,
        policy_step=config.get("step"), policy_sha256=model_digest(source) if config else None,
        failure_frames=[{"index": i, "png_base64": png_base64(frame)} for i, frame in failures],
    )


def save_beside_checkpoint(record: EvalRecord, ckpt_dir: str | Path) -> Path:
    """Store ``record`` at ``<ckpt>/evaluations/<cell>__<task>.json`` (where the deploy gate looks)."""
    return record.save(evaluation_path(ckpt_dir, record.cell, record.task))
