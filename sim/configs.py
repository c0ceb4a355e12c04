"""Registers the twin's arm, camera and teleop config types (``type: sim``, ``type: expert``)."""
