"""Twin evaluation: determinism across worker counts, the CLI record, reports, compare."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest

from robolearn.evaluate import (
    EvalRecord,
    EvalSettings,
    ExpertPolicy,
    evaluate_policy,
    evaluation_path,
    load_records,
)
from robolearn.evaluate.report import render_report
from robolearn.evaluate.results import EpisodeRecord


def untrained_checkpoint(path, seed=0):
    import torch

    from robolearn.learn.agents import make_agent
    from robolearn.learn.api import save_agent
    from robolearn.learn.bc import BCConfig

    torch.manual_seed(seed)
    shapes = {"state": (15,), "object_state": (10,)}
    agent = make_agent(BCConfig(hidden=(32,), chunk=2, execute=1), shapes, 7)
    return save_agent(path, agent, shapes, step=7, task="reach", cell="configs/cells/sim_panda.yaml")


def cli(*args, timeout=300):
    out = subprocess.run([sys.executable, "-m", "robolearn", *args], capture_output=True, text=True, timeout=timeout)
    return out


def test_same_seed_agrees_exactly_for_any_worker_count():
    noisy = functools.partial(ExpertPolicy, noise_scale=0.6)
    settings = dict(task="push_cube", episodes=4, seed=11, failure_frames=0, task_overrides=("max_episode_steps=40", "reward=dense"))
    one = evaluate_policy(noisy, EvalSettings(workers=1, **settings), progress=False)
    two = evaluate_policy(noisy, EvalSettings(workers=2, **settings), progress=False)
    assert one.episode_results == two.episode_results
    assert [e.seed for e in one.episode_results] == [11, 12, 13, 14]
    other = evaluate_policy(noisy, EvalSettings(workers=1, **{**settings, "seed": 12}), progress=False)
    assert other.episode_results[0].episode_return == one.episode_results[1].episode_return
    assert len({e.episode_return for e in one.episode_results}) == 4


def test_failed_episodes_keep_frames_and_the_report_shows_them(tmp_path):
    record = evaluate_policy("expert", EvalSettings(task="pick_cube", episodes=3, failure_frames=2,
                                                    task_overrides=("max_episode_steps=3",)), progress=False)
    assert record.success_rate == 0.0 and record.ci95 == (0.0, pytest.approx(0.5615, abs=1e-4))
    assert [f["index"] for f in record.failure_frames] == [0, 1]
    html = render_report([record], sections=[("Stages", {"collect_s": 1.5})])
    assert html.count("data:image/png;base64,") == 2 + 2  # success plot, histogram, two failure frames
    assert "collect_s" in html
    again = EvalRecord.load(record.save(tmp_path / "r.json"))
    assert again.episode_results == record.episode_results and again.failure_frames == record.failure_frames


def test_record_rejects_other_json_and_loads_directories(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a robolearn evaluation record"):
        load_records([tmp_path / "other.json"])
    record = EvalRecord(kind="real", policy="runs/a/last", policy_id="a/last", cell="c", task="reach",
                        episode_results=[EpisodeRecord(0, None, True, 1.0, 5)])
    record.save(tmp_path / "sub" / "x.json")
    assert [r.policy_id for r in load_records([tmp_path])] == ["a/last"]


def test_eval_cli_prints_success_rate_and_stores_the_record_beside_the_checkpoint(tmp_path):
    ckpt = untrained_checkpoint(tmp_path / "run" / "last")
    args = ["eval", "--policy", str(ckpt), "--task", "reach", "--episodes", "3", "--workers", "2", "--seed", "5",
            "--report", str(tmp_path / "report.html"), "--json"]
    first, second = cli(*args), cli(*args)
    assert first.returncode == 0, first.stderr
    a, b = json.loads(first.stdout.splitlines()[-1]), json.loads(second.stdout.splitlines()[-1])
    assert {"success_rate", "ci95", "episodes", "returns"} <= set(a)
    assert a["episodes"] == 3 and len(a["returns"]) == 3 and 0.0 <= a["ci95"][0] <= a["success_rate"] <= a["ci95"][1]
    assert a["returns"] == b["returns"]
    stored = EvalRecord.load(evaluation_path(ckpt, "sim_panda", "reach"))
    assert stored.policy_id == "run/last" and stored.policy_step == 7 and stored.policy_sha256
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_eval_cli_rejects_a_directory_that_is_not_a_checkpoint(tmp_path):
    out = cli("eval", "--policy", str(tmp_path), "--episodes", "1")
    assert out.returncode == 2 and "not a checkpoint directory" in out.stderr


def _record(kind, policy_id, successes, n=10, task="pick_cube"):
    return EvalRecord(kind=kind, policy=policy_id, policy_id=policy_id, cell="c", task=task,
                      episode_results=[EpisodeRecord(i, i, i < successes, float(i < successes), 10) for i in range(n)])


def test_compare_cli_reports_simpler_metrics(tmp_path):
    sim = [_record("sim", p, s) for p, s in (("a", 5), ("b", 6), ("c", 1), ("d", 9))]
    real = [_record("real", p, s) for p, s in (("a", 7), ("b", 3), ("c", 2), ("d", 10))]
    (tmp_path / "sim.json").write_text(json.dumps([r.to_dict() for r in sim]))
    for r in real:
        r.save(tmp_path / "real" / f"{r.policy_id}.json")
    out = cli("compare", "--sim", str(tmp_path / "sim.json"), "--real", str(tmp_path / "real"), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    sim_rates, real_rates = np.array([0.5, 0.6, 0.1, 0.9]), np.array([0.7, 0.3, 0.2, 1.0])
    assert result["mmrv"] == pytest.approx(0.2)  # a/b swapped; real gap 0.4 for both of them
    assert result["pearson_r"] == pytest.approx(np.corrcoef(sim_rates, real_rates)[0, 1])
    assert result["mean_abs_gap"] == pytest.approx(np.mean(np.abs(sim_rates - real_rates)))
    swapped = cli("compare", "--sim", str(tmp_path / "real"), "--real", str(tmp_path / "sim.json"))
    assert swapped.returncode == 2 and "wrong side" in swapped.stderr


def compare_in_process(capsys, *args):
    from robolearn.cli import main

    code = main(["compare", *args, "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out.strip().splitlines()[-1]) if code == 0 else captured.err)


def test_compare_picks_a_cell_for_a_checkpoint_evaluated_on_two(tmp_path, capsys):
    sims = tmp_path / "runs"
    for policy, cell, successes in (("a", "sim_panda", 5), ("a", "sim_panda_v2", 9), ("b", "sim_panda", 2),
                                    ("b", "sim_panda_v2", 3)):
        record = _record("sim", policy, successes)
        record.cell = cell
        record.save(sims / policy / "evaluations" / f"{cell}__pick_cube.json")
    for policy, successes in (("a", 6), ("b", 1)):
        _record("real", policy, successes).save(sims / policy / "evaluations" / "real" / "c__pick_cube.json")
    code, err = compare_in_process(capsys, "--sim", str(sims), "--real", str(sims))
    assert code == 2 and "cells ['sim_panda', 'sim_panda_v2']" in err and "--cell sim_panda" in err
    code, result = compare_in_process(capsys, "--sim", str(sims), "--real", str(sims), "--cell", "sim_panda_v2")
    assert code == 0 and [p["sim_success_rate"] for p in result["policies"]] == [0.9, 0.3]
    assert [p["real_success_rate"] for p in result["policies"]] == [0.6, 0.1]
    code, err = compare_in_process(capsys, "--sim", str(sims), "--real", str(sims), "--cell", "real_franka")
    assert code == 2 and "no sim record on cell 'real_franka'" in err and "sim_panda_v2" in err
    (sims / "a" / "evaluations" / "notes.json").write_text("{not json")
    code, err = compare_in_process(capsys, "--sim", str(sims), "--real", str(sims), "--cell", "sim_panda")
    assert code == 2 and f"{sims / 'a' / 'evaluations' / 'notes.json'}: not valid JSON" in err


def test_aborted_trials_count_in_no_rate_nor_in_compare(tmp_path, capsys):
    real = _record("real", "a", 3, n=4)
    real.episode_results.append(EpisodeRecord(4, None, False, 0.0, 7, ended_by="quit", aborted=True))
    assert real.n_episodes == 4 and real.n_aborted == 1 and real.success_rate == 0.75
    real.save(tmp_path / "real.json")
    _record("sim", "a", 5).save(tmp_path / "sim.json")
    code, result = compare_in_process(capsys, "--sim", str(tmp_path / "sim.json"), "--real", str(tmp_path / "real.json"))
    assert code == 0 and result["policies"][0]["real_success_rate"] == 0.75 and result["policies"][0]["real_episodes"] == 4
    with pytest.raises(ValueError, match="at least one completed"):
        EvalRecord(kind="real", policy="a", policy_id="a", cell="c", task="t",
                   episode_results=[EpisodeRecord(0, None, False, 0.0, 3, ended_by="quit", aborted=True)])


def test_real_trials_are_never_overwritten(tmp_path):
    from robolearn.evaluate.results import real_evaluation_path

    first = real_evaluation_path(tmp_path / "last", "real_franka", "configs/tasks/pick_cube.yaml")
    assert first == tmp_path / "last" / "evaluations" / "real" / "real_franka__pick_cube.json"
    _record("real", "last", 2).save(first)
    second = real_evaluation_path(tmp_path / "last", "real_franka", "pick_cube")
    assert second.name == "real_franka__pick_cube.2.json"
    _record("real", "last", 3).save(second)
    assert real_evaluation_path(tmp_path / "last", "real_franka", "pick_cube").name == "real_franka__pick_cube.3.json"
    assert load_records([tmp_path], kind="sim") == [] and len(load_records([tmp_path], kind="real")) == 2
