"""Config for the Franka arm (imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robolearn.cell import ArmConfig, CellConfig

from ..arm_base import HardwareArmConfig


@ArmConfig.register("franka")
@dataclass
class FrankaArmConfig(HardwareArmConfig):
    """A Franka Panda or FR3 driven by franky's Cartesian impedance tracking controller.

    translational_stiffness_n_m / rotational_stiffness_nm_rad: impedance gains (critically damped).
    relative_dynamics_factor: scales franky's velocity, acceleration and jerk limits (0, 1].
    collision_torque_nm / collision_force_n: reflex thresholds for ``set_collision_behavior``.
    gripper_speed_m_s, grasp_force_n: Franka Hand motion. The Franka Hand is driven as binary:
    a gripper target >= 0.5 grasps, < 0.5 opens (each Hand motion takes about a second).
    """

    translational_stiffness_n_m: float = 2000.0
    rotational_stiffness_nm_rad: float = 150.0
    relative_dynamics_factor: float = 0.2
    collision_torque_nm: float = 30.0
    collision_force_n: float = 40.0
    gripper_speed_m_s: float = 0.1
    grasp_force_n: float = 40.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.relative_dynamics_factor <= 1.0:
            raise ValueError(f"relative_dynamics_factor must be in (0, 1], got {self.relative_dynamics_factor}")

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .arm import FrankaArm

        return FrankaArm(self, cell)
