"""Config for the UR arm (imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from robolearn.cell import ArmConfig, CellConfig

from ..arm_base import HardwareArmConfig


@ArmConfig.register("ur")
@dataclass
class URArmConfig(HardwareArmConfig):
    """A Universal Robots arm over RTDE, with an optional Robotiq gripper through its URCap socket.

    mode: ``servo`` streams absolute targets with ``servoL`` (lookahead_time_s in [0.03, 0.2],
    servo_gain in [100, 2000]) and joint targets with ``servoJ``; ``speed`` sends the velocity that
    reaches the target in one control step with ``speedL`` (acceleration_m_s2) or ``speedJ``
    (joint_acceleration_rad_s2). stop_deceleration_m_s2: used by ``stop()``.
    gripper_port: the Robotiq URCap socket (63352); gripper_max_width_m: the stroke (0.085 for 2F-85).
    """

    mode: Literal["servo", "speed"] = "servo"
    lookahead_time_s: float = 0.1
    servo_gain: float = 300.0
    acceleration_m_s2: float = 0.5
    joint_acceleration_rad_s2: float = 1.4
    stop_deceleration_m_s2: float = 2.0
    gripper_port: int = 63352
    gripper_max_width_m: float = 0.085
    gripper_speed: int = 255
    gripper_force: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.03 <= self.lookahead_time_s <= 0.2:
            raise ValueError(f"lookahead_time_s must be in [0.03, 0.2] (ur_rtde servoL), got {self.lookahead_time_s}")
        if not 100 <= self.servo_gain <= 2000:
            raise ValueError(f"servo_gain must be in [100, 2000] (ur_rtde servoL), got {self.servo_gain}")

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .arm import URArm

        return URArm(self, cell)
