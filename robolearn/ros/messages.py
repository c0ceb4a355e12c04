"""ROS 2 message types for robolearn, serialized as CDR by ``rosbags`` (Jazzy typestore).

Standard types come from the typestore; robolearn's own types (``robolearn_msgs/msg/...``) are
parsed from ``robolearn/ros/msg/*.msg`` and registered, so they get RIHS01 type hashes like any
ROS type. ``serialize`` returns CDR bytes with the 4-byte encapsulation header, exactly what
rmw_zenoh and rosbag2 put on the wire.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from robolearn.interfaces import ArmState, CameraIntrinsics, EEDeltaCommand, Frame, TeleopCommand, Violation

PACKAGE = "robolearn_msgs"
MSG_DIR = Path(__file__).parent / "msg"

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
_EMPTY_BYTES = np.zeros(0, np.uint8)
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"
TELEOP_COMMAND = f"{PACKAGE}/msg/TeleopCommand"
EPISODE_CONTROL = f"{PACKAGE}/msg/EpisodeControl"
SAFETY_VIOLATION = f"{PACKAGE}/msg/SafetyViolation"


@cache
def typestore() -> Any:
    """The Jazzy typestore with robolearn's ``.msg`` types registered (built once per process)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for path in sorted(MSG_DIR.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def msg_class(typename: str) -> type:
    """The message dataclass for ``typename`` (``pkg/msg/Type``); a clear error for unknown types."""
    store = typestore()
    if typename not in store.types:
        raise KeyError(f"unknown ROS message type {typename!r}; use a Jazzy type such as {IMAGE!r} or one of robolearn's: "
                       f"{', '.join(t for t in store.types if t.startswith(PACKAGE))}")
    return store.types[typename]


def type_hash(typename: str) -> str:
    """The RIHS01 type hash string, e.g. ``RIHS01_df66...`` for ``std_msgs/msg/String``."""
    return typestore().hash_rihs01(typename)


def dds_type_name(typename: str) -> str:
    """``sensor_msgs/msg/Image`` → ``sensor_msgs::msg::dds_::Image_`` (rmw_zenoh's type string)."""
    package, kind, name = typename.split("/")
    return f"{package}::{kind}::dds_::{name}_"


BYTE_TAIL_TYPES = (IMAGE, COMPRESSED_IMAGE)
BYTE_TAIL_MIN_BYTES = 65536


def serialize(msg: Any, typename: str) -> bytes | memoryview:
    """CDR (little endian) with the 4-byte encapsulation header.

    Images (whose last field is the ``uint8[] data`` sequence) take a fast path with one copy of the
    pixels: rosbags serializes the message with empty data, then the sequence length and the pixels
    are appended, giving the same bytes (the tests check it).
    """
    data = getattr(msg, "data", None)
    if typename in BYTE_TAIL_TYPES and isinstance(data, np.ndarray) and data.nbytes >= BYTE_TAIL_MIN_BYTES:
        head = typestore().serialize_cdr(replace(msg, data=_EMPTY_BYTES), typename)
        return b"".join((head[:-4], struct.pack("<I", data.size), np.ascontiguousarray(data, dtype=np.uint8)))
    return typestore().serialize_cdr(msg, typename)


def deserialize(data: bytes | memoryview, typename: str) -> Any:
    return typestore().deserialize_cdr(data, typename)


def header(stamp_ns: int, frame_id: str = "") -> Any:
    store = typestore()
    stamp = store.types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
    return store.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def stamp_ns(msg: Any) -> int:
    """Nanoseconds of ``msg.header.stamp``."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def image_msg(rgb: np.ndarray, stamp_ns_: int, frame_id: str) -> Any:
    """``(H, W, 3) uint8`` RGB → ``sensor_msgs/Image`` (``rgb8``); a ``(H, W) float32`` depth in metres →
    ``32FC1``."""
    array = np.ascontiguousarray(rgb)
    if array.ndim == 3 and array.dtype == np.uint8 and array.shape[2] == 3:
        encoding = "rgb8"
    elif array.ndim == 2 and array.dtype == np.float32:
        encoding = "32FC1"
    else:
        raise ValueError(f"image must be (H, W, 3) uint8 or (H, W) float32, got {array.shape} {array.dtype}")
    height, width = array.shape[:2]
    return msg_class(IMAGE)(
        header=header(stamp_ns_, frame_id), height=height, width=width, encoding=encoding, is_bigendian=0,
        step=array.strides[0], data=array.reshape(-1).view(np.uint8),
    )


def image_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` (``rgb8`` or ``32FC1``) → ``(H, W, 3) uint8`` or ``(H, W) float32`` (a view)."""
    if msg.encoding == "rgb8":
        return np.asarray(msg.data).reshape(msg.height, msg.width, 3)
    if msg.encoding == "32FC1":
        return np.asarray(msg.data).view(np.float32).reshape(msg.height, msg.width)
    raise ValueError(f"unsupported image encoding {msg.encoding!r}; robolearn reads rgb8 and 32FC1")


