"""Messages: robolearn types registered with RIHS01 hashes; conversions round-trip; the image fast path
gives exactly rosbags' CDR."""

from __future__ import annotations

import numpy as np

from robolearn.interfaces import ArmState, CameraIntrinsics, EEDeltaCommand, TeleopCommand, Violation
from robolearn.ros import messages


def test_image_fast_path_equals_rosbags_cdr():
    rng = np.random.default_rng(0)
    arrays = (rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), rng.random((240, 320)).astype(np.float32))
    # Several stamps and frame ids per format: the cached head must only differ in the stamp bytes.
    for array in arrays:
        for stamp, frame_id in ((1_234_567_890_123, "front_optical_frame"), (2**31 * 10**9 - 1, "front_optical_frame"),
                                (7, "wrist")):
            msg = messages.image_msg(array, stamp, frame_id)
            fast = messages.serialize(msg, messages.IMAGE)
            assert isinstance(fast, bytes)
            assert fast == bytes(messages.typestore().serialize_cdr(msg, messages.IMAGE))
            assert messages.image_cdr(array, stamp, frame_id) == fast  # what the camera node publishes
            back = messages.deserialize(fast, messages.IMAGE)
            np.testing.assert_array_equal(messages.image_array(back), array)
            assert messages.stamp_ns(back) == stamp and back.header.frame_id == frame_id
    compressed = messages.msg_class(messages.COMPRESSED_IMAGE)(
        header=messages.header(99, "front"), format="rgb8; jpeg compressed bgr8", data=arrays[0].reshape(-1))
    assert messages.serialize(compressed, messages.COMPRESSED_IMAGE) == bytes(
        messages.typestore().serialize_cdr(compressed, messages.COMPRESSED_IMAGE))


def test_received_pixels_are_a_view_of_the_wire_bytes():
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cdr = messages.serialize(messages.image_msg(rgb, 5, "cam"), messages.IMAGE)
    msg = messages.deserialize(cdr, messages.IMAGE)
    np.testing.assert_array_equal(messages.image_array(msg), rgb)
    assert np.shares_memory(msg.data, np.frombuffer(cdr, np.uint8)), "the pixels were copied on receive"
    assert msg.header.frame_id == "cam" and messages.stamp_ns(msg) == 5


def test_compressed_image_round_trip_and_twist():
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, np.full_like(xx, 200)], axis=-1).astype(np.uint8)  # smooth: JPEG-friendly
    msg = messages.compressed_image_msg(rgb, 5_000_000_001, "front", quality=95)
    assert msg.format == "rgb8; jpeg compressed bgr8" and bytes(msg.data[:2]) == b"\xff\xd8"  # a JPEG
    back = messages.compressed_image_array(messages.deserialize(messages.serialize(msg, messages.COMPRESSED_IMAGE),
                                                                messages.COMPRESSED_IMAGE))
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).mean() < 2
    twist = messages.twist_msg(np.array([0.1, -0.2, 0.0]), np.array([0.0, 0.0, 1.0]), 3)
    delta = messages.twist_to_ee_delta(messages.deserialize(messages.serialize(twist, messages.TWIST_STAMPED),
                                                            messages.TWIST_STAMPED), 0.05)
    np.testing.assert_allclose(delta.translation_m, [0.005, -0.01, 0.0])
    np.testing.assert_allclose(delta.rotation_rad, [0.0, 0.0, 0.05])
    assert np.isnan(delta.gripper_closed)


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


def test_msg_package_for_ros_workspaces(tmp_path):
    from robolearn.ros.msg_package import write_msg_package

    root = write_msg_package(tmp_path)
    names = sorted(p.name for p in messages.MSG_DIR.glob("*.msg"))
    assert root == tmp_path / "robolearn_msgs" and sorted(p.name for p in (root / "msg").iterdir()) == names
    for name in names:
        assert (root / "msg" / name).read_text() == (messages.MSG_DIR / name).read_text()
    cmake = (root / "CMakeLists.txt").read_text()
    assert "rosidl_generate_interfaces(${PROJECT_NAME}" in cmake and all(f'"msg/{n}"' in cmake for n in names)
    assert "<name>robolearn_msgs</name>" in (root / "package.xml").read_text()
