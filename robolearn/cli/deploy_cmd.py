"""``robolearn deploy``: run a checkpoint on the cell, only after a passing twin evaluation."""

from __future__ import annotations

import argparse

from robolearn.cli.common import add_json_flag, emit
from robolearn.errors import RobolearnError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deploy", help="run a twin-evaluated checkpoint on the cell (shadow: twin only; live: the arm)",
        description="Refuses a checkpoint without a passing twin evaluation of the same cell and task for these "
        "exact weights (robolearn eval stores it beside the checkpoint; the threshold is min_success_rate in "
        "configs/deploy.yaml). --mode shadow runs the policy on the cell's live observations and sends its "
        "actions only to a twin that mirrors the arm, reporting what the SafetyFilter would have clipped; it never "
        "commands the arm. --mode live drives the arm through the SafetyFilter and watchdog; the teleop's failure "
        "button stops the arm, holding its intervene button takes over, success marks a trial, quit ends (the "
        "trial it interrupts is recorded as aborted). A policy that observes privileged object_state is refused on "
        "a real cell in both modes (only a simulated cell's twin has it).",
    )
    parser.add_argument("--policy", required=True, help="checkpoint directory")
    parser.add_argument("--cell", required=True, help="cell YAML (the real cell, or a sim cell to rehearse)")
    parser.add_argument("--task", required=True, help="task name or YAML the checkpoint was evaluated on")
    parser.add_argument("--mode", choices=["shadow", "live"], default="shadow", help="default: %(default)s")
    parser.add_argument("--episodes", type=int, default=1, help="live trials (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="shadow control steps (default: shadow_steps in the config)")
    parser.add_argument("--reward", default=None,
                        help="live: reward model that ends a trial on success (classifier:DIR, ...; oracle on a simulated "
                        "cell); its threshold unless success_threshold is set")
    parser.add_argument("--config", default="configs/deploy.yaml", help="deploy settings YAML (default: %(default)s)")
    parser.add_argument("--set", dest="deploy_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a deploy setting, e.g. --set min_success_rate=0.9 (repeatable)")
    parser.add_argument("--out", metavar="JSON", help="live: write the trials as a real-trial record here")
    parser.add_argument("--device", default=None, help="torch device for the policy")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.cell import load_cell
    from robolearn.deploy.devices import open_cell
    from robolearn.deploy.gate import check_gate, load_deploy_config, run_live, run_shadow
    from robolearn.learn import load_policy

    config = load_deploy_config(args.config, args.deploy_overrides)
    cell = load_cell(args.cell)
    decision = check_gate(args.policy, cell.name, args.task, config)
    if not decision.passed:
        raise RobolearnError(f"deploy refused: {decision.reason}")
    policy = load_policy(args.policy, device=args.device)
    devices = open_cell(cell, task=args.task, teleop=args.mode == "live")
    try:
        if args.mode == "shadow":
            from robolearn.sim import Twin

            result = run_shadow(policy, devices, Twin(cell), args.steps or config.shadow_steps)
        else:
            reward_model = None
            if args.reward:
                from robolearn.reward import load_reward_model

                reward_model = load_reward_model(args.reward, env=devices.twin)
            record = run_live(policy, devices, args.policy, args.task, args.episodes, config, reward_model)
            if args.out:
                record.save(args.out)
            result = {"mode": "live", **record.summary(), "record": args.out}
    finally:
        devices.close()
    emit({"gate": decision.reason, "gate_record": decision.record, **result}, args.json)
    return 0
