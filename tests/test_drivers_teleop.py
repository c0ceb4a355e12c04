"""Teleop mappings from raw device reports to ``TeleopCommand``."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from sdk_doubles import FakeHID

from robolearn.cell import TeleopConfig
from robolearn.config import from_dict
from robolearn.drivers.keyboard.device import Keyboard
from robolearn.drivers.spacemouse.device import SpaceMouse
from robolearn.drivers.teleop_base import AxisMapping


def test_axis_mapping_deadzone_scale_and_order():
    mapping = AxisMapping(axes=(2, 0, -1, 1, 1, 1), signs=(-1, 1, 1, 1, -1, 1), scale=(1, 0.5, 1, 2, 1, 1), deadzone=0.2)
    out = mapping.apply(np.array([0.1, 0.6, -1.0]))
    # raw[2] = -1 → full scale, negated; raw[0] = 0.1 is inside the deadzone; raw[1] = 0.6 → (0.6-0.2)/0.8 = 0.5.
    np.testing.assert_allclose(out, [1.0, 0.0, 0.0, 1.0, -0.5, 0.5])


def report(report_id: int, *values: int) -> bytes:
    return bytes([report_id]) + struct.pack(f"<{len(values)}h", *values)


def test_spacemouse_reports_to_command():
    config = from_dict(TeleopConfig, {"type": "spacemouse", "mapping": {"deadzone": 0.0}})
    hid = FakeHID([report(1, 175, -350, 35), report(2, 0, 70, -350)])
    mouse = SpaceMouse(config, sdk=hid)
    mouse.connect()
    assert hid.opened == b"/dev/hidraw3"  # the 3Dconnexion device, not the other HID device
    command = mouse.read()
    # Raw (x, y, z, rx, ry, rz) = (0.5, -1, 0.1, 0, 0.2, -1); default map: (-y, -x, -z, -ry, -rx, -rz).
    np.testing.assert_allclose(command.ee_delta, [1.0, -0.5, -0.1, -0.2, 0.0, 1.0])
    assert command.intervene and command.gripper_closed == 0.0 and not command.success

    hid.reports += [report(1, 0, 0, 0, 0, 0, 0), bytes([3, 0b01, 0]), bytes([3, 0b00, 0])]  # 12-byte report, tap
    command = mouse.read()
    np.testing.assert_allclose(command.ee_delta, np.zeros(6))
    assert command.gripper_closed == 1.0 and not command.intervene  # the tap toggled the gripper
    hid.reports += [bytes([3, 0b10, 0])]
    assert mouse.read().success
    assert not mouse.read().success  # true only on the read where it was pressed
    assert mouse.read().action()[6] == 1.0


def test_spacemouse_missing_device_message():
    config = from_dict(TeleopConfig, {"type": "spacemouse", "vendor_id": 0x9999})
    with pytest.raises(ConnectionError, match="no SpaceMouse found.*udev"):
        SpaceMouse(config, sdk=FakeHID([])).connect()


def test_keyboard_keys_to_command_through_a_pipe():
    read_fd, write_fd = os.pipe()
    keyboard = Keyboard(from_dict(TeleopConfig, {"type": "keyboard", "rotation_scale": 0.5}), fd=read_fd)
    keyboard.connect()
    try:
        os.write(write_fd, b"wwa\x1b[Bj ")  # w twice (auto-repeat), a, down arrow (−x), j, space
        command = keyboard.read()
        np.testing.assert_allclose(command.ee_delta, [-1.0, 1.0, 0.0, 0.0, 0.0, 0.5])  # last x key wins
        assert command.gripper_closed == 1.0 and not command.intervene
        np.testing.assert_allclose(keyboard.read().ee_delta, np.zeros(6))  # nothing typed: no motion
        os.write(write_fd, b"t\n")
        command = keyboard.read()
        assert command.intervene and command.success and not command.failure
        os.write(write_fd, b"xnq")
        command = keyboard.read()
        assert command.failure and command.reset and command.quit and command.intervene
    finally:
        keyboard.disconnect()
        os.close(read_fd)
        os.close(write_fd)


class FakeJoystick:
    """pygame.joystick.Joystick's surface, with settable axes and buttons."""

    def __init__(self):
        self.axes = [0.0] * 6
        self.buttons = [0] * 11

    def init(self):
        pass

    def quit(self):
        pass

    def get_instance_id(self):
        return 0

    def get_numaxes(self):
        return len(self.axes)

    def get_axis(self, i):
        return self.axes[i]

    def get_numbuttons(self):
        return len(self.buttons)

    def get_button(self, i):
        return self.buttons[i]


