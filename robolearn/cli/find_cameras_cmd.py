"""``robolearn find-cameras``: list connected RealSense and OpenCV (UVC) cameras."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robolearn.cli.common import add_json_flag, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "find-cameras",
        help="list connected RealSense and OpenCV cameras with serials and modes",
        description="List the RealSense cameras (serial, firmware, USB type, color and depth modes) and the "
        "OpenCV/UVC webcams (device path; the common sizes 320x240 to 1920x1080 in YUYV and MJPG that each accepts, "
        "probed: v4l2-ctl --list-formats-ext lists every mode) connected to this machine, to fill the cameras: "
        "section of a cell YAML. A backend whose SDK is not installed is skipped with a note on stderr. "
        "Prints an empty list and exits 0 when no camera is found.",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run)


def find_cameras() -> tuple[list[dict[str, Any]], list[str]]:
    """All cameras found, and notes about backends that could not be searched."""
    from robolearn.drivers._sdk import MissingSDKError
    from robolearn.drivers.opencv.camera import list_devices as list_opencv
    from robolearn.drivers.realsense.camera import list_devices as list_realsense

    cameras: list[dict[str, Any]] = []
    notes = []
    for backend, finder in (("realsense", list_realsense), ("opencv", list_opencv)):
        try:
            cameras += finder()
        except MissingSDKError as err:
            notes.append(f"{backend}: skipped: {err}")
    return cameras, notes


def run(args: argparse.Namespace) -> int:
    cameras, notes = find_cameras()
    for note in notes:
        print(f"robolearn: {note}", file=sys.stderr)
    if args.json:
        emit({"cameras": cameras, "count": len(cameras)}, as_json=True)
        return 0
    if not cameras:
        print("no cameras found")
    for camera in cameras:
        print(f"{camera['type']:9s} {camera['serial']}  {camera['name']}")
        for mode in camera["modes"]:
            print(f"          {mode}")
    return 0
