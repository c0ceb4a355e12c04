"""Maps `drivers/`, `sim/`, `configs/` and `launch/` into the `robolearn` package (ARCHITECTURE.md)
and ships the data files the code reads: the cell, task and algorithm YAMLs (`robolearn/configs`) and
the launch files (`robolearn/launch`), both found by `robolearn.config.resolve_config_path`, and the
ROS 2 message definitions (`robolearn/ros/msg`)."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

PACKAGE_ROOTS = {"robolearn": "robolearn", "robolearn.drivers": "drivers", "robolearn.sim": "sim",
                 "robolearn.configs": "configs", "robolearn.launch": "launch"}
PACKAGE_DATA = {"robolearn.ros": ["msg/*.msg"], "robolearn.configs": ["*.yaml"], "robolearn.launch": ["*.yaml", "*.py"],
                **{f"robolearn.configs.{d.name}": ["*.yaml"] for d in Path("configs").iterdir() if d.is_dir()}}


def _packages() -> list[str]:
    found = []
    for package, folder in PACKAGE_ROOTS.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"])]
    return found


setup(packages=_packages(), package_data=PACKAGE_DATA)
