"""The main job end to end: ``robolearn loop`` runs collect → reward model → pretrain → fine-tune
with the learned reward → evaluate → report, each stage through the function behind its command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from robolearn.errors import DataError
from robolearn.evaluate import EvalRecord, evaluation_path
from robolearn.loop import LoopBudget, collect_all, run_loop
from robolearn.store import DemoStore

CELL = "configs/cells/sim_panda.yaml"
TINY = LoopBudget(demos=3, demo_noise=0.1, reward_episodes=4, reward_steps=50, pretrain_steps=40, finetune_steps=30,
                  finetune_critics=2, finetune_utd=1, eval_episodes=2)


def test_loop_runs_every_stage_and_writes_the_report(tmp_path):
    out = tmp_path / "run"
    summary = run_loop(CELL, "pick_cube", out, TINY, workers=1, log=lambda line: None)
    assert list(summary["seconds"]) == ["collect", "reward", "pretrain", "finetune", "evaluate"]
    stages = summary["stages"]
    assert stages["collect"]["episodes_committed"] == 3 and stages["collect"]["success_rate"] > 0
    demos, reward_data = DemoStore.open(out / "demos.zarr"), DemoStore.open(out / "reward_data.zarr")
    assert demos.n_episodes >= 3 and {"rgb_front", "rgb_wrist", "state"} <= set(demos.keys)
    assert [m["operator"] for m in reward_data.episode_metas()] == ["expert"] * 2 + ["noisy expert", "random"]
    assert (reward_data.episode_lengths == 50).all()  # run past success: positives are recorded
    assert stages["reward"]["cameras"] == ["front", "wrist"] and 0.5 <= stages["reward"]["threshold"] <= 1.0
    assert json.loads((out / "reward" / "config.json").read_text())["type"] == "classifier"
    assert json.loads((out / "pretrain" / "last" / "config.json").read_text())["algo"] == "bc"
    finetuned = stages["finetune"]
    assert finetuned["algo"] == "rlpd" and 0.0 <= finetuned["reward_false_positive_rate"] <= 1.0
    assert summary["reward_false_positive_rate_online"] == finetuned["reward_false_positive_rate"]
    for name in ("pretrain", "finetune"):
        record = EvalRecord.load(evaluation_path(out / name / "last", "sim_panda", "pick_cube"))
        assert record.n_episodes == 2 and stages["evaluate"][name]["success_rate"] == record.success_rate
    assert summary["policy"] == str(out / summary["policy_stage"] / "last")
    assert summary["success_rate"] == max(stages["evaluate"][n]["success_rate"] for n in ("pretrain", "finetune"))
    saved = json.loads((out / "loop.json").read_text())
    assert saved["policy"] == summary["policy"] and saved["seconds"] == summary["seconds"]
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "Stages (seconds)" in html and "Online fine-tuning" in html
    with pytest.raises(FileExistsError, match="already holds a loop run"):
        run_loop(CELL, "pick_cube", out, TINY, workers=1, log=lambda line: None)


def test_collect_all_returns_the_collect_summary_and_raises_when_episodes_are_missing(tmp_path):
    from robolearn.collect import CollectSettings
    from robolearn.config import ConfigError

    result = collect_all(CollectSettings(cell=CELL, task="reach", episodes=1, cameras=False, store=str(tmp_path / "s.zarr")))
    assert result["episodes_committed"] == 1 and result["n_episodes"] == 1
    one_step = CollectSettings(cell=CELL, task="reach", episodes=1, cameras=False, only_success=True,
                               task_overrides=["max_episode_steps=1"], store=str(tmp_path / "t.zarr"))
    with pytest.raises(DataError, match="committed 0 of 1 episodes"):  # no expert succeeds in 1 step
        collect_all(one_step)
    with pytest.raises(ConfigError, match="must be positive"):
        CollectSettings(episodes=0)


@pytest.mark.slow
def test_quickstart_loop_command(tmp_path):
    """The README's first Quickstart command (small budget; the 20-minute budget is for a quiet 2-core CPU)."""
    out = subprocess.run([sys.executable, "-m", "robolearn", "loop", "--cell", CELL, "--task", "pick_cube",
                          "--out", str(tmp_path / "quickstart"), "--json"], capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.splitlines()[-1])
    assert (tmp_path / "quickstart" / "report.html").is_file()
    assert summary["total_minutes"] <= 20 and summary["success_rate"] >= 0.5
