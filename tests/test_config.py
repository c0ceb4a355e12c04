"""The typed config loader: overrides, and errors that name the file, the key and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from robolearn.cell import CellConfig, SafetyConfig, load_cell
from robolearn.config import ConfigError, apply_overrides, from_dict, to_dict


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cell.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    path = _write(tmp_path, "arm: {type: sim}\nsafety: {max_stp_m: 0.1}\n")
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    message = str(err.value)
    assert str(path) in message and "safety.max_stp_m" in message and "max_step_m" in message


def test_wrong_type_names_key_and_expected(tmp_path):
    path = _write(tmp_path, "arm: {type: sim}\ncontrol_hz: fast\n")
    with pytest.raises(ConfigError, match=r"control_hz: expected a number, got 'fast'"):
        load_cell(path)


def test_unknown_type_name_lists_registered(tmp_path):
    path = _write(tmp_path, "arm: {type: frnaka}\n")
    with pytest.raises(ConfigError, match=r"arm\.type: unknown arm type 'frnaka'; registered: .*sim"):
        load_cell(path)


def test_missing_arm_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="arm: missing"):
        load_cell(_write(tmp_path, "name: x\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cell(_write(tmp_path, "arm: [unclosed\n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_cell(tmp_path / "absent.yaml")


def test_value_checks_in_post_init_are_reported_with_key(tmp_path):
    path = _write(tmp_path, "arm: {type: sim}\nsafety: {workspace_min_m: [1, 0, 0], workspace_max_m: [0, 1, 1]}\n")
    with pytest.raises(ConfigError, match=r"safety: workspace_min_m"):
        load_cell(path)


def test_overrides_apply_before_typing(tmp_path):
    path = _write(tmp_path, "arm: {type: sim}\ncontrol_hz: 10\n")
    cell = load_cell(path, ["control_hz=20", "safety.max_step_m=0.01"])
    assert cell.control_hz == 20.0 and cell.safety.max_step_m == 0.01
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["control_hz"])


def test_bad_list_index_in_an_override_names_the_key_and_the_valid_indices():
    cell = "configs/cells/sim_panda.yaml"  # two cameras
    with pytest.raises(ConfigError, match=r"--set: cameras.9: index 9 is out of range: cameras has 2 entries; "
                                          r"valid indices: 0..1"):
        load_cell(cell, ["cameras.9.width_px=3"])
    with pytest.raises(ConfigError, match=r"--set: cameras.front: cameras is a list: use an index, not 'front'; "
                                          r"valid indices: 0..1"):
        load_cell(cell, ["cameras.front.width_px=3"])
    with pytest.raises(ConfigError, match=r"--set: cameras.-1: index -1 is out of range"):
        load_cell(cell, ["cameras.-1=null"])
    with pytest.raises(ConfigError, match=r"--set: lights.0: index 0 is out of range: lights has 0 entries; the list "
                                          r"is empty; set the whole list instead"):
        load_cell(cell, ["lights=[]", "lights.0.directional=true"])
    assert load_cell(cell, ["cameras.1.width_px=64"]).cameras[1].width_px == 64


def test_camera_pinhole_intrinsics_are_all_or_nothing():
    cell = "configs/cells/sim_panda.yaml"
    with pytest.raises(ConfigError, match=r"cameras.0: camera 'front': set all of fx_px, fy_px, cx_px, cy_px or none "
                                          r"of them \(missing cx_px, cy_px\)"):
        load_cell(cell, ["cameras.0.fx_px=100", "cameras.0.fy_px=100"])
    with pytest.raises(ConfigError, match="focal lengths fx_px, fy_px must be positive"):
        load_cell(cell, ["cameras.0.fx_px=0", "cameras.0.fy_px=100", "cameras.0.cx_px=60", "cameras.0.cy_px=60"])


def test_round_trip_to_dict():
    config = from_dict(SafetyConfig, {"max_step_m": 0.02})
    assert from_dict(SafetyConfig, to_dict(config)) == config
    cell = from_dict(CellConfig, {"arm": {"type": "sim"}})
    assert to_dict(cell)["arm"]["type"] == "sim"


def test_shipped_configs_load_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_cell("configs/cells/sim_panda.yaml").name == "sim_panda"
    with pytest.raises(ConfigError, match="configs/cells/absent.yaml: no such file"):
        load_cell("configs/cells/absent.yaml")


def test_a_wheel_ships_the_configs_and_message_files(tmp_path):
    """A normal (non-editable) install has the shipped cells, tasks, algorithms, launch files and ROS
    messages, and finds ``configs/...`` and ``launch/...`` from any directory."""
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    source = tmp_path / "src"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if (repo / name).is_file() and not name.startswith(("tests/", "bench/", "docs/")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("robolearn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in [*(repo / "configs").rglob("*.yaml"), *(repo / "launch").glob("*.yaml")]:
        assert f"robolearn/{shipped.relative_to(repo)}" in names, shipped
    for message in (repo / "robolearn" / "ros" / "msg").glob("*.msg"):
        assert str(message.relative_to(repo)) in names, message
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True)
    probe = ("import robolearn, robolearn.config as c; from robolearn.cell import load_cell; "
             "print(robolearn.__file__); print(c.resolve_config_path('configs/algos/bc.yaml')); "
             "print(load_cell('configs/cells/sim_panda.yaml').name); from robolearn.ros.launch import load_launch; "
             "print(load_launch('launch/twin_collect.yaml', ['episodes=3']).args['episodes'])")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}).stdout.splitlines()
    site = tmp_path / "site" / "robolearn"
    assert out == [str(site / "__init__.py"), str(site / "configs" / "algos" / "bc.yaml"), "sim_panda", "3"]


def test_cells_load_in_several_threads_at_once():
    """The choice registries load their modules on first use; threads doing that at once all see every
    choice (a live viewer thread and the main thread both loading a cell)."""
    import subprocess
    import sys

    code = ("import threading\n"
            "from robolearn.cell import load_cell\n"
            "errors = []\n"
            "def load():\n"
            "    try:\n"
            "        load_cell('configs/cells/sim_panda.yaml')\n"
            "    except Exception as err:\n"
            "        errors.append(repr(err))\n"
            "threads = [threading.Thread(target=load) for _ in range(8)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print(errors)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_set_values_in_exponent_notation_are_numbers():
    """YAML 1.1 reads ``1e-3`` as a string; on a command line it is a number."""
    from robolearn.config import parse_override

    assert parse_override("lr=1e-3") == (["lr"], 0.001)
    assert parse_override("name=1e3x")[1] == "1e3x" and parse_override("flag=true")[1] is True
