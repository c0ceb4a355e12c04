"""Scripted experts: one ``Teleop`` per twin task, reading privileged sim state.

They produce demonstrations with no person at the keyboard. Each is a small state machine over
waypoints; ``noise_scale`` adds Gaussian noise (std as a fraction of the action range) for varied
demonstrations and for failure data. The reset tasks' experts undo their forward task (the backward
demonstrations of RoboFuME's reset-free loop); ``drive_to_success`` runs an expert on the twin
directly, which is how a reset task reaches its start state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robolearn.interfaces import TeleopCommand
from robolearn.sim.tasks import (
    PickCubeResetTask,
    PickCubeTask,
    PushCubeResetTask,
    PushCubeTask,
    ReachTask,
    TwinTask,
    yaw_of,
)

APPROACH_HEIGHT_M = 0.08
GRASP_STEPS = 4


def _wrap_quarter_turn(angle_rad: float) -> float:
    """``angle`` folded into [−π/4, π/4): a square cube looks the same every quarter turn."""
    return (angle_rad + math.pi / 4) % (math.pi / 2) - math.pi / 4


class ScriptedExpert:
    """Implements ``robolearn.interfaces.Teleop`` for a twin task."""

    def __init__(self, task: TwinTask, noise_scale: float = 0.0, seed: int | None = None):
        self.task = task
        self.twin = task.twin
        self.noise_scale = noise_scale
        self.rng = np.random.default_rng(seed)
        safety = self.twin.cell.safety
        self.max_step_m = safety.max_step_m
        self.max_rot_step_rad = safety.max_rot_step_rad
        self.reset()

    def connect(self) -> None:
        """Nothing to connect."""

    def disconnect(self) -> None:
        """Nothing to release."""

    def reset(self) -> None:
        """Call after every env reset."""
        self.phase = 0
        self.phase_steps = 0

    def reseed(self, seed: int) -> None:
        """Restart the action noise from ``seed`` (a resumable run reseeds every episode)."""
        self.rng = np.random.default_rng(seed)

    def read(self) -> TeleopCommand:
        translation_m, yaw_rad, gripper_closed = self.plan()
        delta = np.zeros(6)
        delta[:3] = np.clip(translation_m / self.max_step_m, -1.0, 1.0)
        delta[5] = np.clip(yaw_rad / self.max_rot_step_rad, -1.0, 1.0)
        if self.noise_scale:
            delta = np.clip(delta + self.rng.normal(0.0, self.noise_scale, 6), -1.0, 1.0)
        self.phase_steps += 1
        return TeleopCommand(ee_delta=delta, gripper_closed=gripper_closed)

    def plan(self) -> tuple[np.ndarray, float, float]:
        """``(translation towards the next waypoint (3,) m, yaw correction rad, gripper closure)``."""
        raise NotImplementedError

    def _advance(self) -> None:
        self.phase += 1
        self.phase_steps = 0

    @property
    def tcp_m(self) -> np.ndarray:
        return self.twin.arm.state().ee_pos_m

    def _tcp_yaw_rad(self) -> float:
        # The hand's closing axis is the tool frame's y; its yaw is the tool x-axis heading.
        rotation = self.twin.data.site_xmat[self.twin.arm.site_id].reshape(3, 3)
        return math.atan2(rotation[1, 0], rotation[0, 0])


class ReachExpert(ScriptedExpert):
    def plan(self) -> tuple[np.ndarray, float, float]:
        return self.twin.goal_pos_m - self.tcp_m, 0.0, 0.0


class PickCubeExpert(ScriptedExpert):
    """Above the cube, yaw aligned → down → close → lift."""

    def plan(self) -> tuple[np.ndarray, float, float]:
        cube_m, quat = self.twin.object_pose(self.task.config.object_name)
        yaw_error = _wrap_quarter_turn(yaw_of(quat) - self._tcp_yaw_rad())
        tcp = self.tcp_m
        if self.phase == 0:
            target = cube_m + np.array([0.0, 0.0, APPROACH_HEIGHT_M])
            if np.linalg.norm(target - tcp) < 0.01 and abs(yaw_error) < 0.05:
                self._advance()
            return target - tcp, yaw_error, 0.0
        if self.phase == 1:
            target = cube_m + np.array([0.0, 0.0, -0.005])
            if np.linalg.norm(target - tcp) < 0.008:
                self._advance()
            return target - tcp, yaw_error, 0.0
        if self.phase == 2:
            if self.phase_steps >= GRASP_STEPS:
                self._advance()
            return np.zeros(3), 0.0, 1.0
        lift = self.task.config.lift_height_m + 0.05
        target = np.array([tcp[0], tcp[1], self.task.object_rest_z_m + lift])
        return target - tcp, 0.0, 1.0


class PushCubeExpert(ScriptedExpert):
    """Behind the cube on the line to the target, fingers closed → down → push along the line. Fingers
    that start low beside the cube rise before moving over it."""

    CONTACT_OFFSET_M = 0.045
    PUSH_HEIGHT_M = 0.02

    def target_xy(self) -> np.ndarray:
        """Where the cube's centre goes ``(2,)`` m: the goal marker."""
        return self.twin.goal_pos_m[:2]

    def plan(self) -> tuple[np.ndarray, float, float]:
        cube_m, _ = self.twin.object_pose(self.task.config.object_name)
        goal = self.target_xy()
        line = goal - cube_m[:2]
        direction = line / max(np.linalg.norm(line), 1e-6)
        behind = cube_m[:2] - direction * self.CONTACT_OFFSET_M
        table_z = self.twin.cell.table.height_m
        tcp = self.tcp_m
        # Keep the fingers' broad side (the tool y-axis) across the pushing direction.
        yaw_error = _wrap_quarter_turn(math.atan2(direction[1], direction[0]) - self._tcp_yaw_rad())
        offset = tcp[:2] - cube_m[:2]
        lateral_m = abs(offset[0] * direction[1] - offset[1] * direction[0])
        if self.phase == 0:
            target = np.array([behind[0], behind[1], table_z + APPROACH_HEIGHT_M])
            if tcp[2] < target[2] - 0.02 and np.linalg.norm(target[:2] - tcp[:2]) > 0.02:
                return np.array([0.0, 0.0, target[2] - tcp[2]]), yaw_error, 1.0
            if np.linalg.norm(target - tcp) < 0.01:
                self._advance()
            return target - tcp, yaw_error, 1.0
        if self.phase == 1:
            target = np.array([behind[0], behind[1], table_z + self.PUSH_HEIGHT_M])
            if np.linalg.norm(target - tcp) < 0.008:
                self._advance()
            return target - tcp, yaw_error, 1.0
        if lateral_m > 0.015:
            self.phase = 0
            return np.array([0.0, 0.0, APPROACH_HEIGHT_M]), 0.0, 1.0
        push_to = goal - direction * (self.CONTACT_OFFSET_M - 0.01)
        target = np.array([push_to[0], push_to[1], table_z + self.PUSH_HEIGHT_M])
        return (target - tcp) * 0.5, yaw_error, 1.0


