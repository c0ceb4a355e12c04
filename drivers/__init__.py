"""Hardware drivers: cameras, arms and teleop devices (one subpackage per device).

| subpackage | registered as | extra |
|---|---|---|
| ``realsense`` | ``cameras: [{type: realsense}]`` | ``realsense`` (pyrealsense2) |
| ``opencv`` | ``cameras: [{type: opencv}]`` | ``opencv`` (opencv-python-headless) |
| ``franka`` | ``arm: {type: franka}`` | ``franka`` (franky-control) |
| ``ur`` | ``arm: {type: ur}`` | ``ur`` (ur-rtde) |
| ``xarm`` | ``arm: {type: xarm}`` | ``xarm`` (xarm-python-sdk) |
| ``spacemouse`` | ``teleop: {type: spacemouse}`` | ``spacemouse`` (hidapi) |
| ``keyboard`` | ``teleop: {type: keyboard}`` | none |
| ``gamepad`` | ``teleop: {type: gamepad}`` | ``gamepad`` (pygame) |

SDKs are imported lazily inside each driver, so ``import robolearn.drivers`` never needs one, and a
missing SDK raises ``MissingSDKError`` naming the extra to install. See docs/hardware.md.
"""
