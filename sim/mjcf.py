"""Cell config → MuJoCo model: table, objects, lights, cameras, a goal marker and the robot.

A built-in robot (``robot.model: panda | ur5e | xarm7``) is generated from its published kinematic
parameters (``robolearn.kinematics``); a cell with ``robot.model: mjcf`` attaches any MJCF file
instead (for example a Menagerie checkout) through ``mujoco.MjSpec``, with the arm joints, tool site
and gripper actuator named in the cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from robolearn.cell import CameraConfig, CellConfig, raise_if_outside_workspace
from robolearn.config import ConfigError
from robolearn.errors import UsageError
from robolearn.kinematics import SerialArmModel, robot_models
from robolearn.sim import robot_mjcf

GOAL_BODY = "goal"
DEFAULT_PHYSICS_HZ = 500.0


@dataclass(frozen=True)
class RobotBinding:
    """Names in the compiled model that the twin's controller drives."""

    joint_names: tuple[str, ...]
    ee_site: str
    gripper_actuator: str
    finger_joints: tuple[str, ...]
    gripper_open_ctrl: float
    gripper_closed_ctrl: float
    max_torque_nm: tuple[float, ...]


def builtin_binding(model: SerialArmModel) -> RobotBinding:
    """The names ``robot_mjcf.arm_body_xml`` gives a built-in arm."""
    return RobotBinding(
        joint_names=tuple(j.name for j in model.joints),
        ee_site="tcp",
        gripper_actuator="gripper",
        finger_joints=("finger_joint1", "finger_joint2"),
        gripper_open_ctrl=model.gripper.finger_travel_m,
        gripper_closed_ctrl=0.0,
        max_torque_nm=model.max_torque_nm,
    )


UNKNOWN_ROBOT_MAX_TORQUE_NM = 200.0


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def camera_xyaxes(pos_m, look_at_m, up) -> np.ndarray:
    """MuJoCo ``xyaxes`` (right, image-up) of a camera at ``pos_m`` looking at ``look_at_m``."""
    forward = np.asarray(look_at_m, float) - np.asarray(pos_m, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, float))
    if np.linalg.norm(right) < 1e-9:
        raise UsageError(f"camera up {tuple(up)} is parallel to its viewing direction; choose another 'up'")
    right /= np.linalg.norm(right)
    return np.concatenate([right, np.cross(right, forward)])


SENSOR_PIXEL_PITCH_M = 1e-5
"""Nominal pixel size of the twin's pinhole cameras: MuJoCo takes pinhole intrinsics with a sensor
size; only the ratios to it matter for rendering."""


def camera_optics(camera: CameraConfig) -> dict[str, list[float]]:
    """MuJoCo camera attributes for the configured intrinsics: ``fovy``, or, with pinhole intrinsics,
    ``focalpixel``, ``principalpixel`` and ``sensorsize`` (``resolution`` always).

    MuJoCo's ``principalpixel`` is the image centre's offset from the principal point, in pixels
    (the image centre is ``((W − 1)/2, (H − 1)/2)`` in OpenCV pixel coordinates); the projection test
    in tests/test_sim.py pins this down.
    """
    optics: dict[str, list[float]] = {"resolution": [camera.width_px, camera.height_px]}
    if not camera.has_pinhole:
        optics["fovy"] = [camera.fov_y_deg]
        return optics
    optics["focalpixel"] = [float(camera.fx_px), float(camera.fy_px)]
    optics["principalpixel"] = [(camera.width_px - 1) / 2.0 - float(camera.cx_px),
                                (camera.height_px - 1) / 2.0 - float(camera.cy_px)]
    optics["sensorsize"] = [camera.width_px * SENSOR_PIXEL_PITCH_M, camera.height_px * SENSOR_PIXEL_PITCH_M]
    return optics


def _camera_xml(camera: CameraConfig) -> str:
    xyaxes = camera_xyaxes(camera.pos_m, camera.look_at_m, camera.up)
    optics = " ".join(f'{name}="{_fmt(values)}"' for name, values in camera_optics(camera).items())
    return f'<camera name="{camera.name}" pos="{_fmt(camera.pos_m)}" xyaxes="{_fmt(xyaxes)}" {optics}/>'


