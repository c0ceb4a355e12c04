"""The import rules of ARCHITECTURE.md, read from the source (every ``import`` statement, top-level or
inside a function)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"robolearn": ROOT / "robolearn", "robolearn.drivers": ROOT / "drivers", "robolearn.sim": ROOT / "sim"}


def modules() -> dict[str, Path]:
    """Dotted module name → source file, for the package and its mapped folders."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(module: str, path: Path) -> set[str]:
    """Every module ``path`` imports (relative imports resolved against ``module``)."""
    tree = ast.parse(path.read_text())
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def importers_of(prefix: str, among: str) -> list[str]:
    """Modules under ``among`` that import ``prefix`` or anything below it."""
    return sorted(m for m, path in modules().items() if m.startswith(among)
                  and any(name == prefix or name.startswith(prefix + ".") for name in imports_of(m, path)))


@pytest.mark.parametrize("among", ["robolearn.drivers", "robolearn.cell", "robolearn.safety", "robolearn.ros",
                                   "robolearn.kinematics", "robolearn.interfaces", "robolearn.config"])
def test_real_cell_code_does_not_need_the_twin(among):
    assert importers_of("robolearn.sim", among) == []


def test_mujoco_is_imported_only_by_the_twin():
    outside = [m for m in importers_of("mujoco", "robolearn") if not m.startswith("robolearn.sim")]
    assert outside == []


@pytest.mark.parametrize("upper", ["robolearn.learn", "robolearn.reward", "robolearn.evaluate", "robolearn.deploy",
                                   "robolearn.loop", "robolearn.cli"])
def test_ros_imports_nothing_above_it(upper):
    assert importers_of(upper, "robolearn.ros") == []


@pytest.mark.parametrize(("lower", "upper"), [
    ("robolearn.reward", "robolearn.ros"), ("robolearn.reward", "robolearn.learn"),
    ("robolearn.learn", "robolearn.evaluate"), ("robolearn.learn", "robolearn.deploy"),
    ("robolearn.learn", "robolearn.loop"), ("robolearn.evaluate", "robolearn.deploy"),
    ("robolearn.evaluate", "robolearn.loop"), ("robolearn.store", "robolearn.learn"), ("robolearn.store", "robolearn.ros"),
    ("robolearn.sim", "robolearn.learn"), ("robolearn.drivers", "robolearn.env"),
])
def test_no_upward_import(lower, upper):
    assert importers_of(upper, lower) == []


def test_no_two_modules_share_a_base_name_across_packages():
    """Module base names repeat only for one-per-device modules (``drivers/<device>/arm.py``, ``config.py``)."""
    by_name: dict[str, list[str]] = {}
    for module, path in modules().items():
        if path.name != "__init__.py":
            by_name.setdefault(module.rpartition(".")[2], []).append(module)
    per_device = {"arm", "camera", "config", "device", "configs", "twin"}
    repeated = {name: sorted(mods) for name, mods in by_name.items() if len(mods) > 1 and name not in per_device}
    assert repeated == {}


def test_the_cli_parser_builds_without_mujoco_or_torch():
    code = ("import sys, robolearn.cli as cli; cli.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mujoco', 'torch', 'zarr', 'zenoh'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
