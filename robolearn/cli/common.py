"""Helpers shared by the CLI modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results as the last line")


def add_overrides_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a cell config value, e.g. --set control_hz=20 --set cameras.0.width_px=256 (repeatable)",
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print results: one JSON line with ``--json``, else one ``key: value`` line each."""
    if as_json:
        sys.stdout.flush()
        print(json.dumps(result, default=_jsonable), flush=True)
        return
    for key, value in result.items():
        if isinstance(value, (list, dict)) and len(str(value)) > 100:
            continue
        print(f"{key}: {value}")


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_run_flags(parser: argparse.ArgumentParser, out_default: str) -> None:
    """The flags every training run takes (``robolearn.learn.runs``). They default to None, so a run
    built from ``--config`` or resumed keeps its own values for the flags not given."""
    parser.add_argument("--store", default=None, help="DemoStore path (zarr)")
    parser.add_argument("--task", default=None, help="task name: selects episodes and the evaluation task")
    parser.add_argument("--cell", default=None,
                        help="cell YAML of the twin that evaluates (and collects online); default: the cell the store "
                        "recorded (else configs/cells/sim_panda.yaml)")
    parser.add_argument("--out", default=None, help=f"output directory (default: {out_default})")
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="a run.yaml of an earlier run (repeats it) or an algorithm YAML such as "
                        "configs/algos/<algo>.yaml (default: the shipped one of --algo)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an algorithm config value, e.g. --set batch_size=128 or "
                        "--set encoder.image=fast_cnn (repeatable)")
    parser.add_argument("--obs", default=None,
                        help="comma-separated observation keys (default: state and the store's cameras, what a real "
                        "cell has; object_state makes a twin-only policy)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seeds torch, the replay buffers' samplers, episodes and evaluation (default: 0)")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the networks")
    parser.add_argument("--wandb", default=None, metavar="PROJECT", help="also log scalars to this wandb project")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (its run.yaml is the base; other flags change it)")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: resume even though the settings differ from the saved run.yaml")


def run_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings of ``add_run_flags`` as given (None: not given)."""
    return {"algo": args.algo, "store": args.store, "task": args.task, "cell": args.cell, "out": args.out,
            "obs": args.obs.split(",") if args.obs else None, "device": args.device, "seed": args.seed,
            "compile": args.compile, "wandb": args.wandb}


def build_cli_run(cls: type, args: argparse.Namespace, flags: dict[str, Any], default_out: str) -> Any:
    """The run config of a training command: ``--resume`` starts from ``--out``'s saved run, else
    ``--config``; the flags given and ``--set`` go on top; provenance is recorded, and the output
    directory is checked and gets ``run.yaml`` (``robolearn.learn.runs``)."""
    from pathlib import Path

    from robolearn.config import read_yaml
    from robolearn.learn.runs import RUN_FILE, build_run, prepare_run_dir, provenance

    base = None
    if args.resume and args.out is not None and (Path(args.out) / RUN_FILE).is_file():
        base = read_yaml(Path(args.out) / RUN_FILE)
    run = build_run(cls, flags, args.config, args.overrides, base=base)
    if not run.out:
        run.out = default_out.format(algo=run.algo, task=run.task)
    from robolearn.learn.runs import resolve_store_defaults

    resolve_store_defaults(run)
    run.provenance = provenance(run)
    prepare_run_dir(run, args.resume, args.allow_config_change)
    return run