def _object_xml(obj) -> str:
    size = obj.size_m
    if obj.shape == "box":
        geom_size = _fmt(size[:3])
    elif obj.shape == "sphere":
        geom_size = _fmt(size[:1])
    else:
        geom_size = _fmt(size[:2])
    return (
        f'<body name="{obj.name}" pos="{_fmt(obj.pos_m)}">\n'
        f'<freejoint name="{obj.name}_free"/>\n'
        f'<geom name="{obj.name}" type="{obj.shape}" size="{geom_size}" mass="{obj.mass_kg}" '
        f'friction="{obj.friction} 0.01 0.001" condim="4" rgba="{_fmt(obj.rgba)}"/>\n'
        "</body>"
    )


def physics_hz(cell: CellConfig) -> float:
    return float(getattr(cell.arm, "physics_hz", DEFAULT_PHYSICS_HZ))


def scene_xml(cell: CellConfig, builtin: SerialArmModel | None) -> str:
    """The MJCF document of the cell with the ``builtin`` arm, or without a robot (None: it is
    attached from a file by ``build_model``)."""
    wrist = "\n".join(_camera_xml(c) for c in cell.cameras if c.mount == "wrist")
    world_cams = "\n".join(_camera_xml(c) for c in cell.cameras if c.mount == "world")
    width = max([c.width_px for c in cell.cameras] + [64])
    height = max([c.height_px for c in cell.cameras] + [64])
    table = cell.table
    table_half = (table.size_m[0] / 2, table.size_m[1] / 2, 0.025)
    table_pos = (table.center_m[0], table.center_m[1], table.height_m - 0.025)
    lights = "\n".join(
        f'<light pos="{_fmt(light.pos_m)}" dir="{_fmt(light.dir)}" diffuse="{_fmt(light.diffuse)}" '
        f'directional="{"true" if light.directional else "false"}" castshadow="false"/>'
        for light in cell.lights
    )
    robot = defaults = robot_elements = ""
    if builtin is not None:
        robot = robot_mjcf.arm_body_xml(builtin, cell.robot.base_pos_m, cell.robot.base_yaw_rad, wrist, cell.robot.tcp_offset_m)
        defaults = robot_mjcf.arm_defaults_xml(builtin)
        robot_elements = robot_mjcf.arm_actuators_xml(builtin) + robot_mjcf.arm_equality_xml()
    timestep = 1.0 / physics_hz(cell)
    return f"""<mujoco model="{cell.name}">
<compiler angle="radian" autolimits="true"/>
<option timestep="{timestep:.6g}" integrator="implicitfast" cone="elliptic" impratio="10"/>
<visual>
<global offwidth="{width}" offheight="{height}"/>
<quality shadowsize="0"/>
<headlight ambient="0.3 0.3 0.3" diffuse="0.4 0.4 0.4" specular="0 0 0"/>
<map znear="0.01" zfar="50"/>
</visual>
<default>
{defaults}
</default>
<worldbody>
<geom name="floor" type="plane" size="3 3 0.1" pos="0 0 {table.height_m - 0.75:.6g}" rgba="0.4 0.4 0.42 1" contype="0" conaffinity="0"/>
<geom name="table" type="box" size="{_fmt(table_half)}" pos="{_fmt(table_pos)}" rgba="{_fmt(table.rgba)}" friction="1 0.01 0.001"/>
{lights}
{world_cams}
<body name="{GOAL_BODY}" mocap="true" pos="0.5 0 {table.height_m + 0.1:.6g}">
<site name="{GOAL_BODY}" type="sphere" size="0.015" rgba="0.1 0.8 0.1 0.6"/>
</body>
{robot}
{"".join(_object_xml(o) for o in cell.objects)}
</worldbody>
{robot_elements}
</mujoco>"""


