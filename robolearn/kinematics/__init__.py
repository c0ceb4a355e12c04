"""Robot geometry shared by the drivers, the cell, the SafetyFilter, the nodes and the twin: built-in
arm models from published kinematics (Franka Panda / FR3, UR5e, xArm7), forward kinematics and
rotation conversions. Numpy only: nothing here needs the simulator."""

from robolearn.kinematics.serial_arm import GripperSpec, JointSpec, SerialArmModel, robot_models

__all__ = ["GripperSpec", "JointSpec", "SerialArmModel", "robot_models"]
