"""Terminal keyboard teleop (no extra: standard library only)."""
