"""Config for a gamepad (imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robolearn.cell import CellConfig, TeleopConfig

from ..teleop_base import AxisMapping, ButtonMap


@dataclass
class GamepadMapping(AxisMapping):
    """SDL2 axes of an Xbox-layout pad: 0 left x, 1 left y (down +), 2 left trigger, 3 right x,
    4 right y (down +), 5 right trigger. By default the left stick moves in the table plane, the
    right stick's y moves up and down and its x turns the gripper about z."""

    axes: tuple[int, int, int, int, int, int] = (1, 0, 4, -1, -1, 3)
    signs: tuple[float, float, float, float, float, float] = (-1.0, -1.0, -1.0, 1.0, 1.0, -1.0)
    deadzone: float = 0.15


@dataclass
class GamepadButtons(ButtonMap):
    """SDL2 buttons of an Xbox-layout pad: 0 A, 1 B, 3 Y, 5 RB, 6 Back, 7 Start."""

    gripper: int = 0
    intervene: int = 5
    success: int = 3
    failure: int = 1
    reset: int = 7
    quit: int = 6


@TeleopConfig.register("gamepad")
@dataclass
class GamepadConfig(TeleopConfig):
    """A gamepad read with pygame (SDL2 joystick API).

    index: which joystick (0: the first). mapping / buttons: see ``AxisMapping`` / ``ButtonMap``;
    the defaults fit an Xbox-layout pad (A gripper, Y success, B failure, Start reset, RB held:
    intervene, Back quit). intervene_on_motion: moving a stick also marks an intervention.
    """

    index: int = 0
    mapping: GamepadMapping = field(default_factory=GamepadMapping)
    buttons: GamepadButtons = field(default_factory=GamepadButtons)
    intervene_on_motion: bool = True

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .device import Gamepad

        return Gamepad(self)
