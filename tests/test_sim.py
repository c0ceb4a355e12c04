"""The twin: every shipped cell compiles and steps, the controller tracks, cameras project right,
the env passes gymnasium's checker, and the scripted experts solve their tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robolearn.cell import load_cell
from robolearn.cli import main
from robolearn.config import ConfigError
from robolearn.env import make_env
from robolearn.interfaces import EEDeltaCommand
from robolearn.kinematics.panda import PANDA_Q_LOWER_RAD, PANDA_Q_UPPER_RAD
from robolearn.kinematics.rotations import matrix_to_quat
from robolearn.safety import tilt_rad
from robolearn.sim import Twin
from robolearn.sim.tasks import yaw_of

REPO = Path(__file__).resolve().parents[1]
CELLS = sorted((REPO / "configs" / "cells").glob("*.yaml"))
SIM_PANDA = REPO / "configs" / "cells" / "sim_panda.yaml"


@pytest.mark.parametrize("cell_path", CELLS, ids=[p.stem for p in CELLS])
def test_every_shipped_cell_compiles_and_steps_without_warnings(cell_path):
    twin = Twin(load_cell(cell_path))
    rng = np.random.default_rng(0)
    for _ in range(round(twin.cell.control_hz)):
        twin.arm.command(EEDeltaCommand(rng.uniform(-0.03, 0.03, 3), rng.uniform(-0.1, 0.1, 3), rng.uniform()))
        twin.advance(twin.cell.control_dt_s)
    assert all(w.number == 0 for w in twin.data.warning), [(i, w.number) for i, w in enumerate(twin.data.warning)]
    assert np.all(np.isfinite(twin.data.qpos))


def test_panda_forward_kinematics_match_published_home_pose():
    """At Franka's documented 'ready' pose the flange is at (0.307, 0, 0.590) m, TCP 0.1034 m below."""
    twin = Twin(load_cell(SIM_PANDA))
    twin.reset(np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4]))
    state = twin.arm.state()
    np.testing.assert_allclose(state.ee_pos_m, [0.30702, 0.0, 0.4869], atol=1e-3)
    lower = twin.model.jnt_range[:7, 0]
    np.testing.assert_allclose(lower, PANDA_Q_LOWER_RAD)
    np.testing.assert_allclose(twin.model.jnt_range[:7, 1], PANDA_Q_UPPER_RAD)


@pytest.mark.parametrize("offset_m", [(0.1, 0.1, -0.1), (-0.1, -0.15, 0.0), (0.15, 0.0, -0.25)])
def test_cartesian_controller_reaches_targets_inside_workspace(offset_m):
    twin = Twin(load_cell(SIM_PANDA))
    start = twin.arm.state().ee_pos_m
    target = start + np.asarray(offset_m)
    for _ in range(40):
        twin.arm.command(EEDeltaCommand(target - twin.arm.target_pos_m, np.zeros(3), 0.0))
        twin.advance(twin.cell.control_dt_s)
    assert np.linalg.norm(twin.arm.state().ee_pos_m - target) < 0.005


def test_sim_arm_reports_clips_and_rejects_nan():
    twin = Twin(load_cell(SIM_PANDA))
    applied = twin.arm.command(EEDeltaCommand(np.array([0.5, 0.0, 0.0]), np.zeros(3), 0.0))
    assert {v.kind for v in applied.violations} == {"max_step"}
    assert np.linalg.norm(applied.command.translation_m) == pytest.approx(twin.cell.safety.max_step_m)
    before = twin.arm.target_pos_m.copy()
    applied = twin.arm.command(EEDeltaCommand(np.array([np.nan, 0.0, 0.0]), np.zeros(3), 0.0))
    assert [v.kind for v in applied.violations] == ["nan"]
    np.testing.assert_array_equal(twin.arm.target_pos_m, before)
    for _ in range(30):
        applied = twin.arm.command(EEDeltaCommand(np.array([0.0, 0.0, -0.03]), np.zeros(3), 0.0))
    assert "workspace" in {v.kind for v in applied.violations}
    assert twin.arm.target_pos_m[2] >= twin.cell.safety.workspace_min_m[2] - 1e-9



