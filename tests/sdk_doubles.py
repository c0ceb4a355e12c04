"""Test doubles at hardware SDK boundaries, shared by the driver and node tests."""

from __future__ import annotations


class FakeHID:
    """hidapi's module surface: ``enumerate`` (another HID device, then a SpaceMouse at
    ``/dev/hidraw3``) and ``device`` serving the raw reports the test queues in ``reports``."""

    def __init__(self, reports=()):
        self.reports: list[bytes] = list(reports)
        self.opened = None
        outer = self

        class Device:
            def open_path(self, path):
                outer.opened = path

            def set_nonblocking(self, flag):
                pass

            def read(self, size):
                return list(outer.reports.pop(0)) if outer.reports else []

            def close(self):
                pass

        self.device = Device

    def enumerate(self):
        return [
            {"vendor_id": 0x1234, "product_id": 1, "path": b"/dev/hidraw0"},
            {"vendor_id": 0x256F, "product_id": 0xC635, "path": b"/dev/hidraw3"},
        ]
