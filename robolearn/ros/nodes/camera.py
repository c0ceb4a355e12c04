"""The camera node: any ``Camera`` → ``sensor_msgs/Image`` (rgb8, and 32FC1 depth in metres) plus
``CameraInfo``, stamped with the frame's own (hardware) capture stamp as ROS system time
(``robolearn.ros.clock``); optionally also a JPEG ``sensor_msgs/CompressedImage`` (for links where
27 MB/s of raw 640×480 RGB at 30 Hz is too much)."""

from __future__ import annotations

from robolearn.errors import UsageError
from robolearn.interfaces import Camera, Frame
from robolearn.ros import messages
from robolearn.ros.clock import ros_stamp_ns
from robolearn.ros.node import Node
from robolearn.ros.nodes import topics


class CameraPublisher:
    """Publishes one camera's frames; ``publish(frame)`` or, standalone, a timer at the camera's fps.

    depth: publish the depth stream. compressed_quality: also publish JPEG at this quality (1..100);
    0: raw only.
    """

    def __init__(self, node: Node, camera: Camera, depth: bool, compressed_quality: int = 0):
        if not 0 <= compressed_quality <= 100:
            raise UsageError(f"compressed_quality must be in 0..100 (0: raw only), got {compressed_quality}")
        self.camera, self.frame_id = camera, f"{camera.name}_optical_frame"
        self.compressed_quality = compressed_quality
        self.image_pub = node.create_publisher(messages.IMAGE, topics.camera_image(camera.name), depth=2)
        self.depth_pub = node.create_publisher(messages.IMAGE, topics.camera_depth(camera.name), depth=2) if depth else None
        self.compressed_pub = (node.create_publisher(messages.COMPRESSED_IMAGE, topics.camera_compressed(camera.name), depth=2)
                               if compressed_quality else None)
        self.info_pub = node.create_publisher(messages.CAMERA_INFO, topics.camera_info(camera.name), depth=2)

    def publish(self, frame: Frame, stamp_ns: int | None = None) -> None:
        """Publish ``frame``. stamp_ns: its ROS stamp (system time); default: the frame's monotonic
        capture stamp converted (the twin passes its control tick's stamp instead of its sim time)."""
        stamp = ros_stamp_ns(frame.stamp_ns) if stamp_ns is None else stamp_ns
        color, depth = messages.frame_cdrs(frame, self.frame_id, stamp)
        self.image_pub.publish_cdr(color)
        if self.depth_pub is not None and depth is not None:
            self.depth_pub.publish_cdr(depth)
        if self.compressed_pub is not None:
            self.compressed_pub.publish(messages.compressed_image_msg(frame.color, stamp, self.frame_id,
                                                                      self.compressed_quality))
        self.info_pub.publish(messages.camera_info_msg(self.camera.intrinsics, stamp, self.frame_id))

    def spin_at(self, node: Node, fps: float) -> None:
        """Standalone camera node: read and publish at ``fps``."""
        node.create_timer(1.0 / fps, lambda: self.publish(self.camera.read()))