class PushCubeResetExpert(PushCubeExpert):
    """Pushes the cube back to the centre of the reset region (the goal marker shows the forward target)."""

    def target_xy(self) -> np.ndarray:
        return np.asarray(self.task.config.reset_xy_m, dtype=np.float64)


class PickCubeResetExpert(ScriptedExpert):
    """Carry the held cube over the reset region → lower it onto the table → open → retreat upwards.
    A cube already down inside the region is released where it is; one down outside it is picked up
    first (as ``PickCubeExpert`` does)."""

    PICK, CARRY, LOWER, RELEASE, RETREAT = range(5)
    PLACE_MARGIN_M = 0.02
    CARRY_CLEARANCE_M = 0.03

    def reset(self) -> None:
        super().reset()
        self.picker = PickCubeExpert(self.task)

    def _go(self, phase: int) -> None:
        self.phase, self.phase_steps = phase, 0

    def plan(self) -> tuple[np.ndarray, float, float]:
        config = self.task.config
        cube_m, _ = self.twin.object_pose(config.object_name)
        rest_z = self.task.object_rest_z_m
        low = np.array([config.reset_x_range_m[0], config.reset_y_range_m[0]])
        high = np.array([config.reset_x_range_m[1], config.reset_y_range_m[1]])
        place = np.clip(cube_m[:2], low + self.PLACE_MARGIN_M, high - self.PLACE_MARGIN_M)
        if self.phase == self.PICK:
            held = self.twin.arm.gripper_closed > 0.5 and cube_m[2] > rest_z + 0.01
            down_inside = abs(cube_m[2] - rest_z) <= config.rest_tolerance_m and np.all(
                (cube_m[:2] >= low) & (cube_m[:2] <= high))
            if held:
                self._go(self.CARRY)
            elif down_inside:
                self._go(self.RELEASE)
            else:
                plan = self.picker.plan()
                self.picker.phase_steps += 1
                return plan
        if self.phase == self.CARRY:
            carry_z = rest_z + config.lift_height_m + self.CARRY_CLEARANCE_M
            offset = np.array([place[0] - cube_m[0], place[1] - cube_m[1], carry_z - cube_m[2]])
            if np.linalg.norm(offset[:2]) < 0.005:
                self._go(self.LOWER)
            return offset, 0.0, 1.0
        if self.phase == self.LOWER:
            if cube_m[2] - rest_z < 0.004:
                self._go(self.RELEASE)
            return np.array([place[0] - cube_m[0], place[1] - cube_m[1], rest_z + 0.002 - cube_m[2]]), 0.0, 1.0
        if self.phase == self.RELEASE:
            if self.phase_steps >= GRASP_STEPS:
                self._go(self.RETREAT)
            return np.zeros(3), 0.0, 0.0
        return cube_m + np.array([0.0, 0.0, APPROACH_HEIGHT_M]) - self.tcp_m, 0.0, 0.0


