"""The digital twin: cell → MJCF builder, robot models, SimArm, SimCamera, tasks, scripted experts."""

from robolearn.sim.twin import Twin

__all__ = ["Twin"]
