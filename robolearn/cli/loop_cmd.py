"""``robolearn loop``: the main job, end to end on the twin."""

from __future__ import annotations

import argparse
import sys

from robolearn.cli.common import add_json_flag, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loop", help="the whole loop on the twin: demos → reward model → pretrain → fine-tune → evaluate → report",
        description="The whole loop on the twin, from the cameras and proprioception (what a real cell has): collect "
        "scripted-expert demonstrations, record episodes past success and train a success classifier on them (the "
        "learned reward; without --backbone a small random CLIP is built locally, for machines that cannot download "
        "weights), pretrain the RLPD agent offline (behaviour cloning of its actor and image encoder), fine-tune that "
        "same agent online with the learned reward (its image embeddings cached, demonstrations mixed in, the "
        "scripted expert intervening as a human would), evaluate the pretrained and the fine-tuned policy on the "
        "same seeds with K workers, and write OUT/report.html and OUT/loop.json (the policy handed over is the "
        "better of the two; the report shows the improvement with its interval). Each stage is the function behind "
        "its own command (robolearn collect, reward train, train, finetune, eval). The small budget is sized for 15 "
        "minutes on a 2-core CPU; medium and large scale every stage up.",
    )
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    parser.add_argument("--task", default="pick_cube", help="task name (default: %(default)s)")
    parser.add_argument("--out", required=True, help="output directory (must not hold a previous run)")
    parser.add_argument("--budget", choices=["small", "medium", "large"], default="small", help="default: %(default)s")
    parser.add_argument("--workers", type=int, default=2, help="evaluation worker processes (default: %(default)s)")
    parser.add_argument("--backbone", default=None,
                        help="CLIP/SigLIP directory for the reward classifier (default: a small random CLIP)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="CPU threads for torch in this process (default: %(default)s: the networks are small, and "
                        "more threads contend with the renderer and the evaluation workers)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every stage (demos, reward data, training, evaluation; default: %(default)s)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.config import ConfigError
    from robolearn.loop import BUDGETS, run_loop

    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    try:
        summary = run_loop(args.cell, args.task, args.out, BUDGETS[args.budget], workers=args.workers, seed=args.seed,
                           backbone=args.backbone, device=args.device,
                           log=lambda line: print(line, file=sys.stderr, flush=True))
    except FileExistsError as err:
        raise ConfigError("--out", args.out, str(err)) from err
    emit({k: v for k, v in summary.items() if k != "stages"}, args.json)
    return 0
