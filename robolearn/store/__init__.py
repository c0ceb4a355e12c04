"""The demonstration store: episodes in zarr (diffusion_policy / UMI layout), recording, training
datasets, and converters to and from LeRobotDataset v3 and rosbag2 MCAP.

``DemoStore`` is the entry point; see ``robolearn.store.store`` for the layout and commit protocol.
"""

from robolearn.store.recorder import EpisodeRecorder
from robolearn.store.store import SCHEMA_VERSION, SOURCES, DemoStore
from robolearn.store.writer import EpisodeWriter

__all__ = ["SCHEMA_VERSION", "SOURCES", "DemoStore", "EpisodeRecorder", "EpisodeWriter"]
