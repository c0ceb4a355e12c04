"""``robolearn finetune``: online RL (RLPD, Cal-QL, WSRL) on the twin with demonstrations from a store."""

from __future__ import annotations

import argparse

from robolearn.cell import DEFAULT_CELL
from robolearn.cli.common import add_json_flag, add_run_flags, build_cli_run, emit, run_flags
from robolearn.config import ConfigError
from robolearn.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a policy online on the twin (rlpd, calql, wsrl)",
        description="Online RL on the twin: RLPD samples demonstrations from the store and online data 50/50; "
        "Cal-QL and WSRL start from a pretrained checkpoint (--init; WSRL first runs it frozen for its warm-up "
        "steps, then trains on online data only). Every online episode is appended to the store. With "
        "--actors K, K actor processes stream transitions to this process (the learner) over Zenoh. With a "
        "learned --reward, the env reward is replaced by the model's and its false-positive rate against the "
        "twin's ground truth is reported. With --teleop, the operator (or the scripted expert) can take over; those "
        "steps are marked and also go to the demo buffer (HIL-SERL). Across machines, run --role learner on the "
        "GPU machine and --role actor --router tcp/<learner-host>:7447 on the robot PC. Writes OUT/last "
        "(model.safetensors + config.json); with actors, OUT/learner is the crash-safe learner checkpoint: "
        "rerun the same command to resume.",
    )
    parser.add_argument("--algo", default=None, choices=["rlpd", "calql", "wsrl"],
                        help="algorithm (required unless --config or --resume names it)")
    parser.add_argument("--init", default=None,
                        help="the pretrained checkpoint to continue (robolearn train output, e.g. --algo rlpd for RLPD, "
                        "--algo calql for Cal-QL/WSRL); its encoder and actor start the fine-tuning")
    parser.add_argument("--reward", default=None,
                        help="oracle (twin ground truth; default), classifier:<ckpt>, clip:<yaml>, vlm:<yaml>, preference:<ckpt>")
    parser.add_argument("--actors", type=int, default=None,
                        help="actor processes over Zenoh; 0 runs actor and learner in this process (default)")
    parser.add_argument("--role", choices=["all", "learner", "actor"], default="all",
                        help="all: everything here (default); learner: open the router and train; actor: run the "
                        "policy against the learner at --router")
    parser.add_argument("--router", default=None,
                        help="Zenoh endpoint: where the learner listens (e.g. tcp/0.0.0.0:7447) or the actor connects "
                        "(tcp/<learner-host>:7447); default: a free local port (role all)")
    parser.add_argument("--hold-when-learner-away", action="store_true",
                        help="actors stop the arm and wait while the learner is unreachable (default: keep acting "
                        "on the last weights)")
    parser.add_argument("--teleop", default=None,
                        help="interventions: expert (scripted, at random) or a teleop device type (spacemouse, "
                        "keyboard, gamepad)")
    parser.add_argument("--intervene-probability", type=float, default=None,
                        help="with --teleop expert: chance per step that the expert takes over for 10 steps (default: 0.05)")
    parser.add_argument("--steps", type=int, default=None, help="online env steps in total (default: 20000)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="write OUT/last (resumable) at the first episode end after every N env steps (default: 2000)")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="final twin evaluation episodes, of the pretrained policy too with --init (default: 10)")
    add_run_flags(parser, out_default="runs/<algo>_<task>_online")
    _add_reset_free_flags(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _add_reset_free_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "reset-free (RoboFuME)",
        "With --reset-free, two agents share one twin scene with no resets: the forward agent (--task, --store, "
        "--reward, --init, --algo) runs until its reward model calls success, then the backward agent "
        "(--backward-*) runs until its reward model calls the scene reset, and so on. Each learns from its own "
        "phases and its own task's demonstrations (collect them with `robolearn collect --task pick_cube_reset`); "
        "every phase is appended to its store as an online episode of its task. Reports per-phase success counts "
        "and each reward model's online false-positive rate against the twin's ground truth; writes "
        "OUT/forward/last and OUT/backward/last.")
    group.add_argument("--reset-free", action="store_true", help="train forward and backward agents reset-free")
    group.add_argument("--backward-task", default=None, metavar="TASK",
                       help="the backward (reset) task, a name or YAML (default: the reset task of --task: "
                       "pick_cube_reset, push_cube_reset)")
    group.add_argument("--backward-store", default=None, metavar="PATH",
                       help="DemoStore with the backward task's demonstrations; backward phases go there (default: --store)")
    group.add_argument("--backward-reward", default="oracle", metavar="SPEC",
                       help="the backward phase's reward model, same specs as --reward (default: oracle, the twin's "
                       "ground truth of the backward task)")
    group.add_argument("--backward-init", default=None, metavar="CKPT", help="checkpoint to start the backward agent from")
    group.add_argument("--backward-algo", default=None, choices=["rlpd", "calql", "wsrl"],
                       help="the backward agent's algorithm (default: --algo); --set applies to both agents, --config "
                       "only when the algorithms match")
    group.add_argument("--max-phase-steps", type=int, default=None, metavar="N",
                       help="steps before a phase without a success call gives up (default: the longer episode length "
                       "of the two tasks)")
    group.add_argument("--hard-reset-every", type=int, default=0, metavar="N",
                       help="reset the twin after every N forward phases (default: 0, never)")


def _refuse_reset_free_flags(args: argparse.Namespace) -> None:
    used = [flag for flag, value in (("--backward-task", args.backward_task), ("--backward-store", args.backward_store),
                                     ("--backward-reward", args.backward_reward != "oracle"),
                                     ("--backward-init", args.backward_init), ("--backward-algo", args.backward_algo),
                                     ("--max-phase-steps", args.max_phase_steps),
                                     ("--hard-reset-every", args.hard_reset_every)) if value]
    if used:
        raise ConfigError(", ".join(used), "", "only applies with --reset-free; add --reset-free or drop it")


def _run_reset_free(args: argparse.Namespace) -> dict:
    from robolearn.learn.reset_free import PhaseSpec, train_reset_free
    from robolearn.sim.tasks import reset_task_name

    unsupported = [flag for flag, used in (("--actors", args.actors), ("--role", args.role != "all"),
                                           ("--teleop", args.teleop), ("--compile", args.compile)) if used]
    if unsupported:
        raise ConfigError(", ".join(unsupported), "", "not supported with --reset-free (one process, no "
                          "interventions); drop it")
    if args.algo is None or args.store is None or args.task is None:
        raise UsageError("--reset-free needs --algo, --store and --task")
    reward, steps, seed = args.reward or "oracle", args.steps or 20_000, args.seed or 0
    backward_algo = args.backward_algo or args.algo
    for flag, algo, init in (("--init", args.algo, args.init), ("--backward-init", backward_algo, args.backward_init)):
        if algo == "wsrl" and init is None:
            raise ConfigError(flag, "", "wsrl fine-tunes a pretrained agent; pass a checkpoint (robolearn train --algo calql)")
    forward = PhaseSpec(args.task, args.store, reward, args.init, args.algo, args.config, tuple(args.overrides))
    backward = PhaseSpec(args.backward_task or reset_task_name(args.task), args.backward_store or args.store,
                         args.backward_reward, args.backward_init, backward_algo,
                         args.config if backward_algo == args.algo else None, tuple(args.overrides))
    return train_reset_free(forward, backward, args.cell or DEFAULT_CELL, steps,
                            args.out or f"runs/{args.algo}_{args.task}_reset_free", args.max_phase_steps,
                            args.hard_reset_every, args.obs.split(",") if args.obs else None, args.device, seed,
                            args.eval_episodes or 10, args.wandb, checkpoint_every=args.checkpoint_every or 2000)


def run(args: argparse.Namespace) -> int:
    from robolearn.learn.finetune import finetune
    from robolearn.learn.runs import FinetuneRun

    if args.reset_free:
        emit(_run_reset_free(args), args.json)
        return 0
    _refuse_reset_free_flags(args)
    if args.role == "actor" and args.router is None:
        raise UsageError("--role actor needs --router tcp/<learner-host>:<port>")
    flags = {**run_flags(args), "init": args.init, "reward": args.reward, "actors": args.actors, "teleop": args.teleop,
             "intervene_probability": args.intervene_probability, "steps": args.steps,
             "checkpoint_every": args.checkpoint_every, "eval_episodes": args.eval_episodes}
    run_config = build_cli_run(FinetuneRun, args, flags, "runs/{algo}_{task}_online")
    if run_config.algo == "wsrl" and run_config.init is None:
        raise UsageError("wsrl fine-tunes a pretrained policy; pass --init CKPT (e.g. from robolearn train --algo calql)")
    result = finetune(run_config, role=args.role, router=args.router, hold_when_learner_away=args.hold_when_learner_away,
                      resume=args.resume)
    emit(result, args.json)
    return 0
