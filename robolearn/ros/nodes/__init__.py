"""robolearn's ROS 2 nodes. Topic names live in ``robolearn.ros.nodes.topics``; ``runner`` builds a
node by name."""

NODE_NAMES = ("twin", "recorder", "arm", "camera", "teleop", "policy", "router")
