"""``robolearn find-cameras``: whatever is connected (nothing on CI), exit 0, one JSON line."""

from __future__ import annotations

import json

from robolearn.cli import main
from robolearn.cli.find_cameras_cmd import find_cameras


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
