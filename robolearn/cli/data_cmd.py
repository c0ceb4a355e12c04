"""``robolearn data``: inspect, edit, view, convert and resize demonstration stores."""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.config import ConfigError

EXPORT_FORMATS = ("lerobot", "mcap")
IMPORT_FORMATS = ("lerobot", "mcap", "rosbag2")


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser(
        "data", help="inspect, edit, view, convert and resize demonstration stores",
        description="Work with a demonstration store (zarr, the diffusion_policy layout plus robolearn metadata).")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    parser = sub.add_parser("info", help="summarize a store: episodes, steps, keys, tasks, sources, success",
                            description="Summarize a store: episode and step counts, every data key with its shape, "
                            "dtype and compressor, tasks, sources, success rate and size on disk.")
    parser.add_argument("path", help="store path (a .zarr directory)")
    add_json_flag(parser)
    parser.set_defaults(func=run_info)

    parser = sub.add_parser("episodes", help="list episodes with their metadata",
                            description="One line per episode: index, task, source, operator, success, steps, duration.")
    parser.add_argument("path", help="store path")
    add_json_flag(parser)
    parser.set_defaults(func=run_episodes)

    parser = sub.add_parser("delete", help="delete episodes (rewrites the store; needs --yes)",
                            description="Delete episodes by index (e.g. 3 7 10:12). The store is rewritten into a new "
                            "directory and swapped in; image chunks are linked, not re-encoded.")
    parser.add_argument("path", help="store path")
    parser.add_argument("episodes", nargs="+", help="episode indices or START:STOP ranges")
    parser.add_argument("--yes", action="store_true", help="really delete (without it, only show what would go)")
    add_json_flag(parser)
    parser.set_defaults(func=run_delete)

    parser = sub.add_parser("view", help="show an episode (mp4, PNG grid, or Rerun), or the live graph in Rerun",
                            description="Write every camera stream of one episode side by side, as an mp4 video "
                            "(OUT.mp4) or a PNG grid of evenly spaced frames (OUT.png); or, with --rerun, show the "
                            "episode in the Rerun viewer the way lerobot-dataset-visualize does (cameras, depth, "
                            "state, actions, rewards on one timeline; --out OUT.rrd saves the recording instead, "
                            "--connect URL sends it to a running viewer). --rerun --live shows the cell's live "
                            "graph instead of a store, subscribing to its topics.")
    parser.add_argument("path", nargs="?", help="store path (not with --live)")
    parser.add_argument("--episode", type=int, default=0, help="episode index (default: %(default)s; -1 is the last)")
    parser.add_argument("--out", help="output file: .mp4, .png, or .rrd (a Rerun recording)")
    parser.add_argument("--rerun", action="store_true", help="show it in Rerun (needs rerun-sdk: robolearn[rerun])")
    parser.add_argument("--connect", metavar="URL", help="with --rerun: a running viewer, e.g. rerun+http://127.0.0.1:9876/proxy")
    parser.add_argument("--live", action="store_true", help="with --rerun: the live graph of --cell, not a store")
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="with --live: the cell (default: %(default)s)")
    add_overrides_flag(parser)
    parser.add_argument("--duration-s", type=float, default=None,
                        help="with --live: stop after this many seconds (default: until Ctrl-C)")
    add_json_flag(parser)
    parser.set_defaults(func=run_view)

    parser = sub.add_parser("export", help="export to a LeRobotDataset v3 directory or a rosbag2 MCAP bag",
                            description="Export every episode to the LeRobotDataset v3.0 layout as LeRobot 0.6's own "
                            "writer lays it out (parquet + AV1 mp4 + depth videos + meta/info.json and stats; "
                            "LeRobot's resume, merge and delete work on it), or to a rosbag2 MCAP bag that plays like "
                            "a recording of the live graph (the store's stamps as log and header times, the live "
                            "topic names, CameraInfo, /tf, episodes marked on /robolearn/episode).")
    parser.add_argument("path", help="store path")
    parser.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="lerobot or mcap")
    parser.add_argument("--out", required=True, help="new output directory")
    parser.add_argument("--no-depth", action="store_true",
                        help="lerobot: leave the depth_* streams out (default: LeRobot depth videos, is_depth_map)")
    add_json_flag(parser)
    parser.set_defaults(func=run_export)

    parser = sub.add_parser("import", help="import a LeRobotDataset, a robolearn MCAP export or any rosbag2 recording",
                            description="Create a new store from a LeRobotDataset v3.0 directory (lerobot), a bag "
                            "written by `robolearn data export --format mcap` (mcap), or any ROS 2 recording (rosbag2: "
                            "bag directories, MCAP or sqlite3, or bare .mcap/.db3 files, with --map naming which "
                            "topic fills which store key; every stream is resampled onto the map's control rate, "
                            "see configs/maps/franka_realsense.yaml).")
    parser.add_argument("source", nargs="+", help="the dataset or bag; rosbag2: one or more recordings (with "
                        "episodes.by: bag, each is one episode)")
    parser.add_argument("--format", choices=IMPORT_FORMATS, required=True, help="lerobot, mcap or rosbag2")
    parser.add_argument("--map", help="rosbag2: the topic map YAML (required for rosbag2)")
    parser.add_argument("--out", required=True, help="new store path")
    add_json_flag(parser)
    parser.set_defaults(func=run_import)

    parser = sub.add_parser("resize", help="derive a copy with camera frames at the training resolution",
                            description="Write a new store with every RGB and depth stream resized to HxW (RGB: "
                            "antialiased bilinear, depth: nearest); low-dimensional data and metadata are copied.")
    parser.add_argument("path", help="store path")
    parser.add_argument("--size", required=True, metavar="HxW", help="new frame size in pixels, e.g. 96x96")
    parser.add_argument("--out", required=True, help="new store path")
    parser.add_argument("--quality", type=int, default=None, help="JPEG quality of the copy (default: the source's)")
    add_json_flag(parser)
    parser.set_defaults(func=run_resize)

    parser = sub.add_parser("stats", help="compute and store normalization statistics",
                            description="Compute mean, std, min, max and 1%/99% quantiles of the low-dimensional "
                            "keys and store them in the store (meta/.zattrs 'stats'), where training reads them.")
    parser.add_argument("path", help="store path")
    add_json_flag(parser)
    parser.set_defaults(func=run_stats)