def test_sim_arm_keeps_the_tool_inside_the_tilt_cone():
    twin = Twin(load_cell(SIM_PANDA, ["safety.max_tilt_rad=0.2"]))
    yaw_before = yaw_of(matrix_to_quat(twin.arm.target_rot))
    kinds = set()
    for _ in range(20):  # keeps rolling and turning: the roll stops at the cone, the turn goes on
        kinds |= {v.kind for v in twin.arm.command(EEDeltaCommand(np.zeros(3), np.array([0.1, 0.0, 0.05]), 0.0)).violations}
        twin.advance(twin.cell.control_dt_s)
    assert kinds == {"tilt"}
    assert tilt_rad(twin.arm.target_rot) == pytest.approx(0.2, abs=1e-4)
    measured = twin.data.site_xmat[twin.arm.site_id].reshape(3, 3)
    assert tilt_rad(measured) < 0.2 + 0.02
    turned = (yaw_of(matrix_to_quat(twin.arm.target_rot)) - yaw_before + np.pi) % (2 * np.pi) - np.pi
    assert abs(turned) > 0.5, "the turn about the vertical was not limited"

PINHOLE = ["cameras.0.width_px=160", "cameras.0.height_px=120", "cameras.0.fx_px=150.0", "cameras.0.fy_px=125.0",
           "cameras.0.cx_px=71.5", "cameras.0.cy_px=66.25"]


@pytest.mark.parametrize("intrinsics", [[], PINHOLE], ids=["fov_y_deg", "pinhole_fx_ne_fy_off_centre"])
def test_camera_intrinsics_project_a_known_point_to_its_pixel(intrinsics):
    cell = load_cell(SIM_PANDA, ["objects.0.rgba=[0.0, 0.0, 1.0, 1.0]", *intrinsics])
    twin = Twin(cell)
    cube_m = np.array([0.55, 0.08, 0.02])
    twin.set_object_pose("cube", cube_m, np.array([1.0, 0.0, 0.0, 0.0]))
    twin.arm.set_joint_positions(np.array([1.2, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]))  # arm out of view
    twin.forward()
    camera = twin.cameras["front"]
    frame = camera.read()
    blue = (frame.color[..., 2] > 120) & (frame.color[..., 0] < 60) & (frame.color[..., 1] < 60)
    assert blue.sum() > 10
    rows, cols = np.nonzero(blue)
    position_m, rotation = camera.pose_world()
    expected_uv = camera.intrinsics.project((rotation.T @ (cube_m - position_m))[None])[0]
    assert abs(cols.mean() - expected_uv[0]) < 1.5 and abs(rows.mean() - expected_uv[1]) < 1.5
    if intrinsics:
        k = camera.intrinsics
        assert (k.width_px, k.height_px, k.fx_px, k.fy_px, k.cx_px, k.cy_px) == (160, 120, 150.0, 125.0, 71.5, 66.25)
        assert frame.color.shape == (120, 160, 3)
    # Depth at the cube's centre is its distance along the optical axis (front face is nearer).
    depth_centre = frame.depth_m[int(round(expected_uv[1])), int(round(expected_uv[0]))]
    assert abs(depth_centre - (rotation.T @ (cube_m - position_m))[2]) < 0.03


def test_env_passes_gymnasium_checker():
    env = make_env(SIM_PANDA, "pick_cube", cameras=True)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["rgb_front"].shape == (128, 128, 3) and obs["depth_front"].dtype == np.float32
    assert obs["state"].shape == (15,) and obs["object_state"].shape == (10,)


def test_env_rejects_nan_action_with_violation():
    env = make_env(SIM_PANDA, "reach", cameras=False, seed=0)
    _, _, _, _, info = env.step(np.array([np.nan, 0, 0, 0, 0, 0, 0], dtype=np.float32))
    assert any(v.startswith("nan") for v in info["violations"])


def test_same_seed_same_episode():
    env = make_env(SIM_PANDA, "push_cube", cameras=False)
    first, _ = env.reset(seed=7)
    env.step(env.action_space.sample())
    second, _ = env.reset(seed=7)
    np.testing.assert_array_equal(first["object_state"], second["object_state"])


def test_cell_teleops_with_a_seed_repeat_their_commands():
    """A cell's ``expert`` (with action noise) and ``random`` teleops given a seed give the same
    commands every run, and different ones for another seed."""
    from robolearn.sim.configs import ExpertTeleopConfig, RandomTeleopConfig
    from robolearn.sim.tasks import load_task_config, make_task

    cell = load_cell(SIM_PANDA)
    twin = Twin(cell)
    twin.task = make_task(load_task_config("reach"), twin)

    def commands(config) -> np.ndarray:
        device = config.create(cell, twin)
        return np.array([device.read().ee_delta for _ in range(5)])

    for kind, options in ((ExpertTeleopConfig, {"noise_scale": 0.2}), (RandomTeleopConfig, {})):
        first = commands(kind(**options, seed=3))
        np.testing.assert_array_equal(first, commands(kind(**options, seed=3)))
        assert not np.array_equal(first, commands(kind(**options, seed=4)))


