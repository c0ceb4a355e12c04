"""The one SafetyFilter between every command source and every arm, real or simulated.

It is a pure function of the command and the arm's state, so the twin enforces exactly what the
real cell will: a twin score reflects what will actually run (ARCHITECTURE.md, "Safety").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robolearn.cell import SafetyConfig
from robolearn.interfaces import EEDeltaCommand, JointCommand, Violation
from robolearn.kinematics.rotations import rotvec_to_matrix

KINDS = (
    "nan",
    "max_step",
    "max_rotation",
    "tilt",
    "workspace",
    "gripper_range",
    "joint_limit",
    "joint_velocity",
    "stale_command",
    "stale_frame",
)


ABSURD = 1e3
TILT_BISECTIONS = 20  # the kept share of a tilting rotation is found to 2⁻²⁰


def tilt_rad(tool_rot: np.ndarray) -> float:
    """Angle between the tool's approach axis (the z column of the 3×3 ``tool_rot``, flange towards
    fingertips) and straight down (the cell's −z)."""
    return float(np.arccos(np.clip(-tool_rot[2, 2], -1.0, 1.0)))


def _fmt(vector: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in np.asarray(vector, dtype=float)) + "]"


@dataclass
class SafetyFilter:
    """Clips end-effector and joint commands to the cell's limits and reports every clip.

    joint_lower_rad / joint_upper_rad: ``(n_joints,)`` hard limits of the arm (the filter keeps
    ``joint_margin_rad`` away from them); None when only end-effector commands are filtered.
    tool_position_m: forward kinematics, joint positions ``(n_joints,)`` → tool centre point ``(3,)``
    in the cell frame; needed to check joint commands against the workspace box.
    """

    config: SafetyConfig
    joint_lower_rad: np.ndarray | None = None
    joint_upper_rad: np.ndarray | None = None
    tool_position_m: Callable[[np.ndarray], np.ndarray] | None = None

    def filter_ee_delta(
        self, command: EEDeltaCommand, target_pos_m: np.ndarray, target_rot: np.ndarray | None = None
    ) -> tuple[EEDeltaCommand, list[Violation]]:
        """Make ``command`` safe to apply to an end-effector target at ``target_pos_m`` ``(3,)`` with
        orientation ``target_rot`` (3×3, cell frame; the rotation is applied as ``exp(rotation) @ target_rot``).

        A command with any NaN or inf is rejected whole: it becomes a hold (zero motion, gripper
        unchanged, reported as ``nan``). Otherwise translation is scaled to ``max_step_m``, rotation
        to ``max_rot_step_rad``, the gripper clipped to [0, 1], and the resulting target is clipped into
        the workspace box. The translation never exceeds ``max_step_m``, even when ``target_pos_m`` is
        outside the box (a real arm latches its measured pose on connect): then the target moves
        straight towards the box at most ``max_step_m`` per step, never further out on any axis.
        With ``max_tilt_rad`` set (and ``target_rot`` given), the part of the rotation that would tilt
        the tool beyond it is cut (``tilt``); turning about the vertical is never limited, and from a
        target already tilted further the tool may straighten but not tilt more.
        """
        violations: list[Violation] = []
        raw = np.concatenate([command.translation_m, command.rotation_rad, [command.gripper_closed]])
        finite = np.isfinite(raw)
        gripper_is_hold = np.isnan(command.gripper_closed) and np.all(finite[:6])
        if not np.all(finite[:6]) or (not finite[6] and not gripper_is_hold):
            violations.append(Violation("nan", f"non-finite command {_fmt(raw)} rejected; holding"))
            return EEDeltaCommand.hold(), violations

        # Components beyond ±1 km/rad are garbage either way; bounding them keeps the norms finite.
        translation = np.clip(np.asarray(command.translation_m, dtype=np.float64), -ABSURD, ABSURD)
        step = float(np.linalg.norm(translation))
        if step > self.config.max_step_m:
            translation *= self.config.max_step_m / step
            violations.append(
                Violation("max_step", f"translation {step:.4f} m scaled to max_step_m {self.config.max_step_m:.4f}")
            )

        rotation = np.clip(np.asarray(command.rotation_rad, dtype=np.float64), -ABSURD, ABSURD)
        angle = float(np.linalg.norm(rotation))
        if angle > self.config.max_rot_step_rad:
            rotation *= self.config.max_rot_step_rad / angle
            violations.append(
                Violation(
                    "max_rotation",
                    f"rotation {angle:.4f} rad scaled to max_rot_step_rad {self.config.max_rot_step_rad:.4f}",
                )
            )

        if self.config.max_tilt_rad is not None and target_rot is not None:
            rotation, tilt = self._within_tilt(np.asarray(target_rot, dtype=np.float64), rotation)
            violations += tilt

        translation, workspace = self._into_workspace(np.asarray(target_pos_m, dtype=np.float64), translation)
        violations += workspace

        gripper = command.gripper_closed
        if not gripper_is_hold and not 0.0 <= gripper <= 1.0:
            violations.append(Violation("gripper_range", f"gripper {gripper:.3f} clipped to [0, 1]"))
            gripper = float(np.clip(gripper, 0.0, 1.0))
        return EEDeltaCommand(translation, rotation, gripper), violations

    def _within_tilt(self, target_rot: np.ndarray, rotation_rad: np.ndarray) -> tuple[np.ndarray, list[Violation]]:
        """The rotation ``(3,)`` that keeps the tool within ``max_tilt_rad`` of straight down: its turn
        about the vertical, plus the largest share of the rest that stays inside the cone."""
        limit = max(float(self.config.max_tilt_rad), tilt_rad(target_rot))
        wanted = tilt_rad(rotvec_to_matrix(rotation_rad) @ target_rot)
        if wanted <= limit:
            return rotation_rad, []
        vertical = np.array([0.0, 0.0, rotation_rad[2]])
        tilting = rotation_rad - vertical
        kept, cut = 0.0, 1.0  # tilt is continuous in the share: bisect between a share inside and one outside
        for _ in range(TILT_BISECTIONS):
            share = (kept + cut) / 2
            if tilt_rad(rotvec_to_matrix(vertical + share * tilting) @ target_rot) <= limit:
                kept = share
            else:
                cut = share
        detail = f"rotation {_fmt(rotation_rad)} rad would tilt the tool {wanted:.3f} rad from straight down; " \
                 f"cut to {kept:.2f} of its tilting part (max_tilt_rad {self.config.max_tilt_rad:.3f})"
        return vertical + kept * tilting, [Violation("tilt", detail)]

    def _into_workspace(self, target_m: np.ndarray, translation_m: np.ndarray) -> tuple[np.ndarray, list[Violation]]:
        """The translation ``(3,)`` (already within ``max_step_m``) that keeps ``target_m + translation``
        in the workspace box, or, from a target outside it, moves towards the box by at most ``max_step_m``."""
        lower = np.asarray(self.config.workspace_min_m, dtype=np.float64)
        upper = np.asarray(self.config.workspace_max_m, dtype=np.float64)
        wanted = target_m + translation_m
        clipped = np.clip(wanted, lower, upper)
        if np.array_equal(clipped, wanted):
            return translation_m, []
        # Clipping is a projection onto the box: from a target inside it, the step only shrinks.
        step = clipped - target_m
        length = float(np.linalg.norm(step))
        detail = f"target {_fmt(wanted)} m clipped into box {_fmt(lower)}..{_fmt(upper)}"
        if length > self.config.max_step_m:
            step *= self.config.max_step_m / length
            detail += f"; from {_fmt(target_m)} m outside it, moving at most max_step_m {self.config.max_step_m:.4f} towards it"
        return step, [Violation("workspace", detail)]

    def filter_joint_command(
        self, command: JointCommand, q_now_rad: np.ndarray, dt_s: float
    ) -> tuple[JointCommand, list[Violation]]:
        """Make a joint position command safe for one control step of ``dt_s`` from ``q_now_rad``.

        The target is checked as in ``filter_joint_target``; then, since a joint target cannot be
        clipped into a Cartesian box, a target whose tool centre point leaves the workspace box is
        rejected whole (the arm holds ``q_now_rad``, reported as ``workspace``). The gripper is
        clipped to [0, 1] (NaN leaves it).
        """
        if self.joint_lower_rad is None or self.tool_position_m is None:
            raise ValueError("joint commands need the arm's joint limits and forward kinematics in the SafetyFilter")
        q_now = np.asarray(q_now_rad, dtype=np.float64)
        target = np.asarray(command.q_rad, dtype=np.float64)
        if target.shape != q_now.shape:
            raise ValueError(f"a joint command needs {len(q_now)} positions (one per joint), got shape {target.shape}")
        gripper = float(command.gripper_closed)
        if np.isinf(gripper):
            return JointCommand(q_now.copy()), [Violation("nan", f"non-finite gripper {gripper} rejected; holding")]
        q_safe, violations = self.filter_joint_target(target, q_now, dt_s)
        if violations and violations[0].kind == "nan":
            return JointCommand(q_safe), violations
        tool = np.asarray(self.tool_position_m(q_safe), dtype=np.float64)
        lower = np.asarray(self.config.workspace_min_m, dtype=np.float64)
        upper = np.asarray(self.config.workspace_max_m, dtype=np.float64)
        if np.any(tool < lower) or np.any(tool > upper):
            violations.append(Violation("workspace", f"joint target puts the tool at {_fmt(tool)} m, outside the box "
                                                     f"{_fmt(lower)}..{_fmt(upper)}; rejected, holding"))
            q_safe = q_now.copy()
        if not np.isnan(gripper) and not 0.0 <= gripper <= 1.0:
            violations.append(Violation("gripper_range", f"gripper {gripper:.3f} clipped to [0, 1]"))
            gripper = float(np.clip(gripper, 0.0, 1.0))
        return JointCommand(q_safe, gripper), violations

    def filter_joint_target(
        self, q_target_rad: np.ndarray, q_now_rad: np.ndarray, dt_s: float
    ) -> tuple[np.ndarray, list[Violation]]:
        """Make a joint position target ``(n_joints,)`` safe: finite, within limits less the margin,
        and reachable from ``q_now_rad`` at ``max_joint_vel_rad_s`` within ``dt_s``. A non-finite
        target is rejected (returns ``q_now_rad``)."""
        violations: list[Violation] = []
        q_now = np.asarray(q_now_rad, dtype=np.float64)
        target = np.asarray(q_target_rad, dtype=np.float64)
        if not np.all(np.isfinite(target)):
            violations.append(Violation("nan", f"non-finite joint target {_fmt(target)} rejected; holding"))
            return q_now.copy(), violations
        if self.joint_lower_rad is not None and self.joint_upper_rad is not None:
            margin = self.config.joint_margin_rad
            lo, hi = self.joint_lower_rad + margin, self.joint_upper_rad - margin
            limited = np.clip(target, lo, hi)
            if not np.array_equal(limited, target):
                joints = np.flatnonzero(limited != target).tolist()
                violations.append(Violation("joint_limit", f"joints {joints} clipped into limits less {margin} rad"))
                target = limited
        max_delta = self.config.max_joint_vel_rad_s * dt_s
        delta = target - q_now
        if np.any(np.abs(delta) > max_delta):
            violations.append(
                Violation(
                    "joint_velocity",
                    f"joint step {np.abs(delta).max():.4f} rad exceeds {max_delta:.4f} rad "
                    f"({self.config.max_joint_vel_rad_s} rad/s for {dt_s:.3f} s); clipped",
                )
            )
            target = q_now + np.clip(delta, -max_delta, max_delta)
        return target, violations


class Watchdog:
    """Reports when the last fed event (a command, a frame) is older than ``timeout_s``."""

    def __init__(self, timeout_s: float, kind: str = "stale_command"):
        self.timeout_ns = int(timeout_s * 1e9)
        self.kind = kind
        self.last_ns: int | None = None

    def feed(self, stamp_ns: int) -> None:
        self.last_ns = stamp_ns

    def check(self, now_ns: int) -> Violation | None:
        """A violation when nothing was fed yet or the last event is too old, else None."""
        if self.last_ns is None:
            return Violation(self.kind, "nothing received yet; holding")
        age_ns = now_ns - self.last_ns
        if age_ns > self.timeout_ns:
            return Violation(
                self.kind, f"last event {age_ns / 1e6:.0f} ms old exceeds timeout {self.timeout_ns / 1e6:.0f} ms; holding"
            )
        return None
