"""Twin tasks: ground-truth success, sparse and dense rewards from sim state, and randomization.

A task is chosen by name (``reach``, ``pick_cube``, ``push_cube``) or by a YAML file with a ``type``
key (``configs/tasks/*.yaml``); its knobs are typed dataclass fields. ``TwinTask.reset`` randomizes
the scene with the env's generator, so episodes are reproducible per seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robolearn.config import ChoiceBase, ChoiceRegistry, ConfigError, from_dict, read_yaml

if TYPE_CHECKING:
    from robolearn.sim.twin import Twin


@dataclass
class TaskConfig(ChoiceBase):
    """Knobs shared by every twin task.

    reward: ``sparse`` (1 on success, else 0) or ``dense`` (shaped, in [0, 1], 1 on success).
    object_x_range_m / object_y_range_m: where the object is placed (cell frame).
    object_yaw_range_rad: yaw drawn from ±this. light_jitter: diffuse scaled by 1 ± this.
    camera_pos_jitter_m: world cameras moved by up to ± this per axis.
    """

    registry = ChoiceRegistry("task")

    max_episode_steps: int = 100
    reward: str = "sparse"
    terminate_on_success: bool = True
    object_name: str = "cube"
    object_x_range_m: tuple[float, float] = (0.4, 0.6)
    object_y_range_m: tuple[float, float] = (-0.15, 0.15)
    object_yaw_range_rad: float = math.pi / 4
    light_jitter: float = 0.0
    camera_pos_jitter_m: float = 0.0

    def __post_init__(self) -> None:
        if self.reward not in ("sparse", "dense"):
            raise ValueError(f"reward must be 'sparse' or 'dense', got {self.reward!r}")
        if self.max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be positive, got {self.max_episode_steps}")


@TaskConfig.register("reach")
@dataclass
class ReachConfig(TaskConfig):
    """Bring the tool centre point within ``success_radius_m`` of a goal drawn in the goal box."""

    max_episode_steps: int = 50
    goal_low_m: tuple[float, float, float] = (0.35, -0.2, 0.1)
    goal_high_m: tuple[float, float, float] = (0.65, 0.2, 0.35)
    success_radius_m: float = 0.02


@TaskConfig.register("pick_cube")
@dataclass
class PickCubeConfig(TaskConfig):
    """Lift the randomly placed cube ``lift_height_m`` above its resting height."""

    lift_height_m: float = 0.05


@TaskConfig.register("push_cube")
@dataclass
class PushCubeConfig(TaskConfig):
    """Push the cube until its centre is within ``success_radius_m`` of a target on the table."""

    max_episode_steps: int = 120
    object_x_range_m: tuple[float, float] = (0.45, 0.55)
    object_y_range_m: tuple[float, float] = (-0.1, 0.1)
    target_distance_range_m: tuple[float, float] = (0.08, 0.15)
    success_radius_m: float = 0.03


def load_task_config(task: str | TaskConfig, overrides: tuple[str, ...] | list[str] = ()) -> TaskConfig:
    """A task by registered name (defaults) or by YAML path (``type`` + knobs), with overrides."""
    from robolearn.config import apply_overrides

    if isinstance(task, TaskConfig):
        return task
    if task.endswith((".yaml", ".yml")) or Path(task).is_file():
        return from_dict(TaskConfig, apply_overrides(read_yaml(task), overrides), source=task)
    if task not in TaskConfig.registry:
        raise ConfigError("--task", "", f"unknown task {task!r}; registered: {', '.join(TaskConfig.registry.names())}")
    return from_dict(TaskConfig, apply_overrides({"type": task}, overrides), source=f"task {task}")


def yaw_of(quat_wxyz: np.ndarray) -> float:
    w, x, y, z = quat_wxyz
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class TwinTask:
    """Base of the twin tasks: scene randomization plus ``evaluate`` and ``object_state``."""

    def __init__(self, config: TaskConfig, twin: Twin):
        self.config = config
        self.twin = twin
        model = twin.model
        self._light_diffuse = model.light_diffuse.copy()
        self._world_cams = [model.camera(c.name).id for c in twin.cell.cameras if c.mount == "world"]
        self._cam_pos = model.cam_pos.copy()
        self.object_rest_z_m = 0.0

    @property
    def name(self) -> str:
        return self.config.type

    def reset(self, rng: np.random.Generator) -> None:
        """Reset the twin and randomize objects, lights and cameras."""
        twin, config, model = self.twin, self.config, self.twin.model
        twin.reset()
        if config.light_jitter:
            model.light_diffuse[:] = self._light_diffuse * rng.uniform(1 - config.light_jitter, 1 + config.light_jitter)
        if config.camera_pos_jitter_m:
            for cam in self._world_cams:
                model.cam_pos[cam] = self._cam_pos[cam] + rng.uniform(-1, 1, 3) * config.camera_pos_jitter_m
        if config.object_name in {o.name for o in twin.cell.objects}:
            pos, _ = twin.object_pose(config.object_name)
            pos[0] = rng.uniform(*config.object_x_range_m)
            pos[1] = rng.uniform(*config.object_y_range_m)
            yaw = rng.uniform(-config.object_yaw_range_rad, config.object_yaw_range_rad)
            twin.set_object_pose(config.object_name, pos, np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]))
            self.object_rest_z_m = float(pos[2])
        self.randomize_goal(rng)
        twin.forward()
        twin.arm.reset_target()

    def randomize_goal(self, rng: np.random.Generator) -> None:
        self.twin.set_goal(np.zeros(3), visible=False)

    def evaluate(self) -> tuple[float, bool]:
        """``(dense_reward in [0, 1], success)`` from the twin's state now."""
        raise NotImplementedError

    def reward(self, obs: dict | None = None) -> tuple[float, bool]:
        """``(reward, success)`` with the configured reward type (from sim state; ``obs`` unused)."""
        dense, success = self.evaluate()
        return (dense if self.config.reward == "dense" else float(success)), success

    def object_state(self) -> np.ndarray:
        """Privileged state ``(10,) float32``: object position, object quaternion, goal position."""
        pos, quat = self.twin.object_pose(self.config.object_name)
        return np.concatenate([pos, quat, self.twin.goal_pos_m]).astype(np.float32)

    def _tcp_to_object_m(self) -> float:
        pos, _ = self.twin.object_pose(self.config.object_name)
        return float(np.linalg.norm(self.twin.arm.state().ee_pos_m - pos))


