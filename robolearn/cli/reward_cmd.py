"""``robolearn reward``: train, evaluate and apply learned reward models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from robolearn.cli.common import add_json_flag, emit
from robolearn.config import ConfigError

SPEC_EXAMPLES = "oracle, classifier:DIR, preference:DIR, clip:YAML, vlm:YAML, or a checkpoint DIR"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reward", help="train, evaluate and apply reward models (success classifier, CLIP, VLM judge, preferences)",
        description="Reward models that replace hand-written reward code: a success classifier on a frozen "
        "CLIP/SigLIP encoder, zero-shot CLIP similarity, a VLM judge over an OpenAI-compatible endpoint, and a "
        "Bradley-Terry reward trained from VLM preferences.",
    )
    sub = parser.add_subparsers(dest="reward_command", metavar="SUBCOMMAND", required=True)

    train = sub.add_parser(
        "train", help="train a success classifier from a store's success labels",
        description="Train a success classifier (frozen encoder -> Dense 256 -> Dropout -> LayerNorm -> ReLU -> "
        "Dense 1) on a store's frames. Labels: per-step `success` marks (frame t+1 gets success[t]), else the "
        "last frames of episodes marked successful. Record failed episodes too. The decision threshold is "
        "calibrated on held-out episodes for the target false-positive rate.",
    )
    train.add_argument("--store", required=True, help="demonstration store (zarr directory) with camera images")
    train.add_argument("--backbone", required=True,
                       help="CLIP/SigLIP encoder: a directory saved with save_pretrained, or a hub name when online "
                       "(e.g. openai/clip-vit-base-patch32, google/siglip-base-patch16-224)")
    train.add_argument("--out", required=True, help="checkpoint directory to write (model.safetensors + config.json)")
    train.add_argument("--cameras", default="", help="comma-separated cameras to use (default: every rgb_* in the store)")
    train.add_argument("--steps", type=int, default=2000, help="head updates (default 2000)")
    train.add_argument("--target-fpr", type=float, default=0.02,
                       help="highest false-positive rate allowed on held-out episodes when picking the threshold")
    train.add_argument("--seed", type=int, default=0)
    add_json_flag(train)
    train.set_defaults(func=run_train)

    evaluate = sub.add_parser(
        "eval", help="accuracy, false-positive and false-negative rates of a reward model on a store",
        description="Score every frame of a store with a reward model and compare its success calls with the "
        "store's ground truth (twin episodes) or operator marks.",
    )
    evaluate.add_argument("--reward", required=True,
                          help="reward model: classifier:DIR, preference:DIR, clip:YAML, vlm:YAML, or a checkpoint DIR")
    evaluate.add_argument("--store", required=True, help="store to evaluate on (use episodes not trained on)")
    evaluate.add_argument("--episodes", default="", help="episode range START:STOP (default: all)")
    add_json_flag(evaluate)
    evaluate.set_defaults(func=run_eval)

    calibrate = sub.add_parser(
        "calibrate", help="measure a reward model's success threshold on a store's success-labeled frames",
        description="Score every frame of a store with success labels (twin ground truth or operator marks) and "
        "report the lowest success setting whose false-positive rate on them is at most --target-fpr, with the "
        "metrics there: `threshold` on success_prob (not below 0.5) for the classifier, preference and VLM models, "
        "`success_reward` on the reward R for the CLIP reward (which needs it; leave it unset in the YAML to "
        "measure it). Put the value in the reward YAML; then evaluate on other episodes with `reward eval`.",
    )
    calibrate.add_argument("--reward", required=True, help=f"reward model: {SPEC_EXAMPLES}")
    calibrate.add_argument("--store", required=True, help="store with success and non-success frames")
    calibrate.add_argument("--episodes", default="", help="episode range START:STOP (default: all)")
    calibrate.add_argument("--target-fpr", type=float, default=0.02, help="highest false-positive rate allowed (default 0.02)")
    add_json_flag(calibrate)
    calibrate.set_defaults(func=run_calibrate)

    relabel = sub.add_parser(
        "relabel", help="copy a store with its rewards replaced by a reward model's (for offline RL)",
        description="Write a new store whose `reward` comes from the reward model (reward[t] scores the "
        "observation after action t); the original reward is kept as `reward_env`. The last step's next observation "
        "is not stored: success-call models (classifier, vlm) take the store's success mark for it, graded models "
        "(clip, preference) score the last stored observation, with a warning. The source is not modified.",
    )
    relabel.add_argument("--reward", required=True, help=f"reward model: {SPEC_EXAMPLES}")
    relabel.add_argument("--store", required=True, help="source store")
    relabel.add_argument("--out", required=True, help="new store to write (must not exist)")
    add_json_flag(relabel)
    relabel.set_defaults(func=run_relabel)

    node = sub.add_parser(
        "node", help="run the reward node on the ROS graph (scores camera images at the control rate)",
        description="Subscribe to the cell's camera images, score each fresh set with the reward model and "
        "publish [reward, success_prob, success] (std_msgs/Float32MultiArray) on /robolearn/reward until Ctrl-C. "
        "With --mark-success, the first success call of an episode also publishes EpisodeControl SUCCESS, so "
        "the recorder marks the episode as the teleop's success button would.",
    )
    node.add_argument("--reward", required=True, help="reward model: classifier:DIR, preference:DIR, clip:YAML, vlm:YAML")
    node.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    node.add_argument("--mark-success", action="store_true", help="publish EpisodeControl SUCCESS on success")
    node.add_argument("--backend", default="zenoh", choices=("zenoh", "rclpy", "auto"), help="ROS backend")
    node.add_argument("--router", default=None, help="zenoh router endpoint (default tcp/localhost:7447)")
    add_json_flag(node)
    node.set_defaults(func=run_node)

    prefs = sub.add_parser(
        "train-preference", help="RL-VLM-F: ask a VLM judge to compare frames, fit a Bradley-Terry reward",
        description="Sample pairs of frames from a store, ask a VLM judge (OpenAI-compatible endpoint) which is "
        "closer to the goal, and fit an ensemble of 3 Bradley-Terry reward models on frozen encoder features.",
    )
    prefs.add_argument("--store", required=True, help="store with camera images")
    prefs.add_argument("--judge", required=True, help="judge YAML (base_url, model, timeout_s, cache_dir, ...)")
    prefs.add_argument("--task", required=True, help="the goal in words, e.g. 'the red cube is lifted'")
    prefs.add_argument("--backbone", required=True, help="CLIP/SigLIP encoder directory or hub name")
    prefs.add_argument("--camera", default="", help="camera to judge (default: the first in the store)")
    prefs.add_argument("--pairs", type=int, default=500, help="pairs to ask about (default 500)")
    prefs.add_argument("--steps", type=int, default=1000, help="Bradley-Terry updates (default 1000)")
    prefs.add_argument("--target-fpr", type=float, default=0.02,
                       help="calibrate the success threshold on the store's success-labeled frames for this "
                       "false-positive rate (when the store has both classes)")
    prefs.add_argument("--out", required=True, help="checkpoint directory to write")
    prefs.add_argument("--seed", type=int, default=0)
    add_json_flag(prefs)
    prefs.set_defaults(func=run_train_preference)


def _open_store(path: str) -> Any:
    from robolearn.store import DemoStore

    if not Path(path).exists():
        raise ConfigError("--store", path, "no such store; record one with `robolearn record` or check the path")
    return DemoStore.open(path, mode="r")


def _episode_range(text: str, n_episodes: int) -> list[int] | None:
    if not text:
        return None
    start, sep, stop = text.partition(":")
    try:
        episodes = list(range(n_episodes))[slice(int(start) if start else None, int(stop) if stop else None)] if sep \
            else [int(start)]
    except ValueError as err:
        raise ConfigError("--episodes", text, "expected START:STOP, e.g. 40:50") from err
    if not episodes or max(episodes) >= n_episodes:
        raise ConfigError("--episodes", text, f"selects no episode of the {n_episodes} in the store")
    return episodes


def run_train(args: argparse.Namespace) -> int:
    from robolearn.reward.classifier import ClassifierTrainConfig, save_classifier, train_from_store

    store = _open_store(args.store)
    cameras = [c for c in args.cameras.split(",") if c]
    config = ClassifierTrainConfig(backbone=args.backbone, cameras=cameras, steps=args.steps,
                                   target_fpr=args.target_fpr, seed=args.seed)
    model, report = train_from_store(store, config, progress=True)
    save_classifier(model, args.out)
    emit({"checkpoint": str(args.out), "cameras": model.cameras, **report}, args.json)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from robolearn.reward import load_reward_model, parse_reward_spec
    from robolearn.reward.metrics import evaluate_on_store

    if parse_reward_spec(args.reward).type == "oracle":
        raise ConfigError("--reward", "oracle", "the oracle reads the live twin and is the ground truth itself; "
                          "evaluate a learned reward model against the store instead")
    store = _open_store(args.store)
    model = load_reward_model(args.reward)
    metrics = evaluate_on_store(model, store, _episode_range(args.episodes, store.n_episodes), progress=True)
    emit({"reward": args.reward, "store": args.store, **metrics}, args.json)
    return 0


def run_relabel(args: argparse.Namespace) -> int:
    from robolearn.reward import load_reward_model
    from robolearn.reward.metrics import relabel_store

    if Path(args.out).exists():
        raise ConfigError("--out", args.out, "already exists; relabeling never overwrites a store, pick a new path")
    store = _open_store(args.store)
    result = relabel_store(load_reward_model(args.reward), store, args.out, spec=args.reward, progress=True)
    for warning in result["warnings"]:
        print(f"robolearn: warning: {warning}", file=sys.stderr)
    emit({"reward": args.reward, **result}, args.json)
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    import dataclasses

    from robolearn.reward import parse_reward_spec
    from robolearn.reward.metrics import calibrate_on_store

    config = parse_reward_spec(args.reward)
    if config.type == "oracle":
        raise ConfigError("--reward", "oracle", "the oracle is the ground truth itself; calibrate a learned reward model")
    if config.type == "clip" and config.success_reward is None:
        config = dataclasses.replace(config, success_reward=0.0)  # R does not depend on it; it is what we measure
    store = _open_store(args.store)
    model, episodes = config.create(), _episode_range(args.episodes, store.n_episodes)
    try:
        result = calibrate_on_store(model, store, args.target_fpr, episodes, progress=True)
    except ValueError as err:
        raise ConfigError("--store", args.store, str(err)) from err
    where = "the reward YAML" if config.type in ("clip", "vlm") else f"a reward YAML (type: {config.type}, checkpoint: ...)"
    emit({"reward": args.reward, "store": args.store, **result,
          "hint": f"set `{result['setting']}: {result['value']:.9g}` in {where}"}, args.json)
    return 0


def run_train_preference(args: argparse.Namespace) -> int:
    from robolearn.config import from_dict, read_yaml
    from robolearn.reward.data import labeled_frames, store_cameras
    from robolearn.reward.preference import (
        PreferenceTrainConfig,
        calibrate_preference_threshold,
        collect_preferences,
        save_preference_reward,
        train_preference_reward,
    )
    from robolearn.reward.vlm_judge import JudgeClient, JudgeConfig

    store = _open_store(args.store)
    camera = args.camera or (store_cameras(store) or [""])[0]
    judge = JudgeClient(from_dict(JudgeConfig, read_yaml(args.judge), source=args.judge))
    frames = labeled_frames(store, [camera])
    pairs, labels, unsure = collect_preferences(frames.images[camera], judge, args.task, args.pairs, args.seed,
                                                progress=True)
    if not len(pairs):
        raise ConfigError("--judge", args.judge, f"the judge could not tell any of {args.pairs} pairs apart")
    config = PreferenceTrainConfig(backbone=args.backbone, cameras=[camera], steps=args.steps, seed=args.seed)
    model = train_preference_reward(frames.images, pairs, labels, config, progress=True)
    calibration = calibrate_preference_threshold(model, frames, args.target_fpr)
    save_preference_reward(model, args.out)
    emit({"checkpoint": str(args.out), "n_pairs": len(pairs), "n_unsure": unsure,
          "judge_requests": judge.n_requests, "judge_cache_hits": judge.n_cache_hits, **calibration}, args.json)
    return 0


def run_node(args: argparse.Namespace) -> int:
    """``robolearn reward node`` is ``robolearn node reward`` with the reward model as a flag."""
    from robolearn.cell import load_cell
    from robolearn.cli.node_host import run_node as run_named_node
    from robolearn.ros.zenoh_backend import ZenohSettings

    cell = load_cell(args.cell)
    params = {"reward": args.reward, "mark_success": str(args.mark_success).lower(), "node_name": "robolearn_reward"}
    summary = run_named_node("reward", cell, params, args.backend, ZenohSettings.from_cell(cell, router_endpoint=args.router))
    emit(summary, args.json)
    return 0
