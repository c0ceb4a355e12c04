"""``robolearn mirror``: the twin follows the real arm's joint states (live or replayed) and reports
how well it tracks (Real-is-Sim)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.config import ConfigError

if TYPE_CHECKING:
    from robolearn.deploy.mirror import MirrorConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mirror", help="make the twin follow the arm's joint states; report tracking error, lag, divergences",
        description="The twin's arm follows joint states, replayed from a demonstration store episode (--store, "
        "--episode) or live from the arm node's joint_states topic (--live, over Zenoh), under physics with a "
        "computed-torque joint controller. Reports per-joint RMS and p99 tracking error (rad), the lag (ms) and "
        "divergence events (a joint off by more than divergence_threshold_rad for divergence_min_ms; the twin is "
        "then re-synced). Object poses come from --objects: fixed (the cell's), replayed (the store's "
        "object_state) or fiducial (ArUco markers seen by a cell camera; settings in --config).",
    )
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", help="replay joint states from this DemoStore")
    source.add_argument("--live", action="store_true", help="follow the arm node's joint_states topic")
    parser.add_argument("--episode", type=int, default=0, help="store episode to replay (default: 0)")
    parser.add_argument("--duration", type=float, default=10.0, help="--live: seconds to mirror (default: 10)")
    parser.add_argument("--router", default=None, help="--live: zenoh router endpoint (default: the cell's ros.router_endpoint)")
    parser.add_argument("--objects", choices=["fixed", "replayed", "fiducial"], default=None,
                        help="object pose source (default: replayed for a store with object_state, else fixed)")
    parser.add_argument("--config", default=None, help="mirror settings YAML (MirrorConfig: thresholds, objects)")
    add_overrides_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def mirror_config(path: str | None, objects: str | None, default: str) -> MirrorConfig:
    """The ``MirrorConfig`` of ``path`` (defaults without one) with the object source ``objects``
    (``--objects``), else the config's, else ``default``. ``--objects`` naming the config's own
    source type keeps the config's settings for it (camera, markers, poses, ...); naming another
    type while the config sets its objects is refused rather than dropping those settings."""
    from robolearn.config import from_dict, read_yaml
    from robolearn.deploy.mirror import MirrorConfig

    data = dict(read_yaml(path) or {}) if path else {}
    source = dict(data.get("objects") or {})
    configured = source.get("type")
    if objects and configured and configured != objects:
        raise ConfigError("--objects", objects, f"{path} sets objects of type {configured!r} "
                          f"({', '.join(sorted(source))}); drop --objects to use them, or change objects.type there")
    data["objects"] = {**source, "type": objects or configured or default}
    return from_dict(MirrorConfig, data, source=path or "--objects")


def run(args: argparse.Namespace) -> int:
    from robolearn.cell import load_cell
    from robolearn.deploy.mirror import mirror_samples, samples_from_store, samples_from_topic
    from robolearn.sim import Twin

    cell = load_cell(args.cell, args.overrides)
    samples = None
    default = "fixed"
    if args.store:
        try:
            samples = list(samples_from_store(args.store, args.episode))
        except (ValueError, IndexError, FileNotFoundError) as err:
            raise ConfigError("--store", args.store, str(err)) from err
        default = "replayed" if samples and samples[0].object_state is not None else "fixed"
    config = mirror_config(args.config, args.objects, default)
    twin = Twin(cell)
    cameras = None
    if config.objects.type == "fiducial":
        cameras = {c.name: c.create(cell, twin) for c in cell.cameras}
        for camera in cameras.values():
            camera.connect()
    try:
        if samples is not None:
            report = mirror_samples(twin, samples, config, cameras)
        else:
            from robolearn.ros.node import Node
            from robolearn.ros.nodes.arm import default_joint_names
            from robolearn.ros.zenoh_backend import ZenohSettings

            joint_names = default_joint_names(cell, len(twin.arm.qpos_ids))
            settings = ZenohSettings.from_cell(cell, router_endpoint=args.router)
            with Node("robolearn_mirror", settings=settings) as node:
                try:
                    report = mirror_samples(twin, samples_from_topic(node, args.duration, joint_names), config, cameras)
                except ValueError as err:
                    raise ConfigError("--live", "joint_states", str(err)) from err
    finally:
        for camera in (cameras or {}).values():
            camera.disconnect()
    emit({"cell": cell.name, "source": args.store or "live", "objects": config.objects.type, **report}, args.json)
    return 0
