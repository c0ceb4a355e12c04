"""Config for the terminal keyboard teleop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robolearn.cell import CellConfig, TeleopConfig


@TeleopConfig.register("keyboard")
@dataclass
class KeyboardConfig(TeleopConfig):
    """Drive the end effector from a terminal (works over SSH; no display needed).

    Keys (see ``drivers/keyboard/device.py``): w/s or ↑/↓ ±x, a/d or ←/→ ±y, r/f ±z, u/o ±roll,
    i/k ±pitch, j/l ±yaw, space toggles the gripper, t toggles intervention, Enter success,
    x failure, n reset, q quit. translation_scale / rotation_scale: the normalized delta one key
    press gives (1.0 is a full ``max_step_m`` / ``max_rot_step_rad`` step). tty: the terminal to read
    (empty: standard input).
    """

    translation_scale: float = 1.0
    rotation_scale: float = 0.5
    tty: str = ""

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .device import Keyboard

        return Keyboard(self)
