"""The devices of a cell for deployment, mirroring and real trials: its arm, cameras and teleop,
created from the cell config. A cell whose devices are simulated (``type: sim``, ``expert``) gets
a ``Twin`` that stands in for the hardware; time on it passes only through ``tick``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robolearn.cell import CellConfig
from robolearn.config import ConfigError
from robolearn.interfaces import (
    AppliedCommand,
    Arm,
    ArmState,
    Camera,
    EEDeltaCommand,
    JointCommand,
    Teleop,
    now_ns,
)


@dataclass
class CellDevices:
    """A connected cell. ``twin`` is set when the devices are simulated; ``clock_ns`` reads the clock
    the devices stamp with (the twin's, or the host's monotonic clock); ``tick(dt_s)`` lets a control
    period pass (twin physics, or a real-time sleep)."""

    cell: CellConfig
    arm: Arm
    cameras: dict[str, Camera]
    teleop: Teleop | None
    twin: Any = None
    tick: Callable[[float], None] | None = None

    def clock_ns(self) -> int:
        return self.twin.time_ns if self.twin is not None else now_ns()

    def close(self) -> None:
        if self.teleop is not None:
            self.teleop.disconnect()
        for camera in self.cameras.values():
            camera.disconnect()
        self.arm.disconnect()


def open_cell(cell: CellConfig, task: str | None = None, teleop: bool = True) -> CellDevices:
    """Create and connect the cell's devices. ``task`` gives a simulated cell's twin its task (the
    scripted-expert teleop and scene resets need it)."""
    from robolearn.env import RealTimeTick

    if teleop and cell.teleop is None:
        raise ConfigError(cell.name, "teleop", "the cell has no teleop device; live mode needs one as the stop and "
                          "takeover button (add `teleop: {type: spacemouse}` or another type to the cell)")
    simulated = cell.arm is not None and cell.arm.type == "sim"
    twin = None
    if simulated:
        from robolearn.sim import Twin

        twin = Twin(cell)
        if task is not None:
            from robolearn.sim.tasks import load_task_config, make_task

            twin.task = make_task(load_task_config(task), twin)
    arm = cell.arm.create(cell, twin)
    arm.connect()
    cameras = {c.name: c.create(cell, twin) for c in cell.cameras}
    for camera in cameras.values():
        camera.connect()
    device = None
    if teleop:
        device = cell.teleop.create(cell, twin)
        device.connect()
    tick = twin.advance if twin is not None else RealTimeTick(cell.control_hz)
    return CellDevices(cell, arm, cameras, device, twin, tick)


class ReadOnlyArm:
    """An arm that can be read but not moved: shadow mode holds the real arm only through this, so
    no code path can command it."""

    def __init__(self, arm: Arm):
        self._arm = arm
        self.name = f"read-only {arm.name}"

    def state(self) -> ArmState:
        return self._arm.state()

    def command(self, command: EEDeltaCommand) -> AppliedCommand:
        raise PermissionError("shadow mode never commands the real arm")

    def command_joints(self, command: JointCommand) -> AppliedCommand:
        raise PermissionError("shadow mode never commands the real arm")

    def stop(self) -> None:
        raise PermissionError("shadow mode never commands the real arm")