def test_cli_renders_headless_without_mujoco_gl_set():
    """A shell with no ``MUJOCO_GL`` and no display (the README's Quickstart on a fresh machine): the CLI
    loads MuJoCo while it builds its parser (``check-cell`` imports the twin), and the twin's cameras
    must still render, on EGL. A backend the user chose stays theirs."""
    script = ("import os, sys\n"
              "from robolearn.cli import build_parser\n"
              "build_parser()\n"
              "from robolearn.cell import load_cell\n"
              "from robolearn.sim import Twin\n"
              f"twin = Twin(load_cell({str(SIM_PANDA)!r}))\n"
              "frame = next(iter(twin.cameras.values())).read()\n"
              "print(os.environ['MUJOCO_GL'], frame.color.shape, int(frame.color.max()) > 0)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "egl" and done.stdout.strip().endswith("True")
    chosen = subprocess.run([sys.executable, "-c", "import os, robolearn; print(os.environ['MUJOCO_GL'])"],
                            capture_output=True, text=True, env={**env, "MUJOCO_GL": "osmesa"}, timeout=60)
    assert chosen.stdout.strip() == "osmesa"


def test_unknown_task_and_missing_object_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'pick_cub'; registered: pick_cube, pick_cube_reset, push_cube, push_cube_reset, reach"):
        make_env(SIM_PANDA, "pick_cub")
    with pytest.raises(ConfigError, match="needs an object named 'cube'"):
        make_env(SIM_PANDA, "pick_cube", overrides=["objects=[]"])


@pytest.mark.parametrize("task", ["reach", "pick_cube", "push_cube"])
def test_scripted_expert_solves_task_from_cli(task, capsys):
    code = main(
        ["sim", "run", "--cell", str(SIM_PANDA), "--task", task, "--teleop", "expert", "--episodes", "20", "--seed", "0", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 20 and result["success_rate"] >= 0.95


def test_check_cell_builds_the_twin(capsys):
    assert main(["check-cell", str(SIM_PANDA), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["twin"]["n_joints"] == 7 and summary["twin"]["physics_hz"] == 500.0
    assert mujoco.__version__.split(".")[0] >= "3"


def test_cell_can_use_an_external_mjcf_robot(tmp_path):
    """A robot from any MJCF file (here the built-in Panda written out as a standalone model, as a
    Menagerie checkout would be) is attached, gravity-compensated and driven by the same controller."""
    from robolearn.kinematics.panda import PANDA
    from robolearn.sim.robot_mjcf import arm_mjcf_document

    robot_xml = tmp_path / "my_panda.xml"
    robot_xml.write_text(arm_mjcf_document(PANDA))
    overrides = [
        "robot.model=mjcf", f"robot.mjcf_path={robot_xml}", "robot.ee_site=tcp", "robot.gripper_actuator=gripper",
        "robot.joint_names=[joint1, joint2, joint3, joint4, joint5, joint6, joint7]", "cameras.1.mount=world",
    ]
    twin = Twin(load_cell(SIM_PANDA, overrides))
    assert twin.binding.ee_site == "robot/tcp"
    target = twin.arm.state().ee_pos_m + np.array([0.05, -0.05, -0.05])
    for _ in range(30):
        twin.arm.command(EEDeltaCommand(target - twin.arm.target_pos_m, np.zeros(3), 1.0))
        twin.advance(twin.cell.control_dt_s)
    assert np.linalg.norm(twin.arm.state().ee_pos_m - target) < 0.005
    with pytest.raises(ConfigError, match="robot.mjcf_path: no MJCF file"):
        Twin(load_cell(SIM_PANDA, ["robot.model=mjcf", f"robot.mjcf_path={tmp_path / 'absent.xml'}", "robot.joint_names=[a]"]))


def test_task_randomization_knobs_vary_lights_cameras_and_objects():
    env = make_env(SIM_PANDA, "pick_cube", cameras=False, task_overrides=["light_jitter=0.3", "camera_pos_jitter_m=0.02"])
    model = env.unwrapped.twin.model
    front = model.camera("front").id
    seen = []
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        seen.append((model.light_diffuse.copy(), model.cam_pos[front].copy(), obs["object_state"][:3].copy()))
    for first, second in zip(*seen):
        assert not np.allclose(first, second)
    assert np.all(np.abs(seen[0][1] - np.array([1.15, 0.0, 0.55])) <= 0.02 + 1e-9)


def test_bad_cli_numbers_are_one_line_config_errors(capsys):
    from robolearn.collect import CollectSettings

    assert main(["sim", "run", "--noise", "-1", "--episodes", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("robolearn: config error: --noise: -1.0: must be ≥ 0: the expert's action "
                                               "noise std, a fraction of the action range (e.g. 0.1)")
    assert main(["sim", "run", "--episodes", "0"]) == 2
    assert "--episodes: 0: must be positive" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--noise: -0.5: must be ≥ 0"):
        CollectSettings(noise=-0.5)
    with pytest.raises(ConfigError, match="teleop: noise_scale must be ≥ 0"):
        load_cell(SIM_PANDA, ["teleop.noise_scale=-0.1"])


@pytest.mark.parametrize("teleop, message", [
    ("spacemouse", "robolearn: error: no SpaceMouse found: plug it in"),
    ("keyboard", "robolearn: error: the keyboard teleop reads key presses from a terminal, and standard input is not one"),
])
def test_a_missing_teleop_device_is_one_error_line_and_exit_2(teleop, message):
    import subprocess
    import sys

    if teleop == "spacemouse":
        import hid

        if any(d["vendor_id"] in (0x256F, 0x046D) for d in hid.enumerate()):
            pytest.skip("a 3Dconnexion device is attached")
    run = subprocess.run([sys.executable, "-m", "robolearn", "sim", "run", "--teleop", teleop, "--episodes", "1"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "ROBOLEARN_DEBUG"})
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), run.stderr


def test_view_without_a_display_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["sim", "run", "--view", "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robolearn: error: --view needs a display") and "--video OUT.mp4" in err


def test_a_human_teleop_paces_the_twin_to_the_control_rate():
    from robolearn.rollout import is_human_teleop

    assert is_human_teleop("keyboard") and is_human_teleop("spacemouse") and is_human_teleop("gamepad")
    assert not is_human_teleop("expert")
    steps, hz = 8, 50.0
    for real_time in (False, True):
        env = make_env(SIM_PANDA, "reach", cameras=False, overrides=[f"control_hz={hz}"], real_time=real_time, seed=0)
        started = time.monotonic()
        for _ in range(steps):
            env.step(np.zeros(7, np.float32))
        elapsed = time.monotonic() - started
        if real_time:
            assert elapsed >= (steps - 1) / hz, "a paced twin never runs ahead of the host clock"
        env.close()
    assert env.unwrapped.twin.time_ns == round(steps / hz * 1e9)


def test_random_operator_collects_seeded_negatives(tmp_path):
    from robolearn.collect import CollectSettings, collect
    from robolearn.store import DemoStore

    stores = []
    for name in ("a", "b"):
        settings = CollectSettings(store=str(tmp_path / f"{name}.zarr"), episodes=2, teleop="random", seed=3,
                                   cameras=False, task_overrides=["max_episode_steps=20"], progress=False)
        summary = collect(settings)
        assert summary["episodes_committed"] == 2 and summary["success_rate"] == 0.0
        stores.append(DemoStore.open(settings.store))
    actions = [store.episode(0)["action"] for store in stores]
    np.testing.assert_array_equal(actions[0], actions[1])  # seeded
    gripper = actions[0][:, 6]
    assert len(np.unique(gripper)) == 20 and gripper.min() > -1 and gripper.max() < 1  # half-closed grippers too


def test_a_control_period_between_physics_steps_keeps_the_rate_on_average():
    twin = Twin(load_cell(SIM_PANDA, ["control_hz=15.0"]))  # 500 Hz physics: 33⅓ steps per control period
    stamps = []
    for _ in range(15):
        twin.advance(twin.cell.control_dt_s)
        stamps.append(twin.time_ns)
    assert stamps[-1] == 1_000_000_000
    assert set(np.diff([0, *stamps])) == {66_000_000, 68_000_000}  # 33 or 34 steps of 2 ms
    twin.reset()
    twin.advance(0.1)
    assert twin.time_ns == 100_000_000
