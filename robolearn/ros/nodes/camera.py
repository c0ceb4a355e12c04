"""The camera node: any ``Camera`` → ``sensor_msgs/Image`` (rgb8, and 32FC1 depth in metres) plus
``CameraInfo``, stamped with the frame's own (hardware or twin) ``stamp_ns``."""

from __future__ import annotations

from robolearn.interfaces import Camera, Frame
from robolearn.ros import messages
from robolearn.ros.node import Node
from robolearn.ros.nodes import topics


class CameraPublisher:
    """Publishes one camera's frames; ``publish(frame)`` or, standalone, a timer at the camera's fps."""

    def __init__(self, node: Node, camera: Camera, depth: bool):
        self.camera, self.frame_id = camera, f"{camera.name}_optical_frame"
        self.image_pub = node.create_publisher(messages.IMAGE, topics.camera_image(camera.name), depth=2)
        self.depth_pub = node.create_publisher(messages.IMAGE, topics.camera_depth(camera.name), depth=2) if depth else None
        self.info_pub = node.create_publisher(messages.CAMERA_INFO, topics.camera_info(camera.name), depth=2)

    def publish(self, frame: Frame) -> None:
        color, depth = messages.frame_msgs(frame, self.frame_id)
        self.image_pub.publish(color)
        if self.depth_pub is not None and depth is not None:
            self.depth_pub.publish(depth)
        self.info_pub.publish(messages.camera_info_msg(self.camera.intrinsics, frame.stamp_ns, self.frame_id))

    def spin_at(self, node: Node, fps: float) -> None:
        """Standalone camera node: read and publish at ``fps``."""
        node.create_timer(1.0 / fps, lambda: self.publish(self.camera.read()))
