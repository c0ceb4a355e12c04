"""Topic names of a robolearn cell graph (absolute, so every node agrees). docs/ros.md lists who
publishes and who subscribes each one, with its message type."""

ARM_COMMAND = "/robolearn/arm/command"
ARM_TWIST = "/robolearn/arm/twist"
ARM_JOINT_COMMAND = "/robolearn/arm/joint_command"
ARM_JOINT_APPLIED = "/robolearn/arm/joint_applied"
ARM_APPLIED = "/robolearn/arm/applied"
ARM_RECOVER = "/robolearn/arm/recover"
JOINT_STATES = "/robolearn/arm/joint_states"
EE_POSE = "/robolearn/arm/ee_pose"
VIOLATIONS = "/robolearn/arm/violations"
TELEOP = "/robolearn/teleop"
EPISODE_CONTROL = "/robolearn/episode"
OBJECT_STATE = "/robolearn/twin/object_state"
"""``robolearn_msgs/ObjectState``: the twin's privileged object state, stamped like the arm state."""
REWARD = "/robolearn/reward"
TF = "/tf"
"""``tf2_msgs/TFMessage``: the arm node's ``world`` → ``tcp`` transform each tick (rviz, tf2)."""


def camera_image(name: str) -> str:
    return f"/robolearn/camera/{name}/image"


def camera_compressed(name: str) -> str:
    """JPEG stream of ``camera_image(name)``, named as ROS 2's image_transport names it."""
    return f"{camera_image(name)}/compressed"


def camera_depth(name: str) -> str:
    return f"/robolearn/camera/{name}/depth"


def camera_info(name: str) -> str:
    return f"/robolearn/camera/{name}/camera_info"
