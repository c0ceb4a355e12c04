"""The seams of robolearn (ARCHITECTURE.md, "The seams").

Every device and every simulated stand-in implements one of these small protocols, so the
same env, recorder, nodes and learners drive the twin and the real cell alike.

Conventions: timestamps are integer nanoseconds (``stamp_ns``) on the host's monotonic clock
unless a driver documents a hardware clock; lengths in metres, angles in radians, quaternions
as ``(w, x, y, z)``; images are ``(H, W, 3) uint8`` RGB and depth is ``(H, W) float32`` metres.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


def now_ns() -> int:
    """Host monotonic clock in nanoseconds; the default stamp source."""
    return time.monotonic_ns()


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one camera stream (no distortion; OpenCV convention, pixel centres
    at integer coordinates)."""

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float

    def matrix(self) -> np.ndarray:
        """The 3×3 camera matrix K."""
        return np.array(
            [[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    def project(self, points_cam_m: np.ndarray) -> np.ndarray:
        """Project ``(N, 3)`` points in the optical frame (x right, y down, z forward) to ``(N, 2)``
        pixel coordinates ``(u, v)``."""
        points = np.asarray(points_cam_m, dtype=np.float64)
        u = self.fx_px * points[:, 0] / points[:, 2] + self.cx_px
        v = self.fy_px * points[:, 1] / points[:, 2] + self.cy_px
        return np.stack([u, v], axis=1)


@dataclass
class Frame:
    """One capture of one camera.

    color: ``(H, W, 3) uint8`` RGB. depth_m: ``(H, W) float32`` metres, aligned to color, or None
    when the camera has no depth stream. stamp_ns: capture time.
    """

    color: np.ndarray
    depth_m: np.ndarray | None
    stamp_ns: int
    frame_index: int = 0


@runtime_checkable
class Camera(Protocol):
    """A color (and optionally depth) camera."""

    name: str

    @property
    def serial(self) -> str: ...

    @property
    def intrinsics(self) -> CameraIntrinsics: ...

    def connect(self) -> None: ...

    def read(self) -> Frame:
        """Block until the next frame and return it."""
        ...

    def disconnect(self) -> None: ...


@dataclass
class ArmState:
    """Proprioception of an arm with a parallel gripper.

    q_rad, dq_rad_s: ``(n_joints,)``. ee_pos_m: ``(3,)`` in the cell (world) frame.
    ee_quat_wxyz: ``(4,)``. gripper_width_m: finger opening.
    """

    q_rad: np.ndarray
    dq_rad_s: np.ndarray
    ee_pos_m: np.ndarray
    ee_quat_wxyz: np.ndarray
    gripper_width_m: float
    stamp_ns: int

    def proprio(self) -> np.ndarray:
        """Flat ``(n_joints + 3 + 4 + 1,) float32`` vector: q, ee position, ee quaternion, gripper."""
        return np.concatenate(
            [self.q_rad, self.ee_pos_m, self.ee_quat_wxyz, [self.gripper_width_m]]
        ).astype(np.float32)


@dataclass
class EEDeltaCommand:
    """One control-step command in end-effector space.

    translation_m: ``(3,)`` displacement of the end-effector target in the cell frame.
    rotation_rad: ``(3,)`` axis-angle rotation of the target, in the cell frame.
    gripper_closed: target closure in [0, 1] (0 fully open, 1 fully closed).
    """

    translation_m: np.ndarray
    rotation_rad: np.ndarray
    gripper_closed: float

    @classmethod
    def hold(cls) -> EEDeltaCommand:
        """A command that keeps the current target (and opens nothing: gripper stays as the arm
        decides for a hold, see ``Arm.stop``)."""
        return cls(np.zeros(3), np.zeros(3), float("nan"))

    def as_array(self) -> np.ndarray:
        """``(7,) float64``: translation, rotation, gripper."""
        return np.concatenate([self.translation_m, self.rotation_rad, [self.gripper_closed]])


@dataclass
class JointCommand:
    """An absolute joint position target for one control step.

    q_rad: ``(n_joints,)`` target joint positions. gripper_closed: target closure in [0, 1], or NaN
    to leave the gripper as it is.
    """

    q_rad: np.ndarray
    gripper_closed: float = float("nan")


@dataclass(frozen=True)
class Violation:
    """One safety event: what rule fired and what it did.

    kind: one of ``SafetyFilter.KINDS`` (e.g. ``workspace``, ``max_step``, ``nan``, ``joint_limit``,
    ``stale_command``, ``stale_frame``). detail: a human-readable sentence with the numbers.
    """

    kind: str
    detail: str


@dataclass
class AppliedCommand:
    """What an arm actually executed for one ``command`` or ``command_joints`` call, after the
    SafetyFilter."""

    command: EEDeltaCommand | JointCommand
    violations: list[Violation] = field(default_factory=list)
    stamp_ns: int = 0

    @property
    def clipped(self) -> bool:
        return bool(self.violations)


@runtime_checkable
class Arm(Protocol):
    """An arm with a parallel gripper, commanded in end-effector deltas at the control rate."""

    name: str

    def connect(self) -> None: ...

    def state(self) -> ArmState: ...

    def command(self, command: EEDeltaCommand) -> AppliedCommand:
        """Filter ``command`` through the SafetyFilter, send it, and return what was sent."""
        ...

    def command_joints(self, command: JointCommand) -> AppliedCommand:
        """Filter a joint position target (joint limits, joint speed, workspace box of the tool at
        that target, NaN/inf), send it, and return what was sent. The end-effector target of later
        ``command`` calls continues from where this one puts the tool."""
        ...

    def stop(self) -> None:
        """Hold the current pose (each driver documents what holding means on its hardware)."""
        ...

    def disconnect(self) -> None: ...


@dataclass
class TeleopCommand:
    """One read of a teleop device.

    ee_delta: ``(6,)`` in [-1, 1]: normalized translation xyz then rotation xyz, scaled to metres and
    radians by the env's action scale. gripper_closed: [0, 1] target closure.
    intervene: the human is driving (HIL-SERL: replaces the policy's action).
    success / failure / reset: episode buttons, true on the read where they were pressed.
    """

    ee_delta: np.ndarray
    gripper_closed: float
    intervene: bool = False
    success: bool = False
    failure: bool = False
    reset: bool = False
    quit: bool = False

    def action(self) -> np.ndarray:
        """The env action ``(7,) float32`` in [-1, 1] this command stands for."""
        return np.concatenate([self.ee_delta, [2.0 * self.gripper_closed - 1.0]]).astype(np.float32)


@runtime_checkable
class Teleop(Protocol):
    """A human (or scripted) source of end-effector commands and episode buttons."""

    def connect(self) -> None: ...

    def read(self) -> TeleopCommand: ...

    def disconnect(self) -> None: ...


Observation = dict[str, np.ndarray]
"""One env observation (no batch dimension). Keys (see ``robolearn.env``):
``state`` ``(D,) float32`` proprioception (``ArmState.proprio``); ``object_state`` ``(K,) float32``
privileged object poses (twin only); ``rgb_<camera>`` ``(H, W, 3) uint8``;
``depth_<camera>`` ``(H, W) float32`` metres."""


def real_cell_keys(keys: Any) -> list[str]:
    """The observation keys among ``keys`` that a real cell has: ``state`` and every camera's
    ``rgb_<camera>`` (never the twin's privileged ``object_state``)."""
    return sorted(k for k in keys if k == "state" or k.startswith("rgb_"))


@runtime_checkable
class Policy(Protocol):
    """Maps observations to env actions in [-1, 1]. Checkpoints are a directory with
    ``model.safetensors`` and ``config.json``."""

    def reset(self) -> None:
        """Clear any per-episode state (observation history, action chunk queue)."""
        ...

    def act(self, obs: Observation) -> np.ndarray:
        """One action ``(A,) float32`` for a single (unbatched) observation."""
        ...


@runtime_checkable
class RewardModel(Protocol):
    """Scores an observation: ``(reward, success_prob)``; success_prob in [0, 1]. A model may carry a
    calibrated ``threshold`` (see ``success_threshold``)."""

    def __call__(self, obs: Observation) -> tuple[float, float]: ...


def success_threshold(model: RewardModel) -> float:
    """The ``success_prob`` from which ``model`` calls success (``success_prob >= threshold``): its
    calibrated ``threshold``, else 0.5."""
    return float(getattr(model, "threshold", 0.5))
