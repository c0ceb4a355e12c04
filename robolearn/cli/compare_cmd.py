"""``robolearn compare``: does the twin rank policies like the real cell? (SIMPLER's Pearson r and MMRV)."""

from __future__ import annotations

import argparse

from robolearn.cli.common import add_json_flag, emit
from robolearn.config import ConfigError
from robolearn.errors import NotFoundError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="sim-vs-real agreement over checkpoints: Pearson r, MMRV, absolute gaps",
        description="Pair twin evaluations (robolearn eval) with real trials (robolearn eval --real) of the same "
        "policies (by policy_id and task) and report, as SIMPLER does, the Pearson correlation of their success "
        "rates, the mean maximum rank violation (MMRV: for each policy, the largest real success gap among the "
        "policies the twin orders opposite to the real cell, averaged; 0 is perfect ranking), and the absolute "
        "sim-real gaps. RESULTS are record files, JSON lists of records, or directories searched recursively "
        "(e.g. a run directory with CKPT/evaluations/, where twin records and, under real/, real trials are "
        "stored; from directories each side takes only its own kind). A checkpoint evaluated on several cells "
        "needs --cell (twin side) or --real-cell to say which counts.",
    )
    parser.add_argument("--sim", nargs="+", required=True, metavar="RESULTS", help="twin evaluation records")
    parser.add_argument("--real", nargs="+", required=True, metavar="RESULTS", help="real trial records")
    parser.add_argument("--cell", default=None, metavar="NAME",
                        help="only twin records of this cell (by name), for checkpoints evaluated on several cells")
    parser.add_argument("--real-cell", default=None, metavar="NAME", help="only real records of this cell (by name)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.evaluate.compare import compare_records, filter_cell
    from robolearn.evaluate.results import load_records

    try:
        sim, real = load_records(args.sim, kind="sim"), load_records(args.real, kind="real")
        for records, side, option in ((sim, "twin", "--sim"), (real, "real", "--real")):
            if not records:
                raise NotFoundError(f"no {side} evaluation record in {option} {' '.join(getattr(args, option[2:]))}")
        result = compare_records(filter_cell(sim, args.cell, "sim"), filter_cell(real, args.real_cell, "real"))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError("--sim/--real", "", str(err)) from err
    emit(result, args.json)
    return 0
