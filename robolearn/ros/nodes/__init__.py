"""robolearn's ROS 2 nodes. Topic names live in ``robolearn.ros.nodes.topics``; ``robolearn.cli.node_host``
builds a node by name. ``NODES`` says what each one does and which ``--param`` it takes (``robolearn node
--help`` prints it); docs/ros.md has the topics per node."""

NODES = {
    "twin": "the cell's MuJoCo twin behind the arm and camera topics (SafetyFilter, watchdog, object state). "
    "Params: task=pick_cube, episodes=0, teleop=expert (host the scripted expert and drive `episodes`, attempt i "
    "seeded seed+i; a device name such as keyboard: follow a teleop node's buttons), seed=0, noise_scale=0.0, "
    "only_success=false (discard and redo the expert's failed episodes), wait_for_recorder_s=30.0, "
    "compressed_quality=0 (also publish JPEG images), command_timeout_s, control_hz",
    "recorder": "writes episodes from the cell's topics into a DemoStore, each command paired with the samples of "
    "its stamp; episode control from teleop buttons, the episode topic, or (start_on_motion) the first motion. "
    "Params: store=data/demos.zarr, task, source=teleop, operator, jpeg_quality=95 (a new store), object_state "
    "(default: on a simulated cell), start_on_motion=true, tolerance_s=0 (0: one control period)",
    "arm": "the cell's hardware arm behind the SafetyFilter and a stale-command watchdog; publishes joint states, "
    "pose and every violation; on an arm fault it holds, reports it and recovers (arm.auto_recover, or "
    "std_msgs/Empty on /robolearn/arm/recover). Params: command_timeout_s, control_hz",
    "camera": "one of the cell's hardware cameras as Image (+ depth) and CameraInfo with its hardware stamps. "
    "Params: camera=<first camera>, compressed_quality=0 (also publish JPEG CompressedImage)",
    "teleop": "the cell's teleop device (keyboard, spacemouse, gamepad) as TeleopCommand and arm commands; "
    "quit ends it. No params (another device than the cell's: --set 'teleop={type: keyboard}')",
    "policy": "a checkpoint acting at the control rate; refuses stale or missing frames and says so. "
    "Params: checkpoint=DIR (required), max_clock_offset_s=0.01 (clock disagreement tolerated with the camera's machine)",
    "reward": "a reward model scoring the cameras it reads at the control rate: [reward, success_prob, success] "
    "on /robolearn/reward. Params: reward=SPEC (required: classifier:DIR, preference:DIR, clip:YAML, vlm:YAML), "
    "mark_success=false (publish EpisodeControl SUCCESS on an episode's first success)",
    "router": "a zenoh router (the pure-pip stand-in for rmw_zenohd) at --router",
}
NODE_NAMES = tuple(NODES)