class ReachTask(TwinTask):
    config: ReachConfig

    def randomize_goal(self, rng: np.random.Generator) -> None:
        self.twin.set_goal(rng.uniform(self.config.goal_low_m, self.config.goal_high_m), visible=True)

    def evaluate(self) -> tuple[float, bool]:
        distance = float(np.linalg.norm(self.twin.arm.state().ee_pos_m - self.twin.goal_pos_m))
        success = distance < self.config.success_radius_m
        return (1.0 if success else 1.0 - math.tanh(5.0 * distance)), success


class PickCubeTask(TwinTask):
    config: PickCubeConfig

    def evaluate(self) -> tuple[float, bool]:
        pos, _ = self.twin.object_pose(self.config.object_name)
        lift_fraction = float(np.clip((pos[2] - self.object_rest_z_m) / self.config.lift_height_m, 0.0, 1.0))
        success = lift_fraction >= 1.0
        reach = 1.0 - math.tanh(10.0 * self._tcp_to_object_m())
        return (1.0 if success else 0.3 * reach + 0.7 * lift_fraction * 0.99), success


class PushCubeTask(TwinTask):
    config: PushCubeConfig

    def randomize_goal(self, rng: np.random.Generator) -> None:
        pos, _ = self.twin.object_pose(self.config.object_name)
        workspace_min = np.asarray(self.twin.cell.safety.workspace_min_m)
        workspace_max = np.asarray(self.twin.cell.safety.workspace_max_m)
        for _ in range(100):
            angle = rng.uniform(-math.pi, math.pi)
            distance = rng.uniform(*self.config.target_distance_range_m)
            target = pos[:2] + distance * np.array([math.cos(angle), math.sin(angle)])
            # Keep room behind the cube for the pushing fingers inside the workspace.
            behind = pos[:2] - 0.08 * np.array([math.cos(angle), math.sin(angle)])
            if np.all((target > workspace_min[:2] + 0.05) & (target < workspace_max[:2] - 0.05)) and np.all(
                (behind > workspace_min[:2]) & (behind < workspace_max[:2])
            ):
                break
        self.twin.set_goal(np.array([target[0], target[1], self.twin.cell.table.height_m + 0.001]), visible=True)

    def evaluate(self) -> tuple[float, bool]:
        pos, _ = self.twin.object_pose(self.config.object_name)
        distance = float(np.linalg.norm(pos[:2] - self.twin.goal_pos_m[:2]))
        success = distance < self.config.success_radius_m
        reach = 1.0 - math.tanh(10.0 * self._tcp_to_object_m())
        return (1.0 if success else 0.2 * reach + 0.79 * (1.0 - math.tanh(5.0 * distance))), success


TASK_CLASSES: dict[str, type[TwinTask]] = {"reach": ReachTask, "pick_cube": PickCubeTask, "push_cube": PushCubeTask}


def make_task(config: TaskConfig, twin: Twin) -> TwinTask:
    if config.object_name not in {o.name for o in twin.cell.objects}:
        raise ConfigError(
            twin.cell.source_path or "<cell>", "objects",
            f"task {config.type!r} needs an object named {config.object_name!r}; add it to the cell or set the task's object_name",
        )
    return TASK_CLASSES[config.type](config, twin)
