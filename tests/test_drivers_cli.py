"""``robolearn find-cameras``: whatever is connected (nothing on CI), exit 0, one JSON line; and a missing
SDK named with its pip extra by every driver."""

from __future__ import annotations

import json
import re
import sys

import pytest

from robolearn.cell import load_cell
from robolearn.cli import main
from robolearn.cli.find_cameras_cmd import find_cameras
from robolearn.drivers._sdk import MissingSDKError


def test_find_cameras_json_lists_what_is_connected(capsys):
    assert main(["find-cameras", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cameras, _notes = find_cameras()
    assert result == {"cameras": cameras, "count": len(cameras)}
    for camera in result["cameras"]:
        assert camera["type"] in ("realsense", "opencv") and camera["serial"] and camera["modes"]


def test_find_cameras_text_output(capsys):
    assert main(["find-cameras"]) == 0
    out = capsys.readouterr().out
    cameras, _notes = find_cameras()
    assert ("no cameras found" in out) == (not cameras)


def _without(monkeypatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails as if not installed


@pytest.mark.parametrize("modules, section, config, extra", [
    (["pyrealsense2"], "cameras", {"type": "realsense", "name": "front", "serial": "1"}, "realsense"),
    (["cv2"], "cameras", {"type": "opencv", "name": "web", "source": "0"}, "opencv"),
    (["franky"], "arm", {"type": "franka", "ip": "172.16.0.2"}, "franka"),
    (["rtde_control", "rtde_receive", "dashboard_client"], "arm", {"type": "ur", "ip": "192.168.1.10"}, "ur"),
    (["xarm", "xarm.wrapper"], "arm", {"type": "xarm", "ip": "192.168.1.213"}, "xarm"),
    (["hid"], "teleop", {"type": "spacemouse"}, "spacemouse"),
    (["pygame"], "teleop", {"type": "gamepad"}, "gamepad"),
])
def test_missing_sdk_names_the_extra_for_every_driver(monkeypatch, modules, section, config, extra):
    _without(monkeypatch, *modules)
    override = f"{section}=[{json.dumps(config)}]" if section == "cameras" else f"{section}={json.dumps(config)}"
    cell = load_cell("configs/cells/sim_panda.yaml", [override])
    device = (cell.cameras[0] if section == "cameras" else getattr(cell, section)).create(cell)
    with pytest.raises(MissingSDKError, match=re.escape(f"pip install 'robolearn[{extra}]'")):
        device.connect()


def test_find_cameras_without_sdks_is_an_empty_list_and_exit_0(monkeypatch, capsys):
    _without(monkeypatch, "pyrealsense2", "cv2")
    assert main(["find-cameras", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1]) == {"cameras": [], "count": 0}
    assert "pip install 'robolearn[realsense]'" in captured.err and "pip install 'robolearn[opencv]'" in captured.err
