"""Success-labeled frames from a DemoStore, and the metrics a reward model is judged by.

Labels: ``success[t]`` in the store is the ground truth (twin) or the operator's mark (teleop)
*after* action t, i.e. it describes observation t+1. So frame t+1 is labeled ``success[t]`` and
frame 0 is labeled from the reset (false). A store without per-step marks falls back to the
episode's ``success`` meta: its last ``tail_frames`` frames are positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robolearn.errors import DataError


@dataclass
class LabeledFrames:
    """Frames of some episodes with success labels.

    images: camera name → ``(N, H, W, 3) uint8``; labels: ``(N,) bool``; episode: ``(N,) int64``
    store episode index of each frame; step: ``(N,) int64`` index within its episode.
    """

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episode: np.ndarray
    step: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> LabeledFrames:
        return LabeledFrames({k: v[mask] for k, v in self.images.items()}, self.labels[mask],
                             self.episode[mask], self.step[mask])


def store_cameras(store: Any) -> list[str]:
    """Camera names with color images in the store (``rgb_<name>`` keys), sorted."""
    return sorted(k[len("rgb_"):] for k in store.keys if k.startswith("rgb_"))


def episode_labels(data: dict[str, np.ndarray], meta: dict, tail_frames: int = 5) -> np.ndarray:
    """``(T,) bool`` success label of each stored observation of one episode (module docstring)."""
    length = len(data["action"]) if "action" in data else len(next(iter(data.values())))
    labels = np.zeros(length, dtype=bool)
    if "success" in data:
        labels[1:] = np.asarray(data["success"][:-1], dtype=bool)
    elif meta.get("success"):
        labels[-tail_frames:] = True
    return labels


NO_SUCCESS_FRAMES = (
    "A success frame is an observation after a step marked success, and an episode that ends on its first "
    "success step (the task's terminate_on_success, on by default) stores no observation after it. Record "
    "episodes that run past success: on the twin, collect with a task YAML that sets `terminate_on_success: "
    "false` (a copy of configs/tasks/<task>.yaml, passed as `robolearn collect --task FILE`); on the real cell, "
    "keep recording a few steps after the success with each of them marked success (per-step `success` marks)."
)


def no_success_frames_reason(store: Any, n_frames: int) -> str:
    """Why none of a store's ``n_frames`` frames is labeled success, and how to record data that has some."""
    n_episodes = store.n_episodes
    has_marks = "success" in store.keys
    succeeded = ended_on_success = 0
    for index in range(n_episodes):
        if has_marks:
            marks = np.asarray(store.episode(index, ["success"])["success"], dtype=bool)
            succeeded += bool(marks.any())
            ended_on_success += bool(len(marks) and marks[-1] and not marks[:-1].any())
        else:
            succeeded += bool(store.episode_meta(index).get("success"))
    head = f"no frame of the {n_frames} is labeled success, and a success classifier needs both classes: "
    if ended_on_success:
        return head + (f"{ended_on_success} of the {n_episodes} episodes reach success only on their last step. "
                       + NO_SUCCESS_FRAMES)
    if not succeeded:
        return head + f"none of the {n_episodes} episodes succeeded; record successful episodes too. " + NO_SUCCESS_FRAMES
    return head + NO_SUCCESS_FRAMES


def labeled_frames(store: Any, cameras: list[str] | None = None, episodes: list[int] | None = None,
                   tail_frames: int = 5) -> LabeledFrames:
    """Collect the color frames of ``cameras`` (default: all) from ``episodes`` (default: all)."""
    cameras = cameras or store_cameras(store)
    missing = [c for c in cameras if f"rgb_{c}" not in store.keys]
    if missing or not cameras:
        raise DataError(f"the store has no color images for cameras {missing or cameras}; it has "
                         f"{store_cameras(store) or 'none'} (record with cameras on)")
    episodes = list(range(store.n_episodes)) if episodes is None else list(episodes)
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    labels, episode_ids, steps = [], [], []
    for index in episodes:
        data = store.episode(index)
        episode_labels_ = episode_labels(data, store.episode_meta(index), tail_frames)
        for camera in cameras:
            images[camera].append(np.asarray(data[f"rgb_{camera}"]))
        labels.append(episode_labels_)
        episode_ids.append(np.full(len(episode_labels_), index, dtype=np.int64))
        steps.append(np.arange(len(episode_labels_), dtype=np.int64))
    if not labels:
        raise DataError("no episodes to read frames from")
    return LabeledFrames({c: np.concatenate(v) for c, v in images.items()}, np.concatenate(labels),
                         np.concatenate(episode_ids), np.concatenate(steps))


def binary_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float | int]:
    """Accuracy, false-positive rate (of the true negatives, how many were called success) and
    false-negative rate (of the true positives, how many were missed)."""
    predicted = np.asarray(predicted, dtype=bool)
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    false_pos = int((predicted & ~labels).sum())
    false_neg = int((~predicted & labels).sum())
    return {
        "accuracy": float((predicted == labels).mean()) if len(labels) else float("nan"),
        "false_positive_rate": false_pos / n_neg if n_neg else 0.0,
        "false_negative_rate": false_neg / n_pos if n_pos else 0.0,
        "n_frames": len(labels),
        "n_positive": n_pos,
        "n_negative": n_neg,
    }


def split_episodes(episodes: np.ndarray, labels: np.ndarray, val_fraction: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split episode indices into (train, validation), stratified by whether an episode has any
    success frame, so both sides see successes (and the frames just before them) when possible."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for has_success in (True, False):
        group = np.array(sorted({int(e) for e in np.unique(episodes)
                                 if bool(labels[episodes == e].any()) == has_success}), dtype=np.int64)
        rng.shuffle(group)
        n_val = int(round(len(group) * val_fraction))
        n_val = min(max(n_val, 1), len(group) - 1) if len(group) > 1 and val_fraction > 0 else 0
        val.append(group[:n_val])
        train.append(group[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
