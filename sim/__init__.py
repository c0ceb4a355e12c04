"""The digital twin: cell → MJCF builder, robot models, SimArm, SimCamera, tasks, scripted experts."""
