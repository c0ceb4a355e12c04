"""Config for the SpaceMouse (imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robolearn.cell import CellConfig, TeleopConfig

from ..teleop_base import AxisMapping, ButtonMap


@dataclass
class SpaceMouseMapping(AxisMapping):
    """Raw device axes: +x right, +y towards the operator, +z down; the defaults turn them into the
    cell frame of a robot that faces away from the operator (x away, y left, z up)."""

    axes: tuple[int, int, int, int, int, int] = (1, 0, 2, 4, 3, 5)
    signs: tuple[float, float, float, float, float, float] = (-1.0, -1.0, -1.0, -1.0, -1.0, -1.0)


@TeleopConfig.register("spacemouse")
@dataclass
class SpaceMouseConfig(TeleopConfig):
    """A SpaceMouse read as raw HID reports (6-DoF and buttons).

    vendor_id / product_id: the device (0: the first 3Dconnexion device found). full_scale: the raw
    count read as 1.0 (about 350 on current devices). mapping: axis order, signs, scale, deadzone
    from raw axes ``(x, y, z, rx, ry, rz)``. buttons: left button (0) toggles the gripper, right
    button (1) marks success by default. intervene_on_motion: moving the cap marks an intervention.
    """

    vendor_id: int = 0
    product_id: int = 0
    full_scale: float = 350.0
    mapping: SpaceMouseMapping = field(default_factory=SpaceMouseMapping)
    buttons: ButtonMap = field(default_factory=ButtonMap)
    intervene_on_motion: bool = True

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .device import SpaceMouse

        return SpaceMouse(self)
