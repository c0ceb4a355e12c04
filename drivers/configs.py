"""Registers every driver's config dataclass by name without importing any hardware SDK.

Imported lazily by ``robolearn.cell`` the first time an arm, camera or teleop type is looked up.
"""

from robolearn.drivers.franka import config as _franka  # noqa: F401
from robolearn.drivers.gamepad import config as _gamepad  # noqa: F401
from robolearn.drivers.keyboard import config as _keyboard  # noqa: F401
from robolearn.drivers.opencv import config as _opencv  # noqa: F401
from robolearn.drivers.realsense import config as _realsense  # noqa: F401
from robolearn.drivers.spacemouse import config as _spacemouse  # noqa: F401
from robolearn.drivers.ur import config as _ur  # noqa: F401
from robolearn.drivers.xarm import config as _xarm  # noqa: F401
