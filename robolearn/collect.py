"""Collecting demonstrations on the twin: a teleop device (or the scripted expert) drives the env,
an ``EpisodeRecorder`` writes every observation stream, the action and the episode flags into a
``DemoStore``, and each episode is committed atomically with its success marked.

``collect`` is what ``robolearn collect`` runs (and the main loop's collection stages). With a
teleop device a person drives, the twin runs in real time at the cell's control rate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robolearn.cell import DEFAULT_CELL, CellConfig
from robolearn.config import ConfigError


@dataclass
class CollectSettings:
    """One collection run.

    teleop: ``expert`` (the task's scripted expert) or a teleop device type (``keyboard``, ...).
    episodes: episodes to commit; episode attempt i is seeded ``seed + i``. noise: expert action
    noise std as a fraction of the action range. only_success: discard failed episodes and redo them
    (at most 3× ``episodes`` attempts). jpeg_quality: of a new store. cameras: record the camera
    streams (False: state only). overrides / task_overrides: ``KEY=VALUE`` for the cell and the task.
    """

    cell: str | CellConfig = DEFAULT_CELL
    task: str = "pick_cube"
    store: str = "data/demos.zarr"
    episodes: int = 10
    teleop: str = "expert"
    seed: int = 0
    noise: float = 0.0
    operator: str = ""
    only_success: bool = False
    jpeg_quality: int = 95
    cameras: bool = True
    overrides: Sequence[str] = ()
    task_overrides: Sequence[str] = ()
    progress: bool = True

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ConfigError("--episodes", str(self.episodes), "must be positive")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError("--quality", str(self.jpeg_quality), "must be in 1..100")
        if not self.noise >= 0.0:
            raise ConfigError("--noise", str(self.noise), "must be ≥ 0: the expert's action noise std, a fraction of "
                              "the action range (e.g. 0.1)")


def open_store(path: Path, cell: Any, cameras: dict[str, Any], quality: int) -> Any:
    """The store at ``path``, appended to, or a new one with the cell and its camera calibration
    (where nothing is, or an empty directory)."""
    from robolearn.config import to_dict
    from robolearn.store import DemoStore

    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return DemoStore.create(path, cell_config=to_dict(cell), cameras=cameras, jpeg_quality=quality)
    return DemoStore.open(path, mode="a")


def camera_calibration(env: Any) -> dict[str, Any]:
    """Intrinsics of every camera the env renders (what the store keeps as camera calibration)."""
    from robolearn.store.store import cameras_from_cell

    cameras = cameras_from_cell(env.unwrapped.cell) or {}
    for name, camera in env.unwrapped.cameras.items():
        intrinsics = getattr(camera, "intrinsics", None)
        if intrinsics is not None:
            cameras.setdefault(name, {})["intrinsics"] = {k: float(v) if isinstance(v, float) else v
                                                         for k, v in vars(intrinsics).items()}
    return cameras


class RecordingClock:
    """The store's one clock (``stamp_ns``, ns since the Unix epoch, what a ROS recorder's header
    stamps are): each episode's env stamps (the twin's clock restarts at 0 every episode) are shifted
    to start at the wall-clock time of the episode's reset, or one control period after the store's
    last stamp when that is later (a twin running faster than real time), so stamps never go back
    across episodes, runs included, and keep the env's spacing within an episode."""

    def __init__(self, store: Any, period_ns: int):
        self.period_ns = period_ns
        self.last_ns = int(store.array("stamp_ns")[store.n_steps - 1]) if store.n_steps and "stamp_ns" in store.keys \
            else None
        self.offset_ns = 0

    def start(self, env_stamp_ns: int) -> int:
        """Begin an episode whose first env stamp is ``env_stamp_ns``; returns its store stamp."""
        begin_ns = time.time_ns() if self.last_ns is None else max(time.time_ns(), self.last_ns + self.period_ns)
        self.offset_ns = begin_ns - int(env_stamp_ns)
        return self(env_stamp_ns)

    def __call__(self, env_stamp_ns: int) -> int:
        stamp_ns = int(env_stamp_ns) + self.offset_ns
        self.last_ns = stamp_ns
        return stamp_ns


