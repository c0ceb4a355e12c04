"""Gamepad driver on pygame: stick axes and buttons, with button presses taken from the event queue
so a tap between two control steps is not missed. Every read empties SDL's event queue: axis and
hat motion events arrive hundreds per second, and a queue left to fill (SDL keeps 65535 events,
then drops new ones) would lose button presses. The sticks are read as their current positions;
the pad being unplugged (``JOYDEVICEREMOVED``) raises ``ConnectionError``. The queue is
process-wide, so the gamepad wants a process of its own (the teleop node is one). Runs headless:
with no display, SDL's dummy video driver is used (``SDL_VIDEODRIVER=dummy``)."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from robolearn.interfaces import TeleopCommand

from .._sdk import require_sdk
from ..teleop_base import ButtonLogic
from .config import GamepadConfig


class Gamepad:
    """Implements ``robolearn.interfaces.Teleop`` for an SDL2 joystick."""

    def __init__(self, config: GamepadConfig, sdk: ModuleType | None = None, joystick: Any = None):
        self.config = config
        self._pygame = sdk
        self.joystick = joystick
        self.logic = ButtonLogic(config.buttons, config.intervene_on_motion)

    @property
    def pygame(self) -> ModuleType:
        if self._pygame is None:
            if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
                os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            self._pygame = require_sdk("pygame", "gamepad", "gamepad")
        return self._pygame

    def connect(self) -> None:
        pygame = self.pygame
        pygame.display.init()
        pygame.joystick.init()
        if self.joystick is None:
            count = pygame.joystick.get_count()
            if self.config.index >= count:
                raise ConnectionError(
                    f"gamepad {self.config.index} not found ({count} connected): plug it in, check it shows in "
                    "/dev/input/js*, or set teleop.index"
                )
            self.joystick = pygame.joystick.Joystick(self.config.index)
        self.joystick.init()

    def read(self) -> TeleopCommand:
        if self.joystick is None:
            raise ConnectionError("gamepad is not connected; call connect() first")
        pygame, joystick = self.pygame, self.joystick
        instance = joystick.get_instance_id()
        pressed = set()
        for event in pygame.event.get():  # all of them: see the module docstring
            if getattr(event, "instance_id", None) != instance:
                continue
            if event.type == pygame.JOYBUTTONDOWN:
                pressed.add(event.button)
            elif event.type == pygame.JOYDEVICEREMOVED:
                raise ConnectionError(f"gamepad {self.config.index} was unplugged; plug it in and restart the teleop")
        axes = [joystick.get_axis(i) for i in range(joystick.get_numaxes())]
        held = {i for i in range(joystick.get_numbuttons()) if joystick.get_button(i)}
        return self.logic.command(self.config.mapping.apply(axes), held, pressed)

    def disconnect(self) -> None:
        if self.joystick is not None:
            self.joystick.quit()
            self.joystick = None
