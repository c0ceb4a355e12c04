"""ROS 2 message types for robolearn, serialized as CDR by ``rosbags`` (Jazzy typestore).

Standard types come from the typestore; robolearn's own types (``robolearn_msgs/msg/...``) are
parsed from ``robolearn/ros/msg/*.msg`` and registered, so they get RIHS01 type hashes like any
ROS type. ``serialize`` returns CDR bytes with the 4-byte encapsulation header, exactly what
rmw_zenoh and rosbag2 put on the wire.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from robolearn.interfaces import (
    ArmState,
    CameraIntrinsics,
    EEDeltaCommand,
    Frame,
    JointCommand,
    TeleopCommand,
    Violation,
)

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
OBJECT_STATE = f"{PACKAGE}/msg/ObjectState"


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
_STAMP = struct.Struct("<iI")
_LENGTH = struct.Struct("<I")
_ENCAPSULATION_BYTES = 4


@cache
def _tail_fields(typename: str) -> tuple[str, ...]:
    """Fields of an image type other than ``header`` and ``data`` (the ones its CDR head depends on)."""
    return tuple(f.name for f in fields(msg_class(typename)) if f.name not in ("header", "data"))


@lru_cache(maxsize=256)
def _image_head(typename: str, frame_id: str, values: tuple) -> tuple[bytes, bytes]:
    """rosbags' CDR of the message with stamp 0 and empty ``data``, split around the stamp (bytes 4..12:
    ``std_msgs/Header`` comes first) and less the 4-byte zero length of ``data``: (encapsulation
    header, everything after the stamp), so a frame's CDR is those with its stamp, the pixels'
    length and the pixels in between and after."""
    msg = msg_class(typename)(header=header(0, frame_id), data=_EMPTY_BYTES, **dict(zip(_tail_fields(typename), values)))
    cdr = bytes(typestore().serialize_cdr(msg, typename))
    return cdr[:_ENCAPSULATION_BYTES], cdr[_ENCAPSULATION_BYTES + _STAMP.size:-_LENGTH.size]


def serialize(msg: Any, typename: str) -> bytes:
    """CDR (little endian) with the 4-byte encapsulation header.

    Images (whose last field is the ``uint8[] data`` sequence) take a fast path with one copy of the
    pixels: rosbags serializes the message with stamp 0 and empty data once per frame id and image
    format (cached, ``_image_head``), and each frame joins that head, its stamp, the sequence length
    and the pixels, giving the same bytes as rosbags (the tests check it).
    """
    data = getattr(msg, "data", None)
    if typename in BYTE_TAIL_TYPES and isinstance(data, np.ndarray) and data.nbytes >= BYTE_TAIL_MIN_BYTES:
        values = tuple(getattr(msg, name) for name in _tail_fields(typename))
        stamp = msg.header.stamp
        return _byte_tail_cdr(typename, msg.header.frame_id, values, stamp.sec, stamp.nanosec,
                              np.ascontiguousarray(data, dtype=np.uint8))
    return bytes(typestore().serialize_cdr(msg, typename))


def _byte_tail_cdr(typename: str, frame_id: str, values: tuple, sec: int, nanosec: int, data: np.ndarray) -> bytes:
    """``data``: C-contiguous, any shape and dtype; its bytes are the sequence (one copy, in ``join``)."""
    encapsulation, after_stamp = _image_head(typename, frame_id, values)
    return b"".join((encapsulation, _STAMP.pack(sec, nanosec), after_stamp, _LENGTH.pack(data.nbytes), data))


def deserialize(data: bytes | memoryview, typename: str) -> Any:
    """CDR bytes → a rosbags message. Byte arrays (an image's pixels) are views into ``data``, not copies."""
    return typestore().deserialize_cdr(memoryview(data), typename)


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
    array, encoding = _image_encoding(rgb)
    height, width = array.shape[:2]
    return msg_class(IMAGE)(
        header=header(stamp_ns_, frame_id), height=height, width=width, encoding=encoding, is_bigendian=0,
        step=array.strides[0], data=array.reshape(-1).view(np.uint8),
    )


def image_cdr(rgb: np.ndarray, stamp_ns_: int, frame_id: str) -> bytes:
    """``serialize(image_msg(rgb, stamp_ns_, frame_id), IMAGE)`` without building the message: what a
    camera publishes at frame rate, with one copy of the pixels (``Publisher.publish_cdr``)."""
    array, encoding = _image_encoding(rgb)
    height, width = array.shape[:2]
    sec, nanosec = divmod(int(stamp_ns_), 1_000_000_000)
    return _byte_tail_cdr(IMAGE, frame_id, (height, width, encoding, 0, array.strides[0]), sec, nanosec, array)


def _image_encoding(image: np.ndarray) -> tuple[np.ndarray, str]:
    array = np.ascontiguousarray(image)
    if array.ndim == 3 and array.dtype == np.uint8 and array.shape[2] == 3:
        return array, "rgb8"
    if array.ndim == 2 and array.dtype == np.float32:
        return array, "32FC1"
    raise ValueError(f"image must be (H, W, 3) uint8 or (H, W) float32, got {array.shape} {array.dtype}")


def image_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` (``rgb8`` or ``32FC1``) → ``(H, W, 3) uint8`` or ``(H, W) float32`` (a view)."""
    if msg.encoding == "rgb8":
        return np.asarray(msg.data).reshape(msg.height, msg.width, 3)
    if msg.encoding == "32FC1":
        return np.asarray(msg.data).view(np.float32).reshape(msg.height, msg.width)
    raise ValueError(f"unsupported image encoding {msg.encoding!r}; robolearn reads rgb8 and 32FC1")


JPEG_FORMAT = "rgb8; jpeg compressed bgr8"
"""``CompressedImage.format`` as ROS 2's compressed_image_transport writes it for an rgb8 image."""


def compressed_image_msg(rgb: np.ndarray, stamp_ns_: int, frame_id: str, quality: int = 90) -> Any:
    """``(H, W, 3) uint8`` RGB → ``sensor_msgs/CompressedImage`` (JPEG, readable by image_transport)."""
    from imagecodecs import jpeg_encode

    array = np.ascontiguousarray(rgb)
    if array.ndim != 3 or array.dtype != np.uint8 or array.shape[2] != 3:
        raise ValueError(f"a compressed image must be (H, W, 3) uint8, got {array.shape} {array.dtype}")
    data = np.frombuffer(jpeg_encode(array, level=quality), dtype=np.uint8)
    return msg_class(COMPRESSED_IMAGE)(header=header(stamp_ns_, frame_id), format=JPEG_FORMAT, data=data)


def compressed_image_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG or PNG) → ``(H, W, 3) uint8`` RGB."""
    from imagecodecs import imread

    image = imread(np.asarray(msg.data).tobytes())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def frame_cdrs(frame: Frame, frame_id: str, stamp_ns_: int) -> tuple[bytes, bytes | None]:
    """A camera ``Frame`` → CDR of (color Image, depth Image or None), stamped ``stamp_ns_`` (the
    frame's capture time as ROS system time, ``robolearn.ros.clock.ros_stamp_ns(frame.stamp_ns)``)."""
    depth = None if frame.depth_m is None else image_cdr(frame.depth_m.astype(np.float32), stamp_ns_, frame_id)
    return image_cdr(frame.color, stamp_ns_, frame_id), depth


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


TF_MESSAGE = "tf2_msgs/msg/TFMessage"
EE_FRAME = "tcp"
"""The child frame of the end-effector transform the arm node broadcasts on ``/tf`` (parent ``world``)."""


def tf_msg(pos_m: np.ndarray, quat_wxyz: np.ndarray, stamp_ns_: int, parent: str = "world", child: str = EE_FRAME) -> Any:
    """``tf2_msgs/TFMessage`` with the one transform ``parent`` → ``child`` (position, quaternion wxyz)."""
    store = typestore()
    w, x, y, z = (float(v) for v in quat_wxyz)
    transform = store.types["geometry_msgs/msg/Transform"](
        translation=store.types["geometry_msgs/msg/Vector3"](*map(float, pos_m)),
        rotation=store.types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))
    stamped = store.types["geometry_msgs/msg/TransformStamped"](header=header(stamp_ns_, parent), child_frame_id=child,
                                                                  transform=transform)
    return msg_class(TF_MESSAGE)(transforms=[stamped])


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


def object_state_msg(values: np.ndarray, stamp_ns_: int) -> Any:
    """The twin's object state ``(K,) float32`` at ``stamp_ns_``."""
    return msg_class(OBJECT_STATE)(header=header(stamp_ns_), data=np.asarray(values, dtype=np.float32))


def object_state(msg: Any) -> np.ndarray:
    """Inverse of ``object_state_msg``: ``(K,) float32``."""
    return np.array(msg.data, dtype=np.float32)


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


def twist_to_ee_delta(msg: Any, dt_s: float) -> EEDeltaCommand:
    """``geometry_msgs/TwistStamped`` (m/s, rad/s, cell frame) → the delta of one control step of
    ``dt_s`` seconds; the gripper is left as it is (NaN)."""
    linear, angular = msg.twist.linear, msg.twist.angular
    return EEDeltaCommand(np.array([linear.x, linear.y, linear.z]) * dt_s, np.array([angular.x, angular.y, angular.z]) * dt_s,
                          float("nan"))


def twist_msg(linear_m_s: np.ndarray, angular_rad_s: np.ndarray, stamp_ns_: int, frame_id: str = "world") -> Any:
    store = typestore()
    vector = store.types["geometry_msgs/msg/Vector3"]
    twist = store.types["geometry_msgs/msg/Twist"](linear=vector(*map(float, linear_m_s)), angular=vector(*map(float, angular_rad_s)))
    return msg_class(TWIST_STAMPED)(header=header(stamp_ns_, frame_id), twist=twist)


GRIPPER_CLOSED_JOINT = "gripper_closed"
"""Name of the optional ``JointState`` entry of a joint command that sets the gripper closure [0, 1]."""


def joint_command_msg(command: JointCommand, names: list[str], stamp_ns_: int) -> Any:
    """A joint position target as ``sensor_msgs/JointState``: the arm joints, then a
    ``gripper_closed`` entry unless the gripper is left as it is (NaN)."""
    positions = np.asarray(command.q_rad, dtype=np.float64)
    if not np.isnan(command.gripper_closed):
        names, positions = [*names, GRIPPER_CLOSED_JOINT], np.append(positions, command.gripper_closed)
    return msg_class(JOINT_STATE)(header=header(stamp_ns_), name=list(names), position=positions,
                                  velocity=np.zeros(0), effort=np.zeros(0))


def joint_command(msg: Any, names: list[str]) -> JointCommand:
    """Inverse of ``joint_command_msg``. A message with names gives every arm joint by name, in any
    order (plus ``gripper_closed`` optionally); one without names gives the arm joints in order."""
    positions = np.asarray(msg.position, dtype=np.float64)
    if not len(msg.name):
        if len(positions) != len(names):
            raise ValueError(f"a joint command without names needs {len(names)} positions ({', '.join(names)}), "
                             f"got {len(positions)}")
        return JointCommand(positions)
    if len(msg.name) != len(positions):
        raise ValueError(f"a joint command has {len(msg.name)} names but {len(positions)} positions")
    by_name = dict(zip(msg.name, positions))
    missing = [n for n in names if n not in by_name]
    unknown = sorted(set(by_name) - {*names, GRIPPER_CLOSED_JOINT})
    if missing or unknown:
        raise ValueError(f"a joint command must name the arm joints {', '.join(names)} (and optionally "
                         f"{GRIPPER_CLOSED_JOINT}); missing {missing}, unknown {unknown}")
    return JointCommand(np.array([by_name[n] for n in names]), float(by_name.get(GRIPPER_CLOSED_JOINT, float("nan"))))


def violation(msg: Any) -> Violation:
    return Violation(msg.kind, msg.detail)