def _attach_mjcf_robot(spec: mujoco.MjSpec, cell: CellConfig) -> RobotBinding:
    robot = cell.robot
    source = cell.source_path or "<cell>"
    if robot.mjcf_path is None or not robot.mjcf_path.is_file():
        raise ConfigError(source, "robot.mjcf_path", f"no MJCF file at {robot.mjcf_path}; point it to a robot XML")
    if not robot.joint_names or not robot.gripper_actuator:
        raise ConfigError(source, "robot.joint_names", "an mjcf robot needs joint_names, ee_site and gripper_actuator")
    child = mujoco.MjSpec.from_file(str(robot.mjcf_path))
    frame = spec.worldbody.add_frame()
    frame.pos = list(robot.base_pos_m)
    frame.quat = [math.cos(robot.base_yaw_rad / 2), 0.0, 0.0, math.sin(robot.base_yaw_rad / 2)]
    spec.attach(child, prefix="robot/", frame=frame)
    for body in spec.bodies:
        if body.name.startswith("robot/"):
            body.gravcomp = 1.0
    joints = tuple(f"robot/{name}" for name in robot.joint_names)
    for actuator in spec.actuators:
        if actuator.target in joints:
            actuator.gainprm = np.zeros_like(actuator.gainprm)
            actuator.biasprm = np.zeros_like(actuator.biasprm)
    site_body = spec.site(f"robot/{robot.ee_site}")
    if site_body is None:
        raise ConfigError(source, "robot.ee_site", f"no site {robot.ee_site!r} in {robot.mjcf_path}")
    for camera in cell.cameras:
        if camera.mount == "wrist":
            cam = site_body.parent.add_camera(name=camera.name, pos=list(camera.pos_m))
            cam.alt.xyaxes = camera_xyaxes(camera.pos_m, camera.look_at_m, camera.up).tolist()
            optics = camera_optics(camera)
            cam.resolution = optics["resolution"]
            if "fovy" in optics:
                cam.fovy = optics["fovy"][0]
            else:
                cam.focal_pixel, cam.principal_pixel = optics["focalpixel"], optics["principalpixel"]
                cam.sensor_size = optics["sensorsize"]
    gripper = spec.actuator(f"robot/{robot.gripper_actuator}")
    if gripper is None:
        raise ConfigError(source, "robot.gripper_actuator", f"no actuator {robot.gripper_actuator!r} in {robot.mjcf_path}")
    low, high = gripper.ctrlrange
    return RobotBinding(
        joint_names=joints,
        ee_site=f"robot/{robot.ee_site}",
        gripper_actuator=f"robot/{robot.gripper_actuator}",
        finger_joints=(),
        gripper_open_ctrl=float(high),
        gripper_closed_ctrl=float(low),
        max_torque_nm=(UNKNOWN_ROBOT_MAX_TORQUE_NM,) * len(joints),
    )


def build_model(cell: CellConfig) -> tuple[mujoco.MjModel, RobotBinding]:
    """Compile the cell's MuJoCo model. Raises ConfigError naming the cell file on failure."""
    models = robot_models()
    if cell.robot.model not in (*models, "mjcf"):
        allowed = ", ".join(repr(name) for name in (*models, "mjcf"))
        raise ConfigError(cell.source_path or "<cell>", "robot.model", f"got {cell.robot.model!r}; allowed values: {allowed}")
    builtin = models.get(cell.robot.model)
    spec = mujoco.MjSpec.from_string(scene_xml(cell, builtin))
    binding = builtin_binding(builtin) if builtin is not None else _attach_mjcf_robot(spec, cell)
    if len(cell.robot.home_q_rad) != len(binding.joint_names):
        raise ConfigError(cell.source_path or "<cell>", "robot.home_q_rad",
                          f"has {len(cell.robot.home_q_rad)} values but the {cell.robot.model} arm has "
                          f"{len(binding.joint_names)} joints ({', '.join(binding.joint_names)})")
    try:
        model = spec.compile()
    except ValueError as err:
        raise ConfigError(cell.source_path or "<cell>", "", f"the twin's MuJoCo model does not compile: {err}") from err
    if builtin is None:
        data = mujoco.MjData(model)
        data.qpos[[model.joint(name).qposadr[0] for name in binding.joint_names]] = cell.robot.home_q_rad
        mujoco.mj_kinematics(model, data)
        raise_if_outside_workspace(cell, data.site(binding.ee_site).xpos.copy())
    return model, binding
