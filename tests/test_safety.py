"""SafetyFilter properties: whatever comes in, what goes out is inside the box and the caps, and
no NaN or inf ever passes."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from robolearn.cell import SafetyConfig
from robolearn.interfaces import EEDeltaCommand
from robolearn.safety import SafetyFilter, Watchdog

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
    safe, violations = FILTER.filter_ee_delta(EEDeltaCommand(translation, rotation, gripper), target)
    out = np.concatenate([safe.translation_m, safe.rotation_rad])
    assert np.all(np.isfinite(out))
    assert np.linalg.norm(safe.translation_m) <= CONFIG.max_step_m + 1e-9
    assert np.linalg.norm(safe.rotation_rad) <= CONFIG.max_rot_step_rad + 1e-9
    new_target = target + safe.translation_m
    assert np.all(new_target >= np.array(CONFIG.workspace_min_m) - 1e-9)
    assert np.all(new_target <= np.array(CONFIG.workspace_max_m) + 1e-9)
    assert np.isnan(safe.gripper_closed) or 0.0 <= safe.gripper_closed <= 1.0
    raw = np.concatenate([translation, rotation])
    if not np.all(np.isfinite(raw)):
        assert [v.kind for v in violations] == ["nan"] and not np.any(out)


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
