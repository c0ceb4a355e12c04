"""Config for the xArm (imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robolearn.cell import ArmConfig, CellConfig

from ..arm_base import HardwareArmConfig


@ArmConfig.register("xarm")
@dataclass
class XArmConfig(HardwareArmConfig):
    """A UFACTORY xArm in servo mode (mode 1), streaming absolute Cartesian targets.

    gripper_open_pulse / gripper_closed_pulse: xArm Gripper positions (850 open, 0 closed);
    gripper_max_width_m: finger opening at ``gripper_open_pulse``; gripper_speed_rpm: gripper speed.
    """

    gripper_open_pulse: float = 850.0
    gripper_closed_pulse: float = 0.0
    gripper_max_width_m: float = 0.085
    gripper_speed_rpm: float = 3000.0

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .arm import XArm

        return XArm(self, cell)
