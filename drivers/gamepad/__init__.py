"""Gamepads (Xbox, PlayStation, generic) through ``pygame`` / SDL2 (extra ``gamepad``)."""
