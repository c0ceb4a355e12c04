"""Helpers shared by the CLI modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results as the last line")


def add_overrides_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a cell config value, e.g. --set control_hz=20 --set cameras.0.width_px=256 (repeatable)",
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print results: one JSON line with ``--json``, else one ``key: value`` line each."""
    if as_json:
        sys.stdout.flush()
        print(json.dumps(result, default=_jsonable), flush=True)
        return
    for key, value in result.items():
        if isinstance(value, (list, dict)) and len(str(value)) > 100:
            continue
        print(f"{key}: {value}")
