"""The digital twin of one cell: a compiled MuJoCo model, its state, and the simulated devices.

One ``Twin`` owns one ``MjData``; its ``arm`` and ``cameras`` share it, so a command sent to the
arm is seen by every camera. Time advances only through ``advance`` (the env's control tick), which
runs the arm's controller on every physics step.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robolearn.cell import CellConfig
from robolearn.sim.arm import SimArm
from robolearn.sim.camera import SimCamera
from robolearn.sim.mjcf import GOAL_BODY, build_model, physics_hz


class Twin:
    """A cell's MuJoCo model with its ``arm`` (``SimArm``) and ``cameras`` (name → ``SimCamera``)."""

    def __init__(self, cell: CellConfig):
        self.cell = cell
        self.model, self.binding = build_model(cell)
        self.data = mujoco.MjData(self.model)
        self.physics_hz = physics_hz(cell)
        self.arm = SimArm(self)
        self.cameras = {c.name: SimCamera(self, c) for c in cell.cameras}
        self.time_ns = 0
        self.reset()

    def reset(self, q_rad: np.ndarray | None = None) -> None:
        """Put the arm at ``q_rad`` (default: the cell's home pose) at rest, gripper open, objects at
        their configured poses."""
        mujoco.mj_resetData(self.model, self.data)
        home = np.asarray(self.cell.robot.home_q_rad if q_rad is None else q_rad, dtype=np.float64)
        self.arm.set_joint_positions(home)
        for obj in self.cell.objects:
            self.set_object_pose(obj.name, np.asarray(obj.pos_m), np.array([1.0, 0.0, 0.0, 0.0]))
        mujoco.mj_forward(self.model, self.data)
        self.arm.reset_target()
        self.time_ns = 0
        self._carry_ns = 0.0  # time asked for but not run yet (negative: run ahead)

    def advance(self, duration_s: float) -> None:
        """Run physics (and the arm's controller at every physics step) for ``duration_s``, at least
        one step. A duration that is not a whole number of physics steps (15 Hz control on 500 Hz
        physics: 33⅓) runs the nearest count of steps to the time requested so far (33, 33, 34, ...),
        so the twin's clock keeps the control rate on average and never drifts from it."""
        step_ns = 1e9 / self.physics_hz
        wanted_ns = duration_s * 1e9 + self._carry_ns
        n_steps = max(1, round(wanted_ns / step_ns))
        for _ in range(n_steps):
            self.arm.apply_control()
            mujoco.mj_step(self.model, self.data)
        self._carry_ns = wanted_ns - n_steps * step_ns
        self.time_ns += round(n_steps * step_ns)

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(pos_m (3,), quat_wxyz (4,))`` of a free object."""
        qpos = self.data.joint(f"{name}_free").qpos
        return qpos[:3].copy(), qpos[3:7].copy()

    def set_object_pose(self, name: str, pos_m: np.ndarray, quat_wxyz: np.ndarray) -> None:
        joint = self.data.joint(f"{name}_free")
        joint.qpos[:3] = pos_m
        joint.qpos[3:7] = quat_wxyz
        joint.qvel[:] = 0.0

    @property
    def goal_pos_m(self) -> np.ndarray:
        return self.data.mocap_pos[self.model.body(GOAL_BODY).mocapid[0]].copy()

    def set_goal(self, pos_m: np.ndarray, visible: bool = True) -> None:
        """Move the goal marker (a non-colliding sphere) and show or hide it in renders."""
        self.data.mocap_pos[self.model.body(GOAL_BODY).mocapid[0]] = pos_m
        self.model.site(GOAL_BODY).rgba[3] = 0.6 if visible else 0.0

    def get_state(self) -> np.ndarray:
        """The full physics state (robomimic ``get_state``): ``(n,) float64``."""
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(self.model, spec))
        mujoco.mj_getState(self.model, self.data, state, spec)
        return state

    def reset_to(self, state: np.ndarray) -> None:
        """Restore a state from ``get_state`` (robomimic ``reset_to``)."""
        mujoco.mj_setState(self.model, self.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(self.model, self.data)
        self.arm.reset_target()

    def close(self) -> None:
        for camera in self.cameras.values():
            camera.disconnect()
