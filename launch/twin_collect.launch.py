"""ROS 2 launch (``ros2 launch launch/twin_collect.launch.py episodes:=5 store:=data/demos.zarr``):
the same graph as ``twin_collect.yaml`` on a ROS 2 install with RMW_IMPLEMENTATION=rmw_zenoh_cpp
(start ``ros2 run rmw_zenoh_cpp rmw_zenohd`` first). Each node is ``robolearn node NAME``."""

from launch.actions import DeclareLaunchArgument, ExecuteProcess, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    args = {"cell": "configs/cells/sim_panda.yaml", "task": "pick_cube", "episodes": "3",
            "store": "data/twin_demos.zarr", "seed": "0"}
    value = {name: LaunchConfiguration(name) for name in args}
    recorder = ExecuteProcess(
        cmd=["robolearn", "node", "recorder", "--cell", value["cell"], "--param", ["store=", value["store"]],
             "--param", ["task=", value["task"]], "--param", "source=expert"],
        respawn=True, output="screen")
    twin = ExecuteProcess(
        cmd=["robolearn", "node", "twin", "--cell", value["cell"], "--param", ["task=", value["task"]],
             "--param", ["episodes=", value["episodes"]], "--param", ["seed=", value["seed"]]],
        output="screen")
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default) for name, default in args.items()),
        recorder,
        twin,
        RegisterEventHandler(OnProcessExit(target_action=twin, on_exit=[Shutdown(reason="twin finished")])),
    ])
