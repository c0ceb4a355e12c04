"""``robolearn train``: offline pretraining (BC, IQL, Cal-QL) from a demonstration store."""

from __future__ import annotations

import argparse

from robolearn.cli.common import add_json_flag, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a policy offline from a demonstration store (bc, iql, calql)",
        description="Train BC (with action chunking), IQL or Cal-QL on the episodes of a DemoStore, evaluate "
        "in the twin every N steps, and write checkpoints (model.safetensors + config.json) to OUT/last, "
        "OUT/best (the best evaluation, across resumed runs) and OUT/step_<N> (one per evaluation, for "
        "robolearn eval over checkpoints). Running the same command again resumes from OUT/last. Scalars go to OUT/logs "
        "(TensorBoard, and scalars.jsonl). Under torchrun, every rank trains on its own batches and gradients "
        "are averaged (data-parallel); rank 0 evaluates and checkpoints.",
    )
    parser.add_argument("--algo", required=True, choices=["bc", "iql", "calql"], help="algorithm")
    parser.add_argument("--store", required=True, help="DemoStore path (zarr)")
    parser.add_argument("--task", required=True, help="task name: selects episodes and the evaluation task")
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML for the twin (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20_000, help="gradient steps (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=5_000, help="evaluate and checkpoint every N steps; 0: never")
    parser.add_argument("--eval-episodes", type=int, default=10, help="twin episodes per evaluation (default: %(default)s)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="write OUT/last every N steps (default: --eval-every, else 1000)")
    parser.add_argument("--keep-checkpoints", type=_non_negative, default=None, metavar="K",
                        help="keep only the K newest OUT/step_<N> checkpoints (default: all)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/<algo>_<task>)")
    parser.add_argument("--config", default=None, help="algorithm YAML (default: configs/algos/<algo>.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an algorithm config value, e.g. --set batch_size=128 (repeatable)")
    parser.add_argument("--obs", default=None,
                        help="comma-separated observation keys (default: state and object_state when stored)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--wandb", default=None, metavar="PROJECT", help="also log scalars to this wandb project")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from robolearn.learn.train import train_from_store

    result = train_from_store(
        args.algo, args.store, args.task, args.cell, args.steps, args.eval_every, args.eval_episodes,
        args.out or f"runs/{args.algo}_{args.task}", args.config, tuple(args.overrides),
        args.obs.split(",") if args.obs else None, args.device, args.seed,
        checkpoint_every=args.checkpoint_every, wandb_project=args.wandb, compile=args.compile,
        keep_checkpoints=args.keep_checkpoints,
    )
    emit(result, args.json)
    return 0
