"""The digital twin: cell → MJCF builder, SimArm, SimCamera, tasks, scripted experts; every task is a
gymnasium env (``gym.make("robolearn/PickCube-v0")``, ``robolearn.sim.registration``)."""

from robolearn.sim.registration import register_envs
from robolearn.sim.twin import Twin

register_envs()

__all__ = ["Twin"]
