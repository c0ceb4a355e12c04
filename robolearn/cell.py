"""The cell config: everything about one robot cell, real or simulated, in one YAML file.

A cell has a robot *model* (kinematics and geometry, used by the twin whether or not the arm is
real), an arm *driver* (``sim`` or a hardware type), cameras (pose and intrinsics, rendered by the
twin or read from hardware), a scene (table, objects, lights), the control rate and the safety
limits. ``configs/cells/sim_panda.yaml`` is the reference example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from robolearn.config import ChoiceBase, ChoiceRegistry, ConfigError, load_config
from robolearn.interfaces import CameraIntrinsics


@dataclass
class RobotModelConfig:
    """Robot kinematics for the twin: a built-in model or any MJCF file.

    model: a built-in arm from its published kinematics (``panda``, ``ur5e``, ``xarm7``; see
    ``robolearn.kinematics``) or ``mjcf`` to load ``mjcf_path`` (e.g. a Menagerie checkout).
    home_q_rad: the joint configuration of a reset (and the controller's null-space posture); the tool
    must be inside the safety workspace box there (checked at load). The default is the Panda with
    the gripper pointing down at (0.46, 0, 0.40) m.
    tcp_offset_m: with a built-in arm, the tool centre point's distance beyond the flange (default:
    the model's gripper); make it match the TCP set on the robot's controller.
    ee_site: with ``mjcf``, the site at the tool centre point. joint_names: with ``mjcf``, the arm
    joints in order; gripper_actuator: the actuator driving the fingers.
    """

    model: str = "panda"
    base_pos_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    base_yaw_rad: float = 0.0
    home_q_rad: tuple[float, ...] = (0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785)
    tcp_offset_m: float | None = None
    mjcf_path: Path | None = None
    ee_site: str = "tcp"
    joint_names: tuple[str, ...] = ()
    gripper_actuator: str = ""


if TYPE_CHECKING:
    from robolearn.interfaces import Arm, Camera, Teleop


@dataclass
class ArmConfig(ChoiceBase):
    """The arm driver. ``type: sim`` runs the twin's arm; hardware types live in ``drivers/``."""

    registry = ChoiceRegistry("arm")

    def create(self, cell: CellConfig, twin: Any = None) -> Arm:
        """The driver for this config (not yet connected). ``twin``: the cell's ``robolearn.sim.Twin``,
        needed by simulated devices, ignored by hardware."""
        raise NotImplementedError(f"{type(self).__name__} does not implement create()")


@dataclass
class CameraConfig(ChoiceBase):
    """A camera: its name, stream size and rate, and its pose in the cell.

    pos_m / look_at_m: the camera's position and the point it looks at, in the cell frame, or, with
    ``mount: wrist``, in the end-effector frame. Intrinsics of the twin's rendering: pinhole
    ``fx_px, fy_px, cx_px, cy_px`` (focal lengths and principal point in pixels, OpenCV convention
    with pixel centres at integer coordinates, as a calibrated RealSense reports them) when all four
    are set, else ``fov_y_deg`` (square pixels, principal point at the image centre). Hardware
    cameras report their own intrinsics and use the pose as extrinsics.
    """

    registry = ChoiceRegistry("camera")

    name: str = "front"
    width_px: int = 128
    height_px: int = 128
    fps: float = 30.0
    depth: bool = True
    mount: str = "world"
    pos_m: tuple[float, float, float] = (1.2, 0.0, 0.6)
    look_at_m: tuple[float, float, float] = (0.5, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_y_deg: float = 45.0
    fx_px: float | None = None
    fy_px: float | None = None
    cx_px: float | None = None
    cy_px: float | None = None

    def create(self, cell: CellConfig, twin: Any = None) -> Camera:
        """The driver for this camera (not yet connected); see ``ArmConfig.create``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement create()")

    def __post_init__(self) -> None:
        if self.mount not in ("world", "wrist"):
            raise ValueError(f"mount must be 'world' or 'wrist', got {self.mount!r}")
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(f"resolution must be positive, got {self.width_px}x{self.height_px}")
        if not 0.0 < self.fov_y_deg < 180.0:
            raise ValueError(f"fov_y_deg must be in (0, 180), got {self.fov_y_deg}")
        pinhole = {"fx_px": self.fx_px, "fy_px": self.fy_px, "cx_px": self.cx_px, "cy_px": self.cy_px}
        unset = [name for name, value in pinhole.items() if value is None]
        if unset and len(unset) < 4:
            raise ValueError(f"camera {self.name!r}: set all of fx_px, fy_px, cx_px, cy_px or none of them (missing "
                             f"{', '.join(unset)})")
        if not unset and (self.fx_px <= 0 or self.fy_px <= 0):
            raise ValueError(f"camera {self.name!r}: focal lengths fx_px, fy_px must be positive, got "
                             f"{self.fx_px}, {self.fy_px}")

    @property
    def has_pinhole(self) -> bool:
        """Whether the config gives pinhole intrinsics (fx_px, fy_px, cx_px, cy_px) rather than fov_y_deg."""
        return self.fx_px is not None

    def intrinsics(self) -> CameraIntrinsics:
        """The pinhole intrinsics of the configured stream: from fx/fy/cx/cy when set, else from
        ``fov_y_deg`` (square pixels, principal point at the image centre)."""
        if self.has_pinhole:
            return CameraIntrinsics(self.width_px, self.height_px, float(self.fx_px), float(self.fy_px),
                                    float(self.cx_px), float(self.cy_px))
        focal_px = (self.height_px / 2.0) / math.tan(math.radians(self.fov_y_deg) / 2.0)
        return CameraIntrinsics(self.width_px, self.height_px, focal_px, focal_px,
                                (self.width_px - 1) / 2.0, (self.height_px - 1) / 2.0)


@dataclass
class TeleopConfig(ChoiceBase):
    """A teleop device or scripted operator. ``human``: a person drives it (the twin then runs in
    real time); False for scripted operators."""

    registry = ChoiceRegistry("teleop")
    human: ClassVar[bool] = True

    def create(self, cell: CellConfig, twin: Any = None) -> Teleop:
        """The device for this config (not yet connected); see ``ArmConfig.create``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement create()")


@dataclass
class TableConfig:
    """A box table; its top surface is at ``height_m``."""

    size_m: tuple[float, float] = (1.0, 1.2)
    center_m: tuple[float, float] = (0.5, 0.0)
    height_m: float = 0.0
    rgba: tuple[float, float, float, float] = (0.55, 0.45, 0.35, 1.0)


@dataclass
class ObjectConfig:
    """A free rigid object resting on the table.

    shape: ``box`` (size_m = half extents), ``sphere`` (size_m[0] = radius) or ``cylinder``
    (radius, half height).
    """

    name: str = "cube"
    shape: str = "box"
    size_m: tuple[float, ...] = (0.02, 0.02, 0.02)
    pos_m: tuple[float, float, float] = (0.5, 0.0, 0.02)
    mass_kg: float = 0.05
    friction: float = 1.0
    rgba: tuple[float, float, float, float] = (0.85, 0.2, 0.2, 1.0)

    def __post_init__(self) -> None:
        if self.shape not in ("box", "sphere", "cylinder"):
            raise ValueError(f"shape must be box, sphere or cylinder, got {self.shape!r}")


@dataclass
class LightConfig:
    pos_m: tuple[float, float, float] = (0.5, 0.0, 2.0)
    dir: tuple[float, float, float] = (0.0, 0.0, -1.0)
    diffuse: tuple[float, float, float] = (0.7, 0.7, 0.7)
    directional: bool = False


@dataclass
class SafetyConfig:
    """Limits the SafetyFilter enforces on every command, real or sim.

    workspace_*_m: the box the end-effector target must stay in (cell frame). max_step_m /
    max_rot_step_rad: caps per control step. joint_margin_rad: distance kept from joint limits.
    max_joint_vel_rad_s: joint speed cap. command_timeout_s / frame_timeout_s: the watchdog holds
    the arm when commands or camera frames are older than these. max_tilt_rad: largest angle between
    the tool's approach axis and straight down (None: any orientation), as HIL-SERL bounds roll and
    pitch: keeps a top-down gripper, its wrist camera and cables pointing down.
    """

    workspace_min_m: tuple[float, float, float] = (0.25, -0.35, 0.0)
    workspace_max_m: tuple[float, float, float] = (0.75, 0.35, 0.45)
    max_step_m: float = 0.03
    max_rot_step_rad: float = 0.15
    joint_margin_rad: float = 0.05
    max_joint_vel_rad_s: float = 2.0
    command_timeout_s: float = 0.5
    frame_timeout_s: float = 0.5
    max_tilt_rad: float | None = None

    def __post_init__(self) -> None:
        if self.max_tilt_rad is not None and not 0.0 < self.max_tilt_rad <= math.pi:
            raise ValueError(f"max_tilt_rad must be in (0, pi] (or null for no limit), got {self.max_tilt_rad}")
        if any(lo >= hi for lo, hi in zip(self.workspace_min_m, self.workspace_max_m)):
            raise ValueError(
                f"workspace_min_m {self.workspace_min_m} must be below workspace_max_m {self.workspace_max_m} on every axis"
            )
        if self.max_step_m <= 0 or self.max_rot_step_rad <= 0:
            raise ValueError("max_step_m and max_rot_step_rad must be positive")


@dataclass
class RosConfig:
    """How the cell's ROS 2 nodes talk (docs/ros.md).

    backend: ``auto`` (rclpy when it and ``robolearn_msgs`` import, else zenoh), ``zenoh`` or
    ``rclpy``. domain_id: the ROS domain (``ROS_DOMAIN_ID`` overrides it). router_endpoint: the
    zenoh router every session connects to. listen_endpoints: where each node's session accepts
    peers; localhost only by default, add e.g. ``tcp/192.168.1.10:0`` to reach other machines.
    """

    backend: Literal["auto", "zenoh", "rclpy"] = "auto"
    domain_id: int = 0
    router_endpoint: str = "tcp/localhost:7447"
    listen_endpoints: list[str] = field(default_factory=lambda: ["tcp/127.0.0.1:0"])

    def __post_init__(self) -> None:
        if not 0 <= self.domain_id <= 232:
            raise ValueError(f"domain_id must be in 0..232 (ROS 2 domains), got {self.domain_id}")


@dataclass
class CellConfig:
    """One robot cell. ``control_hz`` is the rate of env steps and policy actions."""

    name: str = "cell"
    control_hz: float = 10.0
    robot: RobotModelConfig = field(default_factory=RobotModelConfig)
    arm: ArmConfig | None = None
    cameras: list[CameraConfig] = field(default_factory=list)
    teleop: TeleopConfig | None = None
    table: TableConfig = field(default_factory=TableConfig)
    objects: list[ObjectConfig] = field(default_factory=list)
    lights: list[LightConfig] = field(default_factory=lambda: [LightConfig()])
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    ros: RosConfig = field(default_factory=RosConfig)
    source_path: str = ""

    def __post_init__(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {self.control_hz}")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")

    @property
    def control_dt_s(self) -> float:
        return 1.0 / self.control_hz


def load_cell(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> CellConfig:
    """Load and validate a cell YAML. Raises ConfigError naming the file and key on any problem."""
    cell = load_config(CellConfig, path, overrides)
    if cell.arm is None:
        raise ConfigError(str(path), "arm", f"missing; set arm.type to one of: {', '.join(ArmConfig.registry.names())}")
    cell.source_path = str(path)
    check_home_in_workspace(cell)
    return cell


def check_home_in_workspace(cell: CellConfig) -> None:
    """Raise ConfigError when the tool centre point at ``robot.home_q_rad`` is outside the safety
    workspace box: a real arm latches its measured pose as the target on connect, so a home outside
    the box starts every episode against the box. Built-in robot models only (an ``mjcf`` robot is
    checked when its twin is built)."""
    import numpy as np

    from robolearn.kinematics import robot_models

    model = robot_models().get(cell.robot.model)
    if model is None:
        return
    source, home = cell.source_path or "<cell>", np.asarray(cell.robot.home_q_rad, dtype=np.float64)
    if len(home) != len(model.joints):
        raise ConfigError(source, "robot.home_q_rad", f"has {len(home)} values but the {model.name} arm has "
                          f"{len(model.joints)} joints ({', '.join(j.name for j in model.joints)})")
    tcp_base = model.tcp_pose(home, cell.robot.tcp_offset_m)[:3, 3]
    c, s = np.cos(cell.robot.base_yaw_rad), np.sin(cell.robot.base_yaw_rad)
    tcp_m = np.asarray(cell.robot.base_pos_m) + np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ tcp_base
    raise_if_outside_workspace(cell, tcp_m)


def raise_if_outside_workspace(cell: CellConfig, home_tcp_m: Any) -> None:
    """ConfigError naming the home tool position ``(3,)`` (cell frame) when it is outside the box."""
    lower, upper = cell.safety.workspace_min_m, cell.safety.workspace_max_m
    outside = [axis for axis, v, lo, hi in zip("xyz", home_tcp_m, lower, upper) if not lo - 1e-9 <= v <= hi + 1e-9]
    if outside:
        where = ", ".join(f"{v:.4f}" for v in home_tcp_m)
        raise ConfigError(
            cell.source_path or "<cell>", "robot.home_q_rad",
            f"puts the tool at ({where}) m, outside the workspace box {tuple(lower)}..{tuple(upper)} on "
            f"{', '.join(outside)}; change the home pose or widen safety.workspace_min_m / workspace_max_m "
            "(the arm starts every episode at home, and the SafetyFilter keeps targets in the box)")


# Modules that register arm, camera and teleop types; imported on first lookup so that no
# hardware SDK is imported at startup (driver config modules import no SDK).
for _registry in (ArmConfig.registry, CameraConfig.registry, TeleopConfig.registry):
    _registry.add_lazy_module("robolearn.sim.configs")
    _registry.add_lazy_module("robolearn.drivers.configs")
