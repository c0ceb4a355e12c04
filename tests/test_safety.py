"""SafetyFilter properties: whatever comes in, what goes out is inside the box and the caps, and
no NaN or inf ever passes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from robolearn.cell import SafetyConfig
from robolearn.interfaces import EEDeltaCommand, JointCommand
from robolearn.kinematics.rotations import rotvec_to_matrix
from robolearn.safety import SafetyFilter, Watchdog, tilt_rad

CONFIG = SafetyConfig()
FILTER = SafetyFilter(CONFIG, np.full(7, -2.9), np.full(7, 2.9))
anything = st.floats(allow_nan=True, allow_infinity=True, width=64)
vec3 = st.lists(anything, min_size=3, max_size=3).map(np.array)
inside = st.tuples(
    *(st.floats(lo, hi) for lo, hi in zip(CONFIG.workspace_min_m, CONFIG.workspace_max_m))
).map(np.array)


@settings(max_examples=300, deadline=None)
@given(translation=vec3, rotation=vec3, gripper=anything, target=inside)
@example(  # a target 7.5 µm past the box once passed a relative-tolerance check
    translation=np.array([0.0625, 0.0, 250.0]), rotation=np.zeros(3), gripper=0.0, target=np.array([0.75, 0.0, 0.0])
)
def test_output_is_finite_inside_box_and_caps(translation, rotation, gripper, target):
    check_ee_filter(translation, rotation, gripper, target)


def outside_box_m(position_m: np.ndarray) -> np.ndarray:
    """Per axis, how far ``position_m`` is outside the workspace box (0 inside)."""
    lower, upper = np.array(CONFIG.workspace_min_m), np.array(CONFIG.workspace_max_m)
    return np.maximum(lower - position_m, 0.0) + np.maximum(position_m - upper, 0.0)


def check_ee_filter(translation, rotation, gripper, target):
    """Whatever the command and the current target: finite, within the per-step caps, and the new
    target inside the box, or, from a target outside it, no further out on any axis."""
    safe, violations = FILTER.filter_ee_delta(EEDeltaCommand(translation, rotation, gripper), target)
    out = np.concatenate([safe.translation_m, safe.rotation_rad])
    assert np.all(np.isfinite(out))
    assert np.linalg.norm(safe.translation_m) <= CONFIG.max_step_m + 1e-9
    assert np.linalg.norm(safe.rotation_rad) <= CONFIG.max_rot_step_rad + 1e-9
    new_target = target + safe.translation_m
    before, after = outside_box_m(target), outside_box_m(new_target)
    if not before.any():
        assert np.all(after <= 1e-9)
    assert np.all(after <= before + 1e-9), "a step never leads further out of the box"
    assert np.isnan(safe.gripper_closed) or 0.0 <= safe.gripper_closed <= 1.0
    raw = np.concatenate([translation, rotation])
    if not np.all(np.isfinite(raw)):
        assert [v.kind for v in violations] == ["nan"] and not np.any(out)
    return safe, violations


anywhere = st.tuples(*(st.floats(-3.0, 3.0) for _ in range(3))).map(np.array)


@settings(max_examples=300, deadline=None)
@given(translation=vec3, rotation=vec3, gripper=anything, target=anywhere)
@example(  # a real arm connected 0.45 m above the box: a zero command once jumped into it in one step
    translation=np.zeros(3), rotation=np.zeros(3), gripper=0.0, target=np.array([0.5, 0.0, 0.9])
)
def test_targets_outside_the_box_move_back_within_the_caps(translation, rotation, gripper, target):
    check_ee_filter(translation, rotation, gripper, target)


def test_a_target_above_the_box_returns_at_max_step():
    target = np.array([0.5, 0.0, 0.9])
    for _ in range(10):
        safe, violations = FILTER.filter_ee_delta(EEDeltaCommand(np.zeros(3), np.zeros(3), 0.0), target)
        assert np.linalg.norm(safe.translation_m) <= CONFIG.max_step_m + 1e-12
        target = target + safe.translation_m
    assert [v.kind for v in violations] == ["workspace"] and "moving at most max_step_m" in violations[0].detail
    np.testing.assert_allclose(target, [0.5, 0.0, 0.9 - 10 * CONFIG.max_step_m])
    for _ in range(10):
        safe, violations = FILTER.filter_ee_delta(EEDeltaCommand(np.zeros(3), np.zeros(3), 0.0), target)
        target = target + safe.translation_m
    np.testing.assert_allclose(target, [0.5, 0.0, CONFIG.workspace_max_m[2]])
    assert not violations, "inside the box a zero command holds"


@settings(max_examples=200, deadline=None)
@given(
    q_target=st.lists(anything, min_size=7, max_size=7).map(np.array),
    q_now=st.lists(st.floats(-2.8, 2.8), min_size=7, max_size=7).map(np.array),
)
def test_joint_targets_stay_in_limits_and_velocity(q_target, q_now):
    dt_s = 0.1
    safe, _ = FILTER.filter_joint_target(q_target, q_now, dt_s)
    assert np.all(np.isfinite(safe))
    assert np.all(np.abs(safe - q_now) <= CONFIG.max_joint_vel_rad_s * dt_s + 1e-9)
    if np.all(np.isfinite(q_target)):
        margin = CONFIG.joint_margin_rad
        moved = ~np.isclose(safe, q_now)
        assert np.all((safe[moved] >= -2.9 + margin - 1e-9) & (safe[moved] <= 2.9 - margin + 1e-9))


def test_watchdog_holds_on_stale_and_missing_events():
    watchdog = Watchdog(timeout_s=0.5)
    assert watchdog.check(0).kind == "stale_command"
    watchdog.feed(1_000_000_000)
    assert watchdog.check(1_400_000_000) is None
    violation = watchdog.check(1_600_000_000)
    assert violation.kind == "stale_command" and "600 ms" in violation.detail


def _tool_at_first_joint(q: np.ndarray) -> np.ndarray:
    """A stand-in kinematics: the tool moves along x with joint 1 (0.5 m at q1 = 0)."""
    return np.array([0.5 + 0.1 * q[0], 0.0, 0.2])


JOINT_FILTER = SafetyFilter(CONFIG, np.full(7, -2.9), np.full(7, 2.9), tool_position_m=_tool_at_first_joint)


@settings(max_examples=200, deadline=None)
@given(q_target=st.lists(anything, min_size=7, max_size=7).map(np.array), gripper=anything,
       q_now=st.lists(st.floats(-2.0, 2.0), min_size=7, max_size=7).map(np.array))
def test_joint_commands_stay_in_limits_speed_and_workspace(q_target, gripper, q_now):
    dt_s = 0.1
    safe, violations = JOINT_FILTER.filter_joint_command(JointCommand(q_target, gripper), q_now, dt_s)
    assert np.all(np.isfinite(safe.q_rad))
    assert np.all(np.abs(safe.q_rad - q_now) <= CONFIG.max_joint_vel_rad_s * dt_s + 1e-9)
    tool = _tool_at_first_joint(safe.q_rad)
    if not np.array_equal(safe.q_rad, q_now):
        assert np.all(tool >= CONFIG.workspace_min_m) and np.all(tool <= CONFIG.workspace_max_m)
    assert np.isnan(safe.gripper_closed) or 0.0 <= safe.gripper_closed <= 1.0
    if not np.all(np.isfinite(q_target)) or np.isinf(gripper):
        assert [v.kind for v in violations] == ["nan"] and np.array_equal(safe.q_rad, q_now)


def test_joint_command_outside_the_workspace_is_rejected_whole():
    q_now = np.zeros(7)
    target = q_now + np.array([0.15, 0.05, 0, 0, 0, 0, 0])  # q1 = 0.15: tool at x = 0.515, inside
    safe, violations = JOINT_FILTER.filter_joint_command(JointCommand(target, 2.0), q_now, dt_s=0.1)
    np.testing.assert_allclose(safe.q_rad, target)
    assert [v.kind for v in violations] == ["gripper_range"] and safe.gripper_closed == 1.0
    q_edge = np.array([2.4, 0, 0, 0, 0, 0, 0])  # tool at x = 0.74; one more 0.2 rad step leaves the box (0.75)
    safe, violations = JOINT_FILTER.filter_joint_command(JointCommand(q_edge + 0.2), q_edge, dt_s=0.1)
    np.testing.assert_array_equal(safe.q_rad, q_edge)
    assert [v.kind for v in violations][-1] == "workspace" and "rejected, holding" in violations[-1].detail


def test_joint_commands_need_limits_and_kinematics():
    import pytest

    with pytest.raises(ValueError, match="joint limits and forward kinematics"):
        FILTER.filter_joint_command(JointCommand(np.zeros(7)), np.zeros(7), 0.1)
    with pytest.raises(ValueError, match="needs 7 positions"):
        JOINT_FILTER.filter_joint_command(JointCommand(np.zeros(6)), np.zeros(7), 0.1)


TILTED = SafetyFilter(SafetyConfig(max_tilt_rad=0.3))
TCP_M = np.array([0.5, 0.0, 0.2])
DOWN = np.diag([1.0, -1.0, -1.0])  # the tool's approach axis (z) pointing straight down
small_rotation = st.lists(st.floats(-0.08, 0.08), min_size=3, max_size=3).map(np.array)  # within max_rot_step_rad
orientation = st.lists(st.floats(-0.6, 0.6), min_size=3, max_size=3).map(lambda v: rotvec_to_matrix(np.array(v)) @ DOWN)


@settings(max_examples=200, deadline=None)
@given(rotation=small_rotation, target_rot=orientation)
def test_the_tilt_cone_is_never_left_and_never_widened(rotation, target_rot):
    """From inside the cone the tool stays inside; from outside it never tilts further; the turn about
    the vertical always passes."""
    safe, violations = TILTED.filter_ee_delta(EEDeltaCommand(np.zeros(3), rotation, 0.0), TCP_M, target_rot)
    before = tilt_rad(target_rot)
    after = tilt_rad(rotvec_to_matrix(safe.rotation_rad) @ target_rot)
    assert after <= max(0.3, before) + 1e-6
    assert safe.rotation_rad[2] == rotation[2]
    if violations:
        assert [v.kind for v in violations] == ["tilt"] and "max_tilt_rad" in violations[0].detail
    else:
        np.testing.assert_array_equal(safe.rotation_rad, rotation)


def test_a_tilting_command_stops_at_the_cone_and_yaw_passes():
    target_rot = rotvec_to_matrix(np.array([0.25, 0.0, 0.0])) @ DOWN  # 0.25 rad tilted about x
    safe, violations = TILTED.filter_ee_delta(EEDeltaCommand(np.zeros(3), np.array([0.1, 0.0, 0.1]), 0.0),
                                              TCP_M, target_rot)
    assert [v.kind for v in violations] == ["tilt"]
    assert 0.04 < safe.rotation_rad[0] < 0.06 and safe.rotation_rad[1] == 0.0  # about 0.25 + 0.05: the 0.3 rad cone
    assert tilt_rad(rotvec_to_matrix(safe.rotation_rad) @ target_rot) == pytest.approx(0.3, abs=1e-5)
    untouched, none = TILTED.filter_ee_delta(EEDeltaCommand(np.zeros(3), np.array([-0.1, 0.0, 0.1]), 0.0),
                                             TCP_M, target_rot)
    assert none == [] and np.array_equal(untouched.rotation_rad, [-0.1, 0.0, 0.1])  # straightening passes
    free, none = FILTER.filter_ee_delta(EEDeltaCommand(np.zeros(3), np.array([0.1, 0.0, 0.0]), 0.0),
                                        TCP_M, target_rot)
    assert none == [], "no max_tilt_rad: any orientation"
