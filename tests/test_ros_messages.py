"""Messages: robolearn types registered with RIHS01 hashes; conversions round-trip; the image fast path
gives exactly rosbags' CDR."""

from __future__ import annotations

import numpy as np

from robolearn.interfaces import ArmState, CameraIntrinsics, EEDeltaCommand, TeleopCommand, Violation
from robolearn.ros import messages


def test_image_fast_path_equals_rosbags_cdr():
    rng = np.random.default_rng(0)
    for array in (rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), rng.random((240, 320)).astype(np.float32)):
        msg = messages.image_msg(array, 1_234_567_890_123, "front_optical_frame")
        fast = messages.serialize(msg, messages.IMAGE)
        assert isinstance(fast, bytes)
        assert fast == bytes(messages.typestore().serialize_cdr(msg, messages.IMAGE))
        np.testing.assert_array_equal(messages.image_array(messages.deserialize(fast, messages.IMAGE)), array)


def test_conversions_round_trip():
    state = ArmState(np.linspace(0, 1, 7), np.ones(7), np.array([0.4, 0.1, 0.2]), np.array([0.0, 1.0, 0.0, 0.0]),
                     0.03, 42)
    joints = messages.deserialize(messages.serialize(messages.joint_state_msg(state, list("abcdefg")), messages.JOINT_STATE),
                                  messages.JOINT_STATE)
    pose = messages.deserialize(messages.serialize(messages.pose_msg(state.ee_pos_m, state.ee_quat_wxyz, 42),
                                                   messages.POSE_STAMPED), messages.POSE_STAMPED)
    back = messages.arm_state(joints, pose)
    np.testing.assert_allclose(back.proprio(), state.proprio())
    assert back.stamp_ns == 42 and list(joints.name)[-1] == "gripper"

    teleop = TeleopCommand(np.linspace(-1, 1, 6), 0.7, intervene=True, failure=True)
    again = messages.teleop_command(messages.deserialize(
        messages.serialize(messages.teleop_msg(teleop, 5), messages.TELEOP_COMMAND), messages.TELEOP_COMMAND))
    np.testing.assert_allclose(again.action(), teleop.action())
    assert again.intervene and again.failure and not again.success

    command = EEDeltaCommand(np.array([0.01, 0, 0]), np.array([0, 0, 0.1]), float("nan"))
    decoded = messages.ee_delta_command(messages.deserialize(
        messages.serialize(messages.ee_delta_msg(command, 1), messages.EE_DELTA_COMMAND), messages.EE_DELTA_COMMAND))
    np.testing.assert_allclose(decoded.as_array()[:6], command.as_array()[:6])
    assert np.isnan(decoded.gripper_closed)

    violation = Violation("workspace", "target clipped")
    assert messages.violation(messages.deserialize(messages.serialize(messages.violation_msg(violation, 9),
                                                                      messages.SAFETY_VIOLATION),
                                                   messages.SAFETY_VIOLATION)) == violation

    info = messages.camera_info_msg(CameraIntrinsics(640, 480, 600.0, 601.0, 320.0, 240.0), 7, "cam")
    decoded_info = messages.deserialize(messages.serialize(info, messages.CAMERA_INFO), messages.CAMERA_INFO)
    assert decoded_info.k[0] == 600.0 and decoded_info.p[5] == 601.0 and decoded_info.width == 640


def test_robolearn_types_are_registered_with_hashes():
    for typename in (messages.TELEOP_COMMAND, messages.EPISODE_CONTROL, messages.SAFETY_VIOLATION,
                     messages.EE_DELTA_COMMAND):
        assert messages.type_hash(typename).startswith("RIHS01_") and len(messages.type_hash(typename)) == 71
        assert messages.dds_type_name(typename) == f"robolearn_msgs::msg::dds_::{typename.rsplit('/', 1)[1]}_"
    assert messages.msg_class(messages.EPISODE_CONTROL).DISCARD == 3
