"""Maps `drivers/` and `sim/` into the `robolearn` package (DESIGN.md, "Layout")."""

from setuptools import find_namespace_packages, setup

PACKAGE_ROOTS = {"robolearn": "robolearn", "robolearn.drivers": "drivers", "robolearn.sim": "sim"}


def _packages() -> list[str]:
    found = []
    for package, folder in PACKAGE_ROOTS.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"])]
    return found


setup(packages=_packages())
