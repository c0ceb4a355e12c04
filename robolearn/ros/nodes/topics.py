"""Topic names of a robolearn cell graph (absolute, so every node agrees)."""

ARM_COMMAND = "/robolearn/arm/command"
ARM_APPLIED = "/robolearn/arm/applied"
JOINT_STATES = "/robolearn/arm/joint_states"
EE_POSE = "/robolearn/arm/ee_pose"
VIOLATIONS = "/robolearn/arm/violations"
TELEOP = "/robolearn/teleop"
EPISODE_CONTROL = "/robolearn/episode"
OBJECT_STATE = "/robolearn/twin/object_state"


def camera_image(name: str) -> str:
    return f"/robolearn/camera/{name}/image"


def camera_depth(name: str) -> str:
    return f"/robolearn/camera/{name}/depth"


def camera_info(name: str) -> str:
    return f"/robolearn/camera/{name}/camera_info"
