"""``robolearn sim run --view``: a MuJoCo viewer window on the twin."""

from __future__ import annotations

import os
import sys
from typing import Any

from robolearn.errors import RobolearnError


def open_viewer(env: Any) -> Any:
    """A passive MuJoCo viewer window on the twin of ``env`` (``mujoco.viewer.launch_passive``); call
    its ``sync()`` after every step. Raises RobolearnError when there is no display to show it on."""
    twin = getattr(env.unwrapped, "twin", None)
    if twin is None:
        raise RobolearnError("--view shows the MuJoCo twin, and this env has none")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RobolearnError("--view needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set: run it in a "
                             "desktop session or over `ssh -X`, or leave out --view and write --video OUT.mp4 instead")
    try:
        import mujoco.viewer

        return mujoco.viewer.launch_passive(twin.model, twin.data, show_left_ui=False, show_right_ui=False)
    except Exception as err:  # GLFW, or macOS without mjpython: the message says which
        raise RobolearnError(f"--view could not open the MuJoCo viewer ({err}); leave out --view and write "
                             "--video OUT.mp4 instead") from err