def test_gamepad_axes_buttons_and_event_taps(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame = pytest.importorskip("pygame", reason="pygame is needed (pip install 'robolearn[gamepad]')")
    from robolearn.drivers.gamepad.device import Gamepad

    joystick = FakeJoystick()
    pad = Gamepad(from_dict(TeleopConfig, {"type": "gamepad"}), sdk=pygame, joystick=joystick)
    pad.connect()
    try:
        joystick.axes = [0.1, -1.0, -1.0, 0.575, 0.5, -1.0]  # LX in deadzone, LY full up, RX, RY
        joystick.buttons[5] = 1  # RB held
        command = pad.read()
        # x = -LY, y = -LX (deadzone 0.15), z = -RY, yaw = -RX: (0.575 - 0.15) / 0.85 = 0.5.
        np.testing.assert_allclose(command.ee_delta, [1.0, 0.0, -(0.5 - 0.15) / 0.85, 0.0, 0.0, -0.5])
        assert command.intervene
        joystick.axes = [0.0] * 6
        joystick.buttons[5] = 0
        pygame.event.post(pygame.event.Event(pygame.JOYBUTTONDOWN, button=3, instance_id=0, joy=0))
        pygame.event.post(pygame.event.Event(pygame.JOYBUTTONDOWN, button=0, instance_id=0, joy=0))
        command = pad.read()  # Y and A were tapped between reads
        assert command.success and command.gripper_closed == 1.0 and not command.intervene
        assert not pad.read().success
    finally:
        pad.disconnect()
        pygame.quit()


def test_gamepad_read_empties_the_event_queue_and_notices_unplugging(monkeypatch):
    """Axis and hat motion events (hundreds per second on a real pad) do not pile up in SDL's
    queue, where they would crowd out button presses; an unplugged pad is a clear error."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame = pytest.importorskip("pygame", reason="pygame is needed (pip install 'robolearn[gamepad]')")
    from robolearn.drivers.gamepad.device import Gamepad

    pad = Gamepad(from_dict(TeleopConfig, {"type": "gamepad"}), sdk=pygame, joystick=FakeJoystick())
    pad.connect()
    try:
        for i in range(500):
            pygame.event.post(pygame.event.Event(pygame.JOYAXISMOTION, axis=i % 6, value=0.5, instance_id=0, joy=0))
            pygame.event.post(pygame.event.Event(pygame.JOYHATMOTION, hat=0, value=(1, 0), instance_id=0, joy=0))
        pygame.event.post(pygame.event.Event(pygame.JOYBUTTONDOWN, button=3, instance_id=0, joy=0))
        pygame.event.post(pygame.event.Event(pygame.JOYBUTTONUP, button=3, instance_id=0, joy=0))
        assert pad.read().success
        assert not pygame.event.peek()  # nothing left behind
        pygame.event.post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=0))
        with pytest.raises(ConnectionError, match="unplugged"):
            pad.read()
    finally:
        pad.disconnect()
        pygame.quit()


@pytest.mark.hardware
def test_real_spacemouse_reads():
    hid = pytest.importorskip("hid")
    if not any(d["vendor_id"] in (0x256F, 0x046D) for d in hid.enumerate()):
        pytest.skip("no SpaceMouse connected")
    mouse = SpaceMouse(from_dict(TeleopConfig, {"type": "spacemouse"}))
    mouse.connect()
    try:
        assert mouse.read().ee_delta.shape == (6,)
    finally:
        mouse.disconnect()


def test_keyboard_drives_the_twin():
    from robolearn.env import make_env

    env = make_env("configs/cells/sim_panda.yaml", task="reach", seed=0, cameras=False)
    read_fd, write_fd = os.pipe()
    keyboard = Keyboard(from_dict(TeleopConfig, {"type": "keyboard"}), fd=read_fd)
    keyboard.connect()
    try:
        obs, _ = env.reset(seed=0)
        start = obs["state"][7:10].copy()
        for _ in range(6):
            os.write(write_fd, b"s")  # -x
            obs, *_ = env.step(keyboard.read().action())
        moved = obs["state"][7:10] - start
        assert moved[0] < -0.05 and abs(moved[1]) < 0.01 and abs(moved[2]) < 0.01
    finally:
        keyboard.disconnect()
        os.close(read_fd)
        os.close(write_fd)
        env.close()


@pytest.mark.hardware
def test_real_gamepad_reads(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame = pytest.importorskip("pygame")
    from robolearn.drivers.gamepad.device import Gamepad

    pygame.joystick.init()
    if pygame.joystick.get_count() == 0:
        pytest.skip("no gamepad connected")
    pad = Gamepad(from_dict(TeleopConfig, {"type": "gamepad"}))
    pad.connect()
    try:
        assert pad.read().ee_delta.shape == (6,)
    finally:
        pad.disconnect()