def collect(settings: CollectSettings) -> dict[str, Any]:
    """Record ``settings.episodes`` episodes; returns what ``robolearn collect --json`` prints
    (``episodes_committed``, ``episodes_discarded``, ``success_rate``, the store's size and keys).
    A store that cannot take these episodes (other keys or frame sizes) raises ConfigError before
    anything is recorded."""
    from robolearn.env import make_env
    from robolearn.rollout import is_human_teleop, make_teleop, run_episode
    from robolearn.store import EpisodeRecorder

    env = make_env(settings.cell, settings.task, cameras=settings.cameras, overrides=list(settings.overrides),
                   task_overrides=list(settings.task_overrides), real_time=is_human_teleop(settings.teleop))
    unwrapped = env.unwrapped
    spaces = env.observation_space.spaces
    streams = list(spaces)
    store = None
    try:
        store = open_store(Path(settings.store), unwrapped.cell, camera_calibration(env), settings.jpeg_quality)
        recorder = EpisodeRecorder(store, streams, control_hz=unwrapped.cell.control_hz)
        clock = RecordingClock(store, round(unwrapped.cell.control_dt_s * 1e9))
        recorder.check_store({k: (spaces[k].shape, spaces[k].dtype) for k in streams}, env.action_space.shape)
        teleop = make_teleop(settings.teleop, env, noise_scale=settings.noise, seed=settings.seed)
    except BaseException as err:
        env.close()
        if store is not None:
            store.close()
        if isinstance(err, (FileNotFoundError, FileExistsError, ValueError)) and not isinstance(err, ConfigError):
            raise ConfigError("--store", settings.store, str(err)) from err
        raise
    source = "expert" if settings.teleop == "expert" else "teleop"
    task_name = getattr(unwrapped.task, "name", settings.task)
    committed: list[int] = []
    discarded, successes, attempts, missing = 0, 0, 0, 0
    last: dict[str, Any] = {}

    def act(obs: Any) -> Any:
        last["command"] = teleop.read()
        return last["command"]

    def on_reset() -> None:
        if hasattr(teleop, "reset"):
            teleop.reset()
        last["stamp_ns"] = clock.start(unwrapped.arm.state().stamp_ns)
        recorder.start(task=task_name, source=source, operator=settings.operator, seed=last["seed"],
                       cell=unwrapped.cell.name)

    def on_step(obs: Any, action: np.ndarray, reward: float, info: dict) -> None:
        stamp_ns = last["stamp_ns"]
        for key in streams:
            recorder.add(key, obs[key], stamp_ns)
        success = bool(info["success"])
        recorder.step(action, stamp_ns, reward=reward, success=success,
                      terminated=success and unwrapped.terminate_on_success,
                      intervention=bool(getattr(last.get("command"), "intervene", False)))
        last["stamp_ns"] = clock(info["stamp_ns"])

    progress = tqdm(total=settings.episodes, desc=f"collect {settings.task} ({settings.teleop})", unit="ep",
                    disable=None if settings.progress else True)
    try:
        while len(committed) < settings.episodes and attempts < 3 * settings.episodes:
            last["seed"] = settings.seed + attempts
            attempts += 1
            result = run_episode(env, act, seed=last["seed"], on_step=on_step, on_reset=on_reset)
            keep = result.ended_by in ("success", "time_limit") and result.steps > 0 \
                and not (settings.only_success and not result.success)
            if not keep:
                recorder.discard()
                discarded += 1
                if result.ended_by == "quit":
                    break
                continue
            index = recorder.commit(success=result.success, ended_by=result.ended_by)
            missing += sum(s["missing"] for s in recorder.report()["streams"].values())
            if index is None:
                discarded += 1
                continue
            committed.append(index)
            successes += int(result.success)
            progress.update(1)
            progress.set_postfix(success=f"{successes}/{len(committed)}")
        if committed:
            store.stats()
    finally:
        progress.close()
        recorder.close()
        store.close()
        teleop.disconnect()
        env.close()
    return {"store": str(store.path), "task": settings.task, "teleop": settings.teleop,
            "episodes_committed": len(committed), "episodes_discarded": discarded,
            "success_rate": successes / len(committed) if committed else 0.0, "n_episodes": store.n_episodes,
            "n_steps": store.n_steps, "missing_frames": missing, "keys": store.keys}
