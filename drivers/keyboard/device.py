"""Terminal keyboard teleop: non-blocking reads of a terminal in cbreak mode.

A terminal reports key presses, not releases: each ``read`` takes every key typed since the last
one, and a motion key seen gives a full step on its axis for that control step. Holding a key
moves continuously through the terminal's auto-repeat; tapping moves one step.

| key | action | key | action |
|---|---|---|---|
| w / ↑, s / ↓ | +x / -x | u, o | +roll / -roll |
| a / ←, d / → | +y / -y | i, k | +pitch / -pitch |
| r, f | +z / -z | j, l | +yaw / -yaw |
| space | toggle gripper | t | toggle intervention |
| Enter | success | x | failure |
| n | reset (new episode) | q | quit |
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty

import numpy as np

from robolearn.interfaces import TeleopCommand

from ..teleop_base import ButtonLogic, ButtonMap
from .config import KeyboardConfig

MOTION_KEYS = {
    "w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "r": (2, 1.0), "f": (2, -1.0),
    "u": (3, 1.0), "o": (3, -1.0), "i": (4, 1.0), "k": (4, -1.0), "j": (5, 1.0), "l": (5, -1.0),
}
ARROWS = {"A": "w", "B": "s", "D": "a", "C": "d"}
GRIPPER, SUCCESS, FAILURE, RESET, QUIT = range(5)
BUTTON_KEYS = {" ": GRIPPER, "\n": SUCCESS, "\r": SUCCESS, "x": FAILURE, "n": RESET, "q": QUIT}


def parse_keys(text: str) -> list[str]:
    """Split terminal input into keys, turning arrow escape sequences into their letter keys."""
    keys, i = [], 0
    while i < len(text):
        if text.startswith("\x1b[", i) and i + 2 < len(text) and text[i + 2] in ARROWS:
            keys.append(ARROWS[text[i + 2]])
            i += 3
        else:
            keys.append(text[i].lower())
            i += 1
    return keys


class Keyboard:
    """Implements ``robolearn.interfaces.Teleop`` from a terminal."""

    def __init__(self, config: KeyboardConfig, fd: int | None = None):
        self.config = config
        self.fd = fd
        self._owns_fd = False
        self._saved_tty: list | None = None
        self.intervening = False
        self.logic = ButtonLogic(ButtonMap(gripper=GRIPPER, success=SUCCESS, failure=FAILURE, reset=RESET, quit=QUIT), False)

    def connect(self) -> None:
        """Open the terminal and switch it to cbreak mode (keys arrive unbuffered, not echoed)."""
        if self.fd is None:
            if self.config.tty:
                self.fd = os.open(self.config.tty, os.O_RDONLY | os.O_NONBLOCK)
                self._owns_fd = True
            else:
                self.fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
            if self.fd is None or not os.isatty(self.fd):
                self.disconnect()
                source = self.config.tty or "standard input"
                raise ConnectionError(f"the keyboard teleop reads key presses from a terminal, and {source} is not "
                                      "one (piped or redirected?): run the command in a terminal, or set "
                                      "teleop.tty to a terminal device such as /dev/tty")
        if os.isatty(self.fd):
            self._saved_tty = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)

    def _pending(self) -> str:
        chunks = []
        while select.select([self.fd], [], [], 0.0)[0]:
            chunk = os.read(self.fd, 1024)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="ignore")

    def read(self) -> TeleopCommand:
        if self.fd is None:
            raise ConnectionError("keyboard is not connected; call connect() first")
        delta = np.zeros(6)
        pressed = set()
        for key in parse_keys(self._pending()):
            if key in MOTION_KEYS:
                axis, sign = MOTION_KEYS[key]
                delta[axis] = sign
            elif key in BUTTON_KEYS:
                pressed.add(BUTTON_KEYS[key])
            elif key == "t":
                self.intervening = not self.intervening
        delta[:3] *= self.config.translation_scale
        delta[3:] *= self.config.rotation_scale
        command = self.logic.command(np.clip(delta, -1.0, 1.0), (), pressed)
        command.intervene = self.intervening
        return command

    def disconnect(self) -> None:
        if self.fd is not None and self._saved_tty is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None
        if self._owns_fd and self.fd is not None:
            os.close(self.fd)
        self.fd = None
