"""One error path: every failure a user can fix ends in one line on stderr and exit code 2, with the
traceback only under ``--debug`` (or ``ROBOLEARN_DEBUG=1``); library code raises ``RobolearnError``
subclasses, never ``SystemExit``."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from robolearn.cli import main
from robolearn.errors import NotFoundError, RobolearnError
from robolearn.store import DemoStore

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("robolearn: "), err
    return err


@pytest.fixture
def state_only_store(tmp_path):
    store = DemoStore.create(tmp_path / "state.zarr")
    n = 5
    store.append_episode({"state": np.zeros((n, 15), np.float32), "action": np.zeros((n, 7), np.float32),
                          "reward": np.zeros(n, np.float32), "success": np.ones(n, bool)},
                         {"task": "pick_cube", "success": True, "source": "expert"})
    return store.path


def test_a_missing_store_is_one_line(tmp_path, capsys):
    err = one_line_error(["train", "--algo", "bc", "--store", str(tmp_path / "nope.zarr"), "--task", "reach"], capsys)
    assert "no store at" in err and "robolearn collect" in err


def test_a_missing_config_file_says_so(tmp_path, state_only_store, capsys):
    err = one_line_error(["train", "--algo", "bc", "--store", str(state_only_store), "--task", "pick_cube",
                          "--config", str(tmp_path / "nope.yaml")], capsys)
    assert "no such config file" in err and "pass --config" not in err


def test_reward_training_on_a_store_without_images_is_one_line(state_only_store, tmp_path, capsys):
    from robolearn.reward.encoders import save_tiny_clip

    backbone = save_tiny_clip(tmp_path / "clip", image_size_px=32, patch_size_px=8, width=32)
    err = one_line_error(["reward", "train", "--store", str(state_only_store), "--backbone", str(backbone),
                          "--out", str(tmp_path / "reward")], capsys)
    assert "no color images" in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(NotFoundError, match="no store at"):
        main(["--debug", "train", "--algo", "bc", "--store", str(tmp_path / "nope.zarr"), "--task", "reach"])


def test_library_code_never_raises_system_exit():
    raising = []
    for folder in ("robolearn", "drivers", "sim"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Raise) and node.exc is not None:
                    call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                    if isinstance(call, ast.Name) and call.id == "SystemExit":
                        raising.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert raising == []


def test_user_errors_keep_the_builtin_type_a_caller_expects():
    from robolearn.errors import AlreadyExistsError, DataError, MissingKeyError, UsageError

    assert issubclass(NotFoundError, FileNotFoundError) and issubclass(AlreadyExistsError, FileExistsError)
    assert issubclass(DataError, ValueError) and issubclass(UsageError, ValueError)
    assert str(MissingKeyError("observation lacks ['rgb_front']")) == "observation lacks ['rgb_front']"
    assert all(issubclass(cls, RobolearnError) for cls in (NotFoundError, DataError, UsageError, MissingKeyError))
