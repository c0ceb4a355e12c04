"""robolearn's ROS 2 nodes. Topic names live in ``robolearn.ros.nodes.topics``; ``runner`` builds a
node by name. ``NODES`` says what each one does and which ``--param`` it takes (``robolearn node
--help`` prints it); docs/ros.md has the topics per node."""

NODES = {
    "twin": "the cell's MuJoCo twin behind the arm and camera topics (SafetyFilter, watchdog, object state). "
    "Params: task=pick_cube, episodes=0, teleop=expert (host the scripted expert and drive `episodes`; a device "
    "name such as keyboard: follow a teleop node's buttons), seed=0, noise_scale=0.0, wait_for_recorder_s=30.0, "
    "compressed_quality=0 (also publish JPEG images), command_timeout_s, control_hz",
    "recorder": "writes episodes from the cell's topics into a DemoStore; episode control from teleop buttons or "
    "the episode topic. Params: store=data/demos.zarr, task, source=teleop, operator",
    "arm": "the cell's hardware arm behind the SafetyFilter and a stale-command watchdog; publishes joint states, "
    "pose and every violation. Params: command_timeout_s, control_hz",
    "camera": "one of the cell's hardware cameras as Image (+ depth) and CameraInfo with its hardware stamps. "
    "Params: camera=<first camera>, compressed_quality=0 (also publish JPEG CompressedImage)",
    "teleop": "the cell's teleop device (keyboard, spacemouse, gamepad) as TeleopCommand and arm commands; "
    "quit ends it. No params (another device than the cell's: --set 'teleop={type: keyboard}')",
    "policy": "a checkpoint acting at the control rate; refuses stale or missing frames and says so. "
    "Params: checkpoint=DIR (required)",
    "reward": "a reward model scoring the cameras it reads at the control rate: [reward, success_prob, success] "
    "on /robolearn/reward. Params: reward=SPEC (required: classifier:DIR, preference:DIR, clip:YAML, vlm:YAML), "
    "mark_success=false (publish EpisodeControl SUCCESS on an episode's first success)",
    "router": "a zenoh router (the pure-pip stand-in for rmw_zenohd) at --router",
}
NODE_NAMES = tuple(NODES)