def _input_errors(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report a bad store, bad input file or bad argument as one ``ConfigError`` line (the store and
    the converters word their errors to name the problem and the fix), not a traceback."""

    @functools.wraps(run)
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ConfigError:
            raise
        except (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError, KeyError,
                IndexError) as err:
            raise ConfigError(f"data {args.data_command}", "", str(err.args[0] if err.args else err)) from err

    return guarded


def _open(path: str, mode: str = "r") -> Any:
    from robolearn.store import DemoStore

    return DemoStore.open(path, mode=mode)


def _progress(total: int | None, desc: str, unit: str = "ep") -> tuple[Any, Callable[[int], None]]:
    """A progress bar (on a terminal only) and a callback taking the number done so far."""
    bar = tqdm(total=total, desc=desc, unit=unit, disable=None)

    def update(done: int) -> None:
        bar.update(done - bar.n)

    return bar, update


def _size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def summarize(store: Any) -> dict[str, Any]:
    """What ``robolearn data info`` prints."""
    metas = store.episode_metas()
    keys = {}
    for key in store.keys:
        array = store.array(key)
        compressor = (array.compressors[0].get_config() if array.compressors else {}).get("id", "none")
        keys[key] = {"shape": list(array.shape[1:]), "dtype": str(array.dtype), "compressor": compressor}
    return {
        "path": str(store.path), "schema_version": store.attrs.get("schema_version"), "n_episodes": store.n_episodes,
        "n_steps": store.n_steps, "keys": keys, "tasks": dict(Counter(m["task"] for m in metas)),
        "sources": dict(Counter(m["source"] for m in metas)),
        "success_rate": (sum(m["success"] for m in metas) / len(metas)) if metas else None,
        "mean_length": (store.n_steps / store.n_episodes) if store.n_episodes else None,
        "cell": (store.cell_config or {}).get("name"),
        "cameras": sorted(name for name in store.cameras or {} if f"rgb_{name}" in keys or f"depth_{name}" in keys),
        "jpeg_quality": store.jpeg_quality, "size_mb": round(_size_bytes(store.path) / 1e6, 3),
    }


@_input_errors
def run_info(args: argparse.Namespace) -> int:
    summary = summarize(_open(args.path))
    if not args.json:
        for key, spec in summary["keys"].items():
            print(f"data/{key}: {tuple(spec['shape'])} {spec['dtype']} [{spec['compressor']}]")
    emit(summary, args.json)
    return 0


@_input_errors
def run_episodes(args: argparse.Namespace) -> int:
    store = _open(args.path)
    rows = [{"index": i, **{k: m.get(k) for k in ("task", "source", "operator", "success", "length", "duration_s")}}
            for i, m in enumerate(store.episode_metas())]
    if not args.json:
        print(f"{'index':>5} {'task':<14} {'source':<7} {'operator':<10} {'success':<7} {'steps':>6} {'duration_s':>10}")
        for r in rows:
            print(f"{r['index']:>5} {r['task']:<14} {r['source']:<7} {r['operator']:<10} {r['success']!s:<7} "
                  f"{r['length']:>6} {r['duration_s']:>10.2f}")
    emit({"path": str(store.path), "n_episodes": len(rows), "episodes": rows}, args.json)
    return 0


def parse_episodes(items: list[str], n_episodes: int) -> list[int]:
    """``["3", "7", "10:12"]`` → ``[3, 7, 10, 11]``; a clear error for anything out of range."""
    chosen: list[int] = []
    for item in items:
        start, sep, stop = item.partition(":")
        try:
            chosen += list(range(n_episodes))[slice(int(start) if start else None, int(stop) if stop else None)] \
                if sep else [int(item)]
        except ValueError as err:
            raise ConfigError("episodes", item, "expected an index such as 3 or a range such as 10:12") from err
    bad = [i for i in chosen if not -n_episodes <= i < n_episodes]
    if bad:
        raise ConfigError("episodes", str(bad), f"out of range: the store has {n_episodes} episodes")
    return sorted({i % n_episodes for i in chosen})


@_input_errors
def run_delete(args: argparse.Namespace) -> int:
    store = _open(args.path, mode="a" if args.yes else "r")
    chosen = parse_episodes(args.episodes, store.n_episodes)
    if not args.yes:
        emit({"path": str(store.path), "would_delete": chosen, "deleted": [],
              "hint": "add --yes to delete these episodes"}, args.json)
        return 2
    bar, update = _progress(store.n_episodes - len(chosen), "delete (copying the kept episodes)")
    with bar, store:
        remaining = store.delete_episodes(chosen, progress=update)
    emit({"path": str(store.path), "deleted": chosen, "n_episodes": remaining, "n_steps": store.n_steps}, args.json)
    return 0


@_input_errors
def run_view(args: argparse.Namespace) -> int:
    suffix = Path(args.out).suffix.lower() if args.out else ""
    rerun = args.rerun or suffix == ".rrd"
    if args.out and suffix not in (".mp4", ".png", ".rrd"):
        raise ConfigError("--out", args.out, "write an .mp4 video, a .png grid or an .rrd Rerun recording")
    if rerun and args.out and suffix != ".rrd":
        raise ConfigError("--out", args.out, "with --rerun, --out saves a Rerun recording: name it .rrd")
    if not rerun and not args.out:
        raise ConfigError("--out", "", "name an OUT.mp4 or OUT.png, or view in Rerun with --rerun")
    if args.live:
        if not rerun or args.path:
            raise ConfigError("--live", "", "shows the live graph in Rerun: use --rerun --live without a store path")
        return _view_live(args)
    if not args.path:
        raise ConfigError("path", "", "name the store to view (or --rerun --live for the live graph)")
    store = _open(args.path)
    if not -store.n_episodes <= args.episode < store.n_episodes:
        raise ConfigError("--episode", str(args.episode), f"out of range: the store has {store.n_episodes} episodes")
    episode = args.episode % store.n_episodes
    if rerun:
        from robolearn.store.view_rerun import view_episode_rerun

        emit(view_episode_rerun(store, episode, out=args.out, connect=args.connect), args.json)
        return 0
    from robolearn.store.view import view_episode

    emit(view_episode(store, episode, args.out), args.json)
    return 0


def _view_live(args: argparse.Namespace) -> int:
    from robolearn.cell import load_cell
    from robolearn.ros import Node
    from robolearn.ros.nodes.rerun_viewer import RerunViewerNode
    from robolearn.ros.zenoh_backend import ZenohSettings
    from robolearn.store.view_rerun import open_recording

    cell = load_cell(args.cell, args.overrides)
    recording = open_recording(f"{cell.name}/live", args.out, args.connect)
    with Node("rerun_viewer", backend=cell.ros.backend, settings=ZenohSettings.from_cell(cell)) as node:
        viewer = RerunViewerNode(node, cell, recording)
        node.spin(timeout_s=args.duration_s)
    recording.flush()
    emit({"live": cell.name, "logged": viewer.logged, "out": args.out}, args.json)
    return 0


@contextmanager
def _new_output(path: str) -> Iterator[None]:
    """Refuse an existing ``--out`` (nothing is overwritten) and remove the half-written output when
    the command fails."""
    if Path(path).exists():
        raise ConfigError("--out", path, "already exists; pick a new path (nothing is overwritten)")
    try:
        yield
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


@_input_errors
def run_export(args: argparse.Namespace) -> int:
    store = _open(args.path)
    with _new_output(args.out):
        if args.format == "lerobot":
            from robolearn.store.convert_lerobot import export_lerobot

            bar, update = _progress(store.n_episodes, "export lerobot")
            with bar:
                result = export_lerobot(store, args.out, depth=not args.no_depth, progress=update)
        else:
            from robolearn.ros.bag_store import export_mcap

            bar, update = _progress(store.n_episodes, "export mcap")
            with bar:
                result = export_mcap(store, args.out, progress=update)
    emit({"format": args.format, **result}, args.json)
    return 0


@_input_errors
def run_import(args: argparse.Namespace) -> int:
    for source in args.source:
        if not Path(source).exists():
            raise ConfigError("source", source, "no such file or directory")
    if args.format == "rosbag2" and not args.map:
        raise ConfigError("--map", "", "--format rosbag2 needs a topic map (see configs/maps/franka_realsense.yaml)")
    if args.format != "rosbag2" and (len(args.source) > 1 or args.map):
        raise ConfigError("source", " ".join(args.source), f"--format {args.format} imports one source and no --map")
    with _new_output(args.out):
        bar, update = _progress(None, f"import {args.format}")
        with bar:
            if args.format == "lerobot":
                from robolearn.store.convert_lerobot import import_lerobot

                store = import_lerobot(args.source[0], args.out, progress=update)
            elif args.format == "mcap":
                from robolearn.ros.bag_store import import_mcap

                store = import_mcap(args.source[0], args.out, progress=update)
            else:
                from robolearn.ros.bag_import import import_rosbag2

                store = import_rosbag2(args.source, args.map, args.out, progress=update)
    metas = store.episode_metas()
    unmarked = [i for i, m in enumerate(metas) if m.get("success_marked") is False]
    result = {"format": args.format, "source": args.source if len(args.source) > 1 else args.source[0],
              "path": str(store.path), "n_episodes": store.n_episodes, "n_steps": store.n_steps, "keys": store.keys,
              "steps_dropped": sum(int(m.get("steps_dropped", 0)) for m in metas), "episodes_without_success_mark": unmarked}
    if unmarked:
        print(f"note: {len(unmarked)} of {store.n_episodes} episodes have no success mark (the source records none) and "
              "are stored with success: false, success_marked: false; `robolearn train --algo bc` takes them with "
              "--set successful_only=false", file=sys.stderr)
    emit(result, args.json)
    return 0


@_input_errors
def run_resize(args: argparse.Namespace) -> int:
    from robolearn.store.resize import resize_store

    height, sep, width = args.size.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or not int(height) or not int(width):
        raise ConfigError("--size", args.size, "expected HxW in pixels, e.g. 96x96")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise ConfigError("--quality", str(args.quality), "must be in 1..100")
    store = _open(args.path)
    with _new_output(args.out):
        bar, update = _progress(store.n_episodes, f"resize to {height}x{width}")
        with bar:
            out = resize_store(store, args.out, int(height), int(width), jpeg_quality=args.quality, progress=update)
    emit({"path": str(out.path), "n_episodes": out.n_episodes, "n_steps": out.n_steps,
          "size_px": [int(height), int(width)]}, args.json)
    return 0


@_input_errors
def run_stats(args: argparse.Namespace) -> int:
    with _open(args.path, mode="a") as store:
        stats = store.stats()
    emit({"path": str(store.path), "n_steps": store.n_steps, "stats": stats}, args.json)
    return 0
