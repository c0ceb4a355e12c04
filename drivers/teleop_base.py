"""What the teleop devices share: axis mapping (deadzone, scale, signs) and episode buttons.

A device turns its raw report into normalized axes in [-1, 1] (six or more) and a set of pressed
buttons; ``AxisMapping`` picks six of them for ``x, y, z, rx, ry, rz`` of the end-effector delta, and
``ButtonLogic`` turns presses into the ``TeleopCommand`` flags: the gripper button toggles the
gripper, success / failure / reset are true on the read where their button went down, and the
intervene button (or, with ``intervene_on_motion``, any stick motion) marks the human as driving.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from robolearn.interfaces import TeleopCommand

NO_BUTTON = -1


@dataclass
class AxisMapping:
    """Raw normalized axes → the 6-D end-effector delta.

    axes: for each of x, y, z, rx, ry, rz (cell frame), the index of the raw axis driving it, or -1
    for none. signs: +1 or -1 per output. scale: gain per output after the deadzone (the result is
    clipped to [-1, 1]). deadzone: raw magnitudes below it read as 0; above it the range is
    rescaled so output starts at 0 and still reaches 1.
    """

    axes: tuple[int, int, int, int, int, int] = (0, 1, 2, 3, 4, 5)
    signs: tuple[float, float, float, float, float, float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    scale: tuple[float, float, float, float, float, float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    deadzone: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.deadzone < 1.0:
            raise ValueError(f"deadzone must be in [0, 1), got {self.deadzone}")
        if any(s not in (-1.0, 1.0) for s in self.signs):
            raise ValueError(f"signs must be +1 or -1, got {self.signs}")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """``raw`` ``(N,)`` in [-1, 1] → ``(6,) float64`` end-effector delta in [-1, 1]."""
        raw = np.asarray(raw, dtype=np.float64)
        picked = np.array([raw[i] if 0 <= i < len(raw) else 0.0 for i in self.axes])
        magnitude = np.clip((np.abs(picked) - self.deadzone) / (1.0 - self.deadzone), 0.0, 1.0)
        return np.clip(np.sign(picked) * magnitude * np.asarray(self.signs) * np.asarray(self.scale), -1.0, 1.0)


@dataclass
class ButtonMap:
    """Which device button does what (index into the device's buttons; -1: unassigned)."""

    gripper: int = 0
    intervene: int = NO_BUTTON
    success: int = 1
    failure: int = NO_BUTTON
    reset: int = NO_BUTTON
    quit: int = NO_BUTTON


class ButtonLogic:
    """Edge detection and the gripper toggle, from the set of buttons held at each read."""

    def __init__(self, buttons: ButtonMap, intervene_on_motion: bool = True):
        self.buttons = buttons
        self.intervene_on_motion = intervene_on_motion
        self.gripper_closed = 0.0
        self._held: frozenset[int] = frozenset()

    def command(self, ee_delta: np.ndarray, held: Iterable[int], pressed: Iterable[int] = ()) -> TeleopCommand:
        """The command for this read. held: buttons down now; pressed: extra presses seen since the
        last read that were already released (short taps between two reads)."""
        held = frozenset(held)
        went_down = (held - self._held) | frozenset(pressed)
        self._held = held
        b = self.buttons
        if b.gripper in went_down:
            self.gripper_closed = 1.0 - self.gripper_closed
        moving = bool(np.any(ee_delta != 0.0))
        return TeleopCommand(
            ee_delta=np.asarray(ee_delta, dtype=np.float64),
            gripper_closed=self.gripper_closed,
            intervene=(b.intervene in held) or (self.intervene_on_motion and moving),
            success=b.success in went_down,
            failure=b.failure in went_down,
            reset=b.reset in went_down,
            quit=b.quit in went_down,
        )
