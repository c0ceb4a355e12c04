"""Intel RealSense D400/D500 cameras through ``pyrealsense2`` (extra ``realsense``)."""
