"""``robolearn eval``: evaluate a checkpoint in the twin (K worker processes), or record real trials."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a policy in the twin (success rate with a 95%% interval), or record real trials",
        description="Run N episodes of a task in the MuJoCo twin of a cell with a checkpoint, in K worker "
        "processes, and report the success rate with its Wilson 95%% interval and the per-episode returns. "
        "Episode i is reset with seed SEED+i, so two runs with the same seed agree exactly for any K. The record "
        "is stored beside the checkpoint (CKPT/evaluations/<cell>__<task>.json), where `robolearn deploy` looks "
        "for it. With --real, the policy drives the real cell through the SafetyFilter and watchdog; the "
        "operator marks each trial with the teleop's success/failure buttons (or a --reward model decides), "
        "and the trials are recorded in the same format, for `robolearn compare`, beside the checkpoint at "
        "CKPT/evaluations/real/<cell>__<task>.json (never overwritten: a later run takes <cell>__<task>.2.json, ...).",
    )
    parser.add_argument("--policy", required=True,
                        help="checkpoint directory (model.safetensors + config.json), or `expert` for the scripted expert")
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    parser.add_argument("--task", default="pick_cube", help="task name or task YAML (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, each with its own twin (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of episode 0 (default: %(default)s)")
    parser.add_argument("--video", metavar="DIR", help="write one MP4 per episode into DIR")
    parser.add_argument("--report", metavar="HTML", help="write an HTML report (with the checkpoint's sibling evaluations)")
    parser.add_argument("--out", metavar="JSON", help="also write the record here (default: only beside the checkpoint: "
                        "CKPT/evaluations/ for the twin, CKPT/evaluations/real/ with --real)")
    parser.add_argument("--device", default=None, help="torch device for the policy (default: cuda when available)")
    parser.add_argument("--real", action="store_true",
                        help="record real trials on the cell's arm, cameras and teleop instead of twin episodes")
    parser.add_argument("--reward", default=None,
                        help="with --real: reward model that decides success (classifier:DIR, ...); default: teleop buttons")
    parser.add_argument("--deploy-config", default="configs/deploy.yaml",
                        help="with --real: trial settings (max_episode_steps, success_threshold, wait_for_reset; "
                        "default: %(default)s)")
    add_overrides_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _sibling_records(ckpt: Path, cell: str, task: str) -> list:
    """Evaluations of the same cell and task of the checkpoints beside ``ckpt`` (success over checkpoints)."""
    from robolearn.evaluate.results import EvalRecord, evaluation_path

    records = []
    for sibling in sorted(ckpt.parent.iterdir()) if ckpt.parent.is_dir() else []:
        path = evaluation_path(sibling, cell, task)
        if sibling.resolve() != ckpt.resolve() and path.is_file():
            records.append(EvalRecord.load(path))
    return records


def run(args: argparse.Namespace) -> int:
    from robolearn.evaluate.report import write_report
    from robolearn.evaluate.twin_eval import EXPERT, EvalSettings, evaluate_policy, save_beside_checkpoint

    if args.episodes <= 0 or args.workers <= 0:
        raise ConfigError("--episodes/--workers", "", "must be positive")
    is_checkpoint = args.policy != EXPERT
    if is_checkpoint and not (Path(args.policy) / "config.json").is_file():
        raise ConfigError("--policy", args.policy, "is not a checkpoint directory (needs model.safetensors and "
                          "config.json, as written by `robolearn train`/`finetune`), nor `expert`")
    if args.real:
        from robolearn.deploy.gate import load_deploy_config
        from robolearn.deploy.real_trials import record_real_trials
        from robolearn.evaluate.results import real_evaluation_path

        record = record_real_trials(args.policy, args.cell, args.task, args.episodes, reward=args.reward,
                                    overrides=tuple(args.overrides), device=args.device,
                                    config=load_deploy_config(args.deploy_config, []), seed=args.seed)
        saved = str(record.save(real_evaluation_path(args.policy, record.cell, record.task)))
        print(f"robolearn: real trials saved to {saved}", file=sys.stderr)
    else:
        settings = EvalSettings(cell=args.cell, task=args.task, episodes=args.episodes, workers=args.workers,
                                seed=args.seed, video_dir=args.video, device=args.device,
                                cell_overrides=tuple(args.overrides))
        record = evaluate_policy(args.policy, settings)
        saved = str(save_beside_checkpoint(record, args.policy)) if is_checkpoint else None
    if args.out:
        record.save(args.out)
    if args.report:
        history = _sibling_records(Path(args.policy), record.cell, record.task) if is_checkpoint else []
        write_report(args.report, [*history, record], title=f"robolearn eval: {record.policy_id} on {record.task}")
    emit({**record.summary(), "record": saved or args.out, "report": args.report, "video": args.video}, args.json)
    return 0
