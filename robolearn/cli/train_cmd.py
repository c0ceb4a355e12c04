"""``robolearn train``: offline pretraining (BC, IQL, Cal-QL, and the RLPD agent's behaviour cloning)
from a demonstration store."""

from __future__ import annotations

import argparse

from robolearn.cli.common import (
    add_json_flag,
    add_run_flags,
    build_cli_run,
    emit,
    non_negative_int,
    run_flags,
)

OFFLINE_ALGOS = ["bc", "iql", "calql", "rlpd"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a policy offline from a demonstration store (bc, iql, calql, rlpd)",
        description="Train BC (with action chunking), IQL, Cal-QL, or the RLPD agent (behaviour cloning of its "
        "actor and encoder, the pretraining that `robolearn finetune --init` continues) on the episodes of a "
        "DemoStore, from the cell's cameras and proprioception unless --obs says otherwise. Evaluates in the twin "
        "every N steps and writes checkpoints (model.safetensors + config.json) to OUT/last, OUT/best (the best "
        "evaluation, across resumed runs) and OUT/step_<N> (one per evaluation, for robolearn eval over "
        "checkpoints). The run's full config goes to OUT/run.yaml first: --config OUT/run.yaml repeats it, "
        "--resume --out OUT continues it. Scalars go to OUT/logs (TensorBoard, and scalars.jsonl). Under "
        "torchrun, every rank trains on its own batches and gradients are averaged (data-parallel); rank 0 "
        "evaluates and checkpoints.",
    )
    parser.add_argument("--algo", choices=OFFLINE_ALGOS, default=None, help="algorithm (required unless --config names it)")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps (default: 20000)")
    parser.add_argument("--eval-every", type=non_negative_int, default=None,
                        help="evaluate and write OUT/step_<N> every N steps; 0: never (default: 5000)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="twin episodes per evaluation (default: 10)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="write OUT/last every N steps (default: --eval-every, else 1000)")
    parser.add_argument("--keep-checkpoints", type=non_negative_int, default=None, metavar="K",
                        help="keep only the K newest OUT/step_<N> checkpoints (default: all)")
    add_run_flags(parser, out_default="runs/<algo>_<task>")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.learn.runs import TrainRun
    from robolearn.learn.train import train_from_store

    flags = {**run_flags(args), "steps": args.steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
             "checkpoint_every": args.checkpoint_every, "keep_checkpoints": args.keep_checkpoints}
    emit(train_from_store(build_cli_run(TrainRun, args, flags, "runs/{algo}_{task}")), args.json)
    return 0
