"""ROS 2 launch (``ros2 launch launch/twin_collect.launch.py episodes:=5 store:=data/demos.zarr``):
the same graph as ``twin_collect.yaml`` on a ROS 2 install with RMW_IMPLEMENTATION=rmw_zenoh_cpp
(start ``ros2 run rmw_zenoh_cpp rmw_zenohd`` first), run from the repository root. Each node is
``robolearn node NAME``. With ``teleop:=keyboard`` the teleop node opens in its own terminal
(``teleop_prefix``, default ``xterm -e``: ros2 launch gives its processes no keyboard); for a
SpaceMouse or gamepad pass ``teleop_prefix:=''``."""

from launch.actions import DeclareLaunchArgument, ExecuteProcess, RegisterEventHandler, Shutdown
from launch.conditions import UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PythonExpression

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    args = {"cell": "configs/cells/sim_panda.yaml", "task": "pick_cube", "episodes": "3",
            "store": "data/twin_demos.zarr", "seed": "0", "teleop": "expert", "only_success": "false", "quality": "95",
            "teleop_prefix": "xterm -e"}
    value = {name: LaunchConfiguration(name) for name in args}
    source = PythonExpression(["'expert' if '", value["teleop"], "' == 'expert' else 'teleop'"])
    recorder = ExecuteProcess(
        cmd=["robolearn", "node", "recorder", "--cell", value["cell"], "--param", ["store=", value["store"]],
             "--param", ["task=", value["task"]], "--param", ["source=", source],
             "--param", ["jpeg_quality=", value["quality"]]],
        respawn=True, output="screen")
    twin = ExecuteProcess(
        cmd=["robolearn", "node", "twin", "--cell", value["cell"], "--param", ["task=", value["task"]],
             "--param", ["episodes=", value["episodes"]], "--param", ["seed=", value["seed"]],
             "--param", ["teleop=", value["teleop"]], "--param", ["only_success=", value["only_success"]]],
        output="screen")
    teleop = ExecuteProcess(
        cmd=["robolearn", "node", "teleop", "--cell", value["cell"], "--set", ["teleop={type: ", value["teleop"], "}"]],
        prefix=value["teleop_prefix"], output="screen",
        condition=UnlessCondition(EqualsSubstitution(value["teleop"], "expert")))
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default) for name, default in args.items()),
        recorder,
        twin,
        teleop,
        RegisterEventHandler(OnProcessExit(target_action=twin, on_exit=[Shutdown(reason="twin finished")])),
        RegisterEventHandler(OnProcessExit(target_action=teleop, on_exit=[Shutdown(reason="teleop quit")])),
    ])
