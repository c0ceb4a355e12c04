"""``RobotEnv``: one gymnasium env over an arm, cameras and a task, for the twin and the real cell.

Observations are a dict (no batch dimension): ``state`` ``(15,) float32`` (``ArmState.proprio``),
``object_state`` ``(10,) float32`` (privileged, twin only), ``rgb_<camera>`` ``(H, W, 3) uint8`` and
``depth_<camera>`` ``(H, W) float32`` metres. Actions are ``(7,) float32`` in [−1, 1]: end-effector
translation and rotation (scaled to the cell's ``max_step_m`` / ``max_rot_step_rad``) and gripper
(−1 open, +1 closed). Every action goes through the arm's SafetyFilter; ``info["violations"]``
lists what it clipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from robolearn.cell import CellConfig, load_cell
from robolearn.errors import UsageError
from robolearn.interfaces import Arm, Camera, EEDeltaCommand, Observation

STATE_DIM = 15
OBJECT_STATE_DIM = 10
ACTION_DIM = 7


class Task(Protocol):
    """What the env needs from a task: reset the scene, score it, and (twin) privileged state."""

    name: str

    def reset(self, rng: np.random.Generator) -> None: ...

    def reward(self, obs: Observation) -> tuple[float, bool]:
        """``(reward, success)`` for the state now (``obs`` is the observation of it)."""
        ...

    def object_state(self) -> np.ndarray | None: ...


def action_to_command(action: np.ndarray, max_step_m: float, max_rot_step_rad: float) -> EEDeltaCommand:
    """Scale a ``(7,)`` env action in [−1, 1] to an end-effector delta command (NaN passes through,
    for the SafetyFilter to reject)."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
    clipped = np.clip(action, -1.0, 1.0)
    clipped[np.isnan(action)] = np.nan
    return EEDeltaCommand(clipped[:3] * max_step_m, clipped[3:6] * max_rot_step_rad, float((clipped[6] + 1.0) / 2.0))


class RealTimeTick:
    """Sleeps until the next control tick on the host clock (real hardware, and the twin driven by
    a person); a tick that is already late starts the schedule afresh."""

    def __init__(self, control_hz: float):
        self.period_ns = int(1e9 / control_hz)
        self.next_ns = time.monotonic_ns()

    def __call__(self, duration_s: float) -> None:
        self.next_ns += self.period_ns
        delay_ns = self.next_ns - time.monotonic_ns()
        if delay_ns > 0:
            time.sleep(delay_ns / 1e9)
        else:
            self.next_ns = time.monotonic_ns()


def paced(advance: Callable[[float], None], control_hz: float) -> Callable[[float], None]:
    """A tick that runs ``advance(duration_s)`` (the twin's physics) and then waits for the next
    control tick, so the twin runs no faster than real time (what a person at a teleop device needs)."""
    wait = RealTimeTick(control_hz)

    def tick(duration_s: float) -> None:
        advance(duration_s)
        wait(duration_s)

    return tick


class RobotEnv(gym.Env):
    """A gymnasium env over ``arm``, ``cameras`` and ``task``; ``tick(dt_s)`` lets a control period
    pass (the twin advances physics; real hardware sleeps)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        cell: CellConfig,
        arm: Arm,
        cameras: dict[str, Camera],
        task: Task,
        tick: Callable[[float], None],
        max_episode_steps: int,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
    ):
        self.cell, self.arm, self.cameras, self.task, self.tick = cell, arm, cameras, task, tick
        self.max_episode_steps = max_episode_steps
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": cell.control_hz}
        spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)}
        if task.object_state() is not None:
            spaces["object_state"] = gym.spaces.Box(-np.inf, np.inf, (OBJECT_STATE_DIM,), np.float32)
        camera_configs = {c.name: c for c in cell.cameras}
        for name in cameras:
            config = camera_configs[name]
            spaces[f"rgb_{name}"] = gym.spaces.Box(0, 255, (config.height_px, config.width_px, 3), np.uint8)
            if config.depth:
                spaces[f"depth_{name}"] = gym.spaces.Box(0.0, np.inf, (config.height_px, config.width_px), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._steps = 0
        self._last_obs: Observation | None = None

    def _observe(self) -> Observation:
        obs: Observation = {"state": self.arm.state().proprio()}
        object_state = self.task.object_state()
        if object_state is not None:
            obs["object_state"] = object_state.astype(np.float32)
        for name, camera in self.cameras.items():
            frame = camera.read()
            obs[f"rgb_{name}"] = frame.color
            if f"depth_{name}" in self.observation_space.spaces:
                obs[f"depth_{name}"] = frame.depth_m
        self._last_obs = obs
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        super().reset(seed=seed)
        self.task.reset(self.np_random)
        self._steps = 0
        obs = self._observe()
        _, success = self.task.reward(obs)
        return obs, {"success": success, "violations": [], "stamp_ns": self.arm.state().stamp_ns}

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool, dict]:
        safety = self.cell.safety
        applied = self.arm.command(action_to_command(action, safety.max_step_m, safety.max_rot_step_rad))
        self.tick(self.cell.control_dt_s)
        self._steps += 1
        obs = self._observe()
        reward, success = self.task.reward(obs)
        terminated = bool(success and self.terminate_on_success)
        truncated = self._steps >= self.max_episode_steps and not terminated
        info = {
            "success": success,
            "violations": [f"{v.kind}: {v.detail}" for v in applied.violations],
            "stamp_ns": self.arm.state().stamp_ns,
        }
        return obs, float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The first camera's last color image ``(H, W, 3) uint8``."""
        if self._last_obs is None or not self.cameras:
            return None
        return self._last_obs[f"rgb_{next(iter(self.cameras))}"]

    def close(self) -> None:
        for camera in self.cameras.values():
            camera.disconnect()
        self.arm.disconnect()


def make_env(
    cell: str | Path | CellConfig = "configs/cells/sim_panda.yaml",
    task: str = "pick_cube",
    seed: int | None = None,
    cameras: bool | Sequence[str] = True,
    overrides: Sequence[str] = (),
    task_overrides: Sequence[str] = (),
    render_mode: str | None = None,
    real_time: bool = False,
) -> RobotEnv:
    """The twin env of ``cell`` for ``task`` (a name or a task YAML).

    cameras: all of the cell's cameras (True), none (False: state-only, fast), or the named ones.
    real_time: pace every step to the cell's control rate on the host clock (a person teleoperating
    the twin); by default the twin runs as fast as it computes.
    """
    from robolearn.sim import Twin
    from robolearn.sim.tasks import load_task_config, make_task

    cell_config = cell if isinstance(cell, CellConfig) else load_cell(cell, list(overrides))
    task_config = load_task_config(task, list(task_overrides))
    twin = Twin(cell_config)
    twin_task = make_task(task_config, twin)
    if cameras is True:
        names = list(twin.cameras)
    elif cameras is False:
        names = []
    else:
        names = list(cameras)
        unknown = sorted(set(names) - set(twin.cameras))
        if unknown:
            raise UsageError(f"unknown cameras {unknown}; the cell has {sorted(twin.cameras)}")
    env = RobotEnv(
        cell_config,
        twin.arm,
        {name: twin.cameras[name] for name in names},
        twin_task,
        tick=paced(twin.advance, cell_config.control_hz) if real_time else twin.advance,
        max_episode_steps=task_config.max_episode_steps,
        terminate_on_success=task_config.terminate_on_success,
        render_mode=render_mode,
    )
    env.twin = twin
    twin.task = twin_task
    if seed is not None:
        env.reset(seed=seed)
    return env
