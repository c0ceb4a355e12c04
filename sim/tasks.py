"""Twin tasks: ground-truth success, sparse and dense rewards from sim state, and randomization.

A task is chosen by name (``reach``, ``pick_cube``, ``push_cube``, and the reset tasks
``pick_cube_reset``, ``push_cube_reset``) or by a YAML file with a ``type`` key
(``configs/tasks/*.yaml``); its knobs are typed dataclass fields. ``TwinTask.reset`` randomizes the
scene with the env's generator, so episodes are reproducible per seed.

A reset task is the backward task of RoboFuME's reset-free loop: it undoes its forward task
(``RESET_TASKS``). Its episodes start from a success state of the forward task, reached by running
the forward task's scripted expert after the forward randomization.
"""

from __future__ import annotations

import dataclasses
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


@TaskConfig.register("pick_cube_reset")
@dataclass
class PickCubeResetConfig(PickCubeConfig):
    """Backward task of ``pick_cube``: from the cube lifted in the gripper, put it down on the table
    inside the reset region (``reset_x_range_m`` × ``reset_y_range_m``, centre of the cube), open the
    gripper and move the tool centre point ``clearance_m`` away from the cube's centre. The cube is
    down when its centre is within ``rest_tolerance_m`` of its resting height; the gripper is open
    when it is commanded open. The inherited ``pick_cube`` knobs describe the forward episodes whose
    success states start these episodes."""

    reset_x_range_m: tuple[float, float] = (0.45, 0.55)
    reset_y_range_m: tuple[float, float] = (-0.1, 0.1)
    rest_tolerance_m: float = 0.005
    clearance_m: float = 0.05


@TaskConfig.register("push_cube_reset")
@dataclass
class PushCubeResetConfig(PushCubeConfig):
    """Backward task of ``push_cube``: push the cube from the forward target back into the start
    region, a disc of ``reset_radius_m`` around ``reset_xy_m`` (the centre of ``push_cube``'s start
    box). The goal marker keeps showing the forward target, as it does in the reset-free loop. The
    inherited ``push_cube`` knobs describe the forward episodes whose success states start these."""

    reset_xy_m: tuple[float, float] = (0.5, 0.0)
    reset_radius_m: float = 0.03


RESET_TASKS: dict[str, str] = {"pick_cube": "pick_cube_reset", "push_cube": "push_cube_reset"}
"""Forward task → its backward (reset) task, for ``robolearn finetune --reset-free``."""


def reset_task_name(task: str | TaskConfig) -> str:
    """The registered reset task of a forward task (a name, a YAML or a config)."""
    name = load_task_config(task).type
    if name not in RESET_TASKS:
        raise ConfigError("--backward-task", "", f"task {name!r} has no registered reset task (those of "
                          f"{', '.join(sorted(RESET_TASKS))} do); pass --backward-task NAME_OR_YAML")
    return RESET_TASKS[name]


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
        objects = {o.name: o for o in twin.cell.objects}
        # Objects start at their configured height (only x, y and yaw are randomized): their resting height.
        self.object_rest_z_m = float(objects[config.object_name].pos_m[2]) if config.object_name in objects else 0.0

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


MAX_START_ATTEMPTS = 10


class ResetTask(TwinTask):
    """Base of the backward tasks. ``forward`` is the forward task on the same twin; ``reset``
    randomizes the scene as the forward task does, then runs the forward scripted expert until the
    forward task succeeds, redrawing (at most ``MAX_START_ATTEMPTS`` times) when it does not or when
    the scene already counts as reset."""

    forward_task_class: type[TwinTask]
    forward_config_class: type[TaskConfig]

    def __init__(self, config: TaskConfig, twin: Twin):
        super().__init__(config, twin)
        forward_fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(self.forward_config_class)}
        self.forward = self.forward_task_class(self.forward_config_class(**forward_fields), twin)

    def reset(self, rng: np.random.Generator) -> None:
        from robolearn.sim.experts import drive_to_success

        for _ in range(MAX_START_ATTEMPTS):
            self.forward.reset(rng)
            self.object_rest_z_m = self.forward.object_rest_z_m
            if drive_to_success(self.forward) and not self.evaluate()[1]:
                return
        raise ConfigError(self.name, "object ranges", f"the {self.forward.name} expert reached no start state "
                          f"(forward success, not yet reset) in {MAX_START_ATTEMPTS} scenes; widen the object ranges "
                          "or move the reset region away from where the forward task ends")


class PickCubeResetTask(ResetTask):
    config: PickCubeResetConfig
    forward_task_class = PickCubeTask
    forward_config_class = PickCubeConfig

    def evaluate(self) -> tuple[float, bool]:
        config = self.config
        pos, _ = self.twin.object_pose(config.object_name)
        low = np.array([config.reset_x_range_m[0], config.reset_y_range_m[0]])
        high = np.array([config.reset_x_range_m[1], config.reset_y_range_m[1]])
        outside_m = float(np.linalg.norm(np.maximum(low - pos[:2], 0.0) + np.maximum(pos[:2] - high, 0.0)))
        height_m = float(pos[2] - self.object_rest_z_m)
        down = abs(height_m) <= config.rest_tolerance_m
        opened = self.twin.arm.gripper_closed < 0.5
        distance_m = self._tcp_to_object_m()
        success = outside_m == 0.0 and down and opened and distance_m >= config.clearance_m
        placed = (1.0 - math.tanh(10.0 * outside_m)) * (1.0 - float(np.clip(height_m / config.lift_height_m, 0.0, 1.0)))
        released = placed * float(down and opened)
        cleared = released * min(distance_m / config.clearance_m, 1.0)
        return (1.0 if success else 0.99 * (0.5 * placed + 0.25 * released + 0.25 * cleared)), success


class PushCubeResetTask(ResetTask):
    config: PushCubeResetConfig
    forward_task_class = PushCubeTask
    forward_config_class = PushCubeConfig

    def evaluate(self) -> tuple[float, bool]:
        pos, _ = self.twin.object_pose(self.config.object_name)
        distance = float(np.linalg.norm(pos[:2] - np.asarray(self.config.reset_xy_m)))
        success = distance < self.config.reset_radius_m
        reach = 1.0 - math.tanh(10.0 * self._tcp_to_object_m())
        return (1.0 if success else 0.2 * reach + 0.79 * (1.0 - math.tanh(5.0 * distance))), success


TASK_CLASSES: dict[str, type[TwinTask]] = {
    "reach": ReachTask, "pick_cube": PickCubeTask, "push_cube": PushCubeTask,
    "pick_cube_reset": PickCubeResetTask, "push_cube_reset": PushCubeResetTask,
}


def make_task(config: TaskConfig, twin: Twin) -> TwinTask:
    if config.object_name not in {o.name for o in twin.cell.objects}:
        raise ConfigError(
            twin.cell.source_path or "<cell>", "objects",
            f"task {config.type!r} needs an object named {config.object_name!r}; add it to the cell or set the task's object_name",
        )
    return TASK_CLASSES[config.type](config, twin)