EXPERTS: dict[type[TwinTask], type[ScriptedExpert]] = {
    ReachTask: ReachExpert,
    PickCubeTask: PickCubeExpert,
    PushCubeTask: PushCubeExpert,
    PickCubeResetTask: PickCubeResetExpert,
    PushCubeResetTask: PushCubeResetExpert,
}


class RandomOperator:
    """Uniformly random end-effector deltas and gripper closures, independent at every read: what an
    untrained policy does. Its episodes are the negatives a success classifier needs besides the
    expert's near-misses (a gripper closed on nothing, the arm raised empty), the states online
    fine-tuning visits first. Implements ``robolearn.interfaces.Teleop``."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def connect(self) -> None:
        """Nothing to connect."""

    def disconnect(self) -> None:
        """Nothing to release."""

    def reset(self) -> None:
        """Nothing to reset: every read is independent."""

    def read(self) -> TeleopCommand:
        return TeleopCommand(ee_delta=self.rng.uniform(-1.0, 1.0, 6), gripper_closed=float(self.rng.uniform(0.0, 1.0)))


def make_expert(env_or_task: Any, noise_scale: float = 0.0, seed: int | None = None) -> ScriptedExpert:
    """The scripted expert for a twin env (``make_env``), its ``TwinTask``, or a twin with a task."""
    task = getattr(getattr(env_or_task, "unwrapped", env_or_task), "task", env_or_task)
    if not isinstance(task, TwinTask):
        raise TypeError(f"a scripted expert needs a twin task, got {type(env_or_task).__name__}")
    return EXPERTS[type(task)](task, noise_scale=noise_scale, seed=seed)


def drive_to_success(task: TwinTask, max_steps: int | None = None) -> bool:
    """Run ``task``'s scripted expert on its twin (no env, nothing rendered; commands go through the
    arm's safety filter as env steps do) until the task's ground truth says success; whether it did
    within ``max_steps`` control steps (default: the task's episode length)."""
    from robolearn.env import action_to_command

    twin, safety = task.twin, task.twin.cell.safety
    expert = make_expert(task)
    for _ in range(max_steps or task.config.max_episode_steps):
        twin.arm.command(action_to_command(expert.read().action(), safety.max_step_m, safety.max_rot_step_rad))
        twin.advance(twin.cell.control_dt_s)
        if task.evaluate()[1]:
            return True
    return False
