"""The demonstration store: episodes in zarr (diffusion_policy / UMI layout), recording, training
datasets, and converters to and from LeRobotDataset v3 and rosbag2 MCAP.

``DemoStore`` is the entry point; see ``robolearn.store.store`` for the layout and commit protocol,
and ``robolearn.store.lock`` for the one-writer-at-a-time lock.
"""

from robolearn.store.episode_recorder import EpisodeRecorder
from robolearn.store.lock import StoreLockedError
from robolearn.store.store import SCHEMA_VERSION, SOURCES, DemoStore
from robolearn.store.writer import EpisodeWriter

__all__ = ["SCHEMA_VERSION", "SOURCES", "DemoStore", "EpisodeRecorder", "EpisodeWriter", "StoreLockedError"]
