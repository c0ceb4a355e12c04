"""robolearn: a real-robot learning stack (ARCHITECTURE.md)."""

import os

__version__ = "0.1.0"

# The twin's cameras render headless (EGL) unless the user chose a GL backend (MUJOCO_GL=osmesa or
# glfw) before robolearn loads MuJoCo: MuJoCo reads it once, at import.
os.environ.setdefault("MUJOCO_GL", "egl")
