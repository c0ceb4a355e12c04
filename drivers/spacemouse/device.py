"""SpaceMouse driver: parses 3Dconnexion raw HID input reports.

Report layouts (little-endian int16 axes): id 1 with 6 bytes is translation x, y, z; id 1 with 12
bytes is translation then rotation (SpaceMouse Compact / Wireless / Pro on newer firmware); id 2 is
rotation rx, ry, rz; id 3 is the button bitmask. The device sends a report only when something
changes, so the last values are kept between reports.
"""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import numpy as np

from robolearn.interfaces import TeleopCommand

from .._sdk import require_sdk
from ..teleop_base import ButtonLogic
from .config import SpaceMouseConfig

VENDOR_IDS = (0x256F, 0x046D)  # 3Dconnexion, and Logitech for older 3Dconnexion devices
REPORT_BYTES = 64


class SpaceMouse:
    """Implements ``robolearn.interfaces.Teleop`` for a SpaceMouse."""

    def __init__(self, config: SpaceMouseConfig, sdk: ModuleType | None = None):
        self.config = config
        self._hid = sdk
        self.device: Any = None
        self.raw_axes = np.zeros(6)
        self._held: set[int] = set()
        self._pressed: set[int] = set()
        self.logic = ButtonLogic(config.buttons, config.intervene_on_motion)

    @property
    def hid(self) -> ModuleType:
        if self._hid is None:
            self._hid = require_sdk("hid", "spacemouse", "SpaceMouse")
        return self._hid

    def connect(self) -> None:
        config = self.config
        candidates = [
            d for d in self.hid.enumerate()
            if (d["vendor_id"] == config.vendor_id if config.vendor_id else d["vendor_id"] in VENDOR_IDS)
            and (not config.product_id or d["product_id"] == config.product_id)
        ]
        if not candidates:
            raise ConnectionError(
                "no SpaceMouse found: plug it in, install the udev rule from docs/hardware.md so your user can "
                "read /dev/hidraw*, or set teleop.vendor_id / teleop.product_id"
            )
        # Prefer the interface that reports as a multi-axis controller (usage page 1, usage 8).
        candidates.sort(key=lambda d: (d.get("usage_page"), d.get("usage")) != (1, 8))
        self.device = self.hid.device()
        self.device.open_path(candidates[0]["path"])
        self.device.set_nonblocking(1)

    def handle_report(self, report: bytes) -> None:
        """Update the axes and buttons from one raw input report (report id first)."""
        if not report:
            return
        report_id, payload = report[0], bytes(report[1:])
        scale = 1.0 / self.config.full_scale
        if report_id == 1 and len(payload) >= 12:
            self.raw_axes[:] = np.array(struct.unpack("<6h", payload[:12])) * scale
        elif report_id == 1 and len(payload) >= 6:
            self.raw_axes[:3] = np.array(struct.unpack("<3h", payload[:6])) * scale
        elif report_id == 2 and len(payload) >= 6:
            self.raw_axes[3:] = np.array(struct.unpack("<3h", payload[:6])) * scale
        elif report_id == 3:
            bits = int.from_bytes(payload, "little")
            held = {i for i in range(8 * len(payload)) if bits >> i & 1}
            self._pressed |= held - self._held
            self._held = held

    def read(self) -> TeleopCommand:
        """Drain pending reports and return the current command."""
        if self.device is None:
            raise ConnectionError("SpaceMouse is not connected; call connect() first")
        while True:
            report = self.device.read(REPORT_BYTES)
            if not report:
                break
            self.handle_report(bytes(report))
        pressed, self._pressed = self._pressed, set()
        return self.logic.command(self.config.mapping.apply(np.clip(self.raw_axes, -1.0, 1.0)), self._held, pressed)

    def disconnect(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None