def frame_msgs(frame: Frame, frame_id: str) -> tuple[Any, Any | None]:
    """A camera ``Frame`` → (color Image, depth Image or None), stamped with the frame's stamp."""
    depth = None if frame.depth_m is None else image_msg(frame.depth_m.astype(np.float32), frame.stamp_ns, frame_id)
    return image_msg(frame.color, frame.stamp_ns, frame_id), depth


def camera_info_msg(intrinsics: CameraIntrinsics, stamp_ns_: int, frame_id: str) -> Any:
    k = intrinsics.matrix().reshape(-1)
    p = np.concatenate([intrinsics.matrix(), np.zeros((3, 1))], axis=1).reshape(-1)
    store = typestore()
    roi = store.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return msg_class(CAMERA_INFO)(
        header=header(stamp_ns_, frame_id), height=intrinsics.height_px, width=intrinsics.width_px,
        distortion_model="plumb_bob", d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p,
        binning_x=0, binning_y=0, roi=roi,
    )


def joint_state_msg(state: ArmState, names: list[str]) -> Any:
    """Arm joints plus a ``gripper`` entry whose position is the finger opening in metres."""
    return msg_class(JOINT_STATE)(
        header=header(state.stamp_ns), name=[*names, "gripper"],
        position=np.append(np.asarray(state.q_rad, dtype=np.float64), state.gripper_width_m),
        velocity=np.append(np.asarray(state.dq_rad_s, dtype=np.float64), 0.0), effort=np.zeros(0),
    )


def arm_state(joints: Any, pose: Any) -> ArmState:
    """Inverse of ``joint_state_msg`` + ``pose_msg``."""
    position = np.asarray(joints.position, dtype=np.float64)
    q = pose.pose.orientation
    return ArmState(
        q_rad=position[:-1], dq_rad_s=np.asarray(joints.velocity, dtype=np.float64)[:-1],
        ee_pos_m=np.array([pose.pose.position.x, pose.pose.position.y, pose.pose.position.z]),
        ee_quat_wxyz=np.array([q.w, q.x, q.y, q.z]), gripper_width_m=float(position[-1]), stamp_ns=stamp_ns(joints),
    )


def pose_msg(pos_m: np.ndarray, quat_wxyz: np.ndarray, stamp_ns_: int, frame_id: str = "world") -> Any:
    store = typestore()
    point = store.types["geometry_msgs/msg/Point"](x=float(pos_m[0]), y=float(pos_m[1]), z=float(pos_m[2]))
    w, x, y, z = (float(v) for v in quat_wxyz)
    orientation = store.types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)
    pose = store.types["geometry_msgs/msg/Pose"](position=point, orientation=orientation)
    return msg_class(POSE_STAMPED)(header=header(stamp_ns_, frame_id), pose=pose)


def teleop_msg(command: TeleopCommand, stamp_ns_: int) -> Any:
    return msg_class(TELEOP_COMMAND)(
        header=header(stamp_ns_), ee_delta=np.asarray(command.ee_delta, dtype=np.float64),
        gripper_closed=float(command.gripper_closed), intervene=command.intervene, success=command.success,
        failure=command.failure, reset=command.reset, quit=command.quit,
    )


def teleop_command(msg: Any) -> TeleopCommand:
    return TeleopCommand(
        ee_delta=np.asarray(msg.ee_delta, dtype=np.float64), gripper_closed=float(msg.gripper_closed),
        intervene=bool(msg.intervene), success=bool(msg.success), failure=bool(msg.failure),
        reset=bool(msg.reset), quit=bool(msg.quit),
    )


def violation_msg(violation: Violation, stamp_ns_: int) -> Any:
    return msg_class(SAFETY_VIOLATION)(header=header(stamp_ns_), kind=violation.kind, detail=violation.detail)


def episode_control_msg(command: int, stamp_ns_: int, task: str = "") -> Any:
    return msg_class(EPISODE_CONTROL)(header=header(stamp_ns_), command=int(command), task=task)


EE_DELTA_COMMAND = f"{PACKAGE}/msg/EEDeltaCommand"


def ee_delta_msg(command: EEDeltaCommand, stamp_ns_: int) -> Any:
    return msg_class(EE_DELTA_COMMAND)(
        header=header(stamp_ns_), translation_m=np.asarray(command.translation_m, dtype=np.float64),
        rotation_rad=np.asarray(command.rotation_rad, dtype=np.float64), gripper_closed=float(command.gripper_closed),
    )


def ee_delta_command(msg: Any) -> EEDeltaCommand:
    return EEDeltaCommand(np.asarray(msg.translation_m, dtype=np.float64), np.asarray(msg.rotation_rad, dtype=np.float64),
                          float(msg.gripper_closed))


def violation(msg: Any) -> Violation:
    return Violation(msg.kind, msg.detail)
