"""``robolearn compare``: does the twin rank policies like the real cell? (SIMPLER's Pearson r and MMRV)."""

from __future__ import annotations

import argparse

from robolearn.cli.common import add_json_flag, emit
from robolearn.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="sim-vs-real agreement over checkpoints: Pearson r, MMRV, absolute gaps",
        description="Pair twin evaluations (robolearn eval) with real trials (robolearn eval --real) of the same "
        "policies (by policy_id and task) and report, as SIMPLER does, the Pearson correlation of their success "
        "rates, the mean maximum rank violation (MMRV: for each policy, the largest real success gap among the "
        "policies the twin orders opposite to the real cell, averaged; 0 is perfect ranking), and the absolute "
        "sim-real gaps. RESULTS are record files, JSON lists of records, or directories searched recursively "
        "(e.g. a run directory with CKPT/evaluations/).",
    )
    parser.add_argument("--sim", nargs="+", required=True, metavar="RESULTS", help="twin evaluation records")
    parser.add_argument("--real", nargs="+", required=True, metavar="RESULTS", help="real trial records")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.evaluate.compare import compare_records
    from robolearn.evaluate.results import load_records

    try:
        sim, real = load_records(args.sim), load_records(args.real)
        wrong = [f"{r.policy_id} ({r.kind})" for r in sim if r.kind != "sim"] + [
            f"{r.policy_id} ({r.kind})" for r in real if r.kind != "real"]
        if wrong:
            raise ValueError(f"records on the wrong side: {wrong}; --sim takes twin records, --real real trials")
        result = compare_records(sim, real)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError("--sim/--real", "", str(err)) from err
    emit(result, args.json)
    return 0
