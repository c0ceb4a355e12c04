"""Write robolearn's message types as a ROS 2 interface package, ``robolearn_msgs``.

ROS 2 tools (``ros2 topic echo``, rclpy, C++ nodes) know a message type only from its built
interface package. This writes one from ``robolearn/ros/msg/*.msg`` (ament_cmake + rosidl, the same
``.msg`` files whose RIHS01 hashes robolearn puts on the wire), to build in a ROS 2 workspace::

    python -m robolearn.ros.msg_package ~/ros2_ws/src
    cd ~/ros2_ws && colcon build --packages-select robolearn_msgs && source install/setup.bash

After that ``ros2 topic echo /robolearn/teleop`` decodes robolearn's types and the ``rclpy`` backend
can run robolearn nodes (``robolearn node NAME --backend rclpy``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from robolearn.ros.messages import MSG_DIR, PACKAGE

PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>{package}</name>
  <version>{version}</version>
  <description>robolearn's message types: teleop commands, episode control, end-effector deltas, safety violations.</description>
  <maintainer email="robolearn@example.org">robolearn</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
"""

CMAKE_LISTS = """cmake_minimum_required(VERSION 3.8)
project({package})
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(${{PROJECT_NAME}}
{files}
  DEPENDENCIES std_msgs
)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""


def write_msg_package(parent: str | Path) -> Path:
    """Write ``<parent>/robolearn_msgs`` (package.xml, CMakeLists.txt, msg/*.msg); returns its path."""
    from importlib.metadata import version

    root = Path(parent) / PACKAGE
    (root / "msg").mkdir(parents=True, exist_ok=True)
    names = sorted(path.name for path in MSG_DIR.glob("*.msg"))
    for name in names:
        shutil.copyfile(MSG_DIR / name, root / "msg" / name)
    (root / "package.xml").write_text(PACKAGE_XML.format(package=PACKAGE, version=version("robolearn")))
    files = "\n".join(f'  "msg/{name}"' for name in names)
    (root / "CMakeLists.txt").write_text(CMAKE_LISTS.format(package=PACKAGE, files=files))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parent", help="where to write the robolearn_msgs package (a ROS 2 workspace's src/)")
    print(write_msg_package(parser.parse_args().parent))


if __name__ == "__main__":
    main()
