"""The typed config loader: overrides, and errors that name the file, the key and the fix."""

from __future__ import annotations

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
