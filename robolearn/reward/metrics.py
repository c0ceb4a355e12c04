"""Judge a reward model against a store's ground truth, and relabel a store with learned rewards.

Both read frames episode by episode. Models with ``score_batch({camera: images})`` (classifier,
CLIP similarity, preference) are scored a batch at a time; others (the VLM judge) one
observation at a time. A frame counts as a predicted success when ``success_prob`` reaches the
model's ``threshold`` (``robolearn.interfaces.success_threshold``; 0.5 when it has none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robolearn.errors import DataError
from robolearn.interfaces import RewardModel, success_threshold
from robolearn.reward.data import binary_metrics, episode_labels

OBSERVATION_PREFIXES = ("state", "object_state", "rgb_", "depth_")


class RewardMonitor:
    """Counts a reward model's success calls against ground truth online (e.g. the twin's
    ``info["success"]`` during fine-tuning): ``update`` per step, ``metrics`` any time."""

    def __init__(self) -> None:
        self.counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}

    def update(self, predicted: bool, actual: bool) -> None:
        key = ("t" if predicted == actual else "f") + ("p" if predicted else "n")
        self.counts[key] += 1

    def metrics(self) -> dict[str, float | int]:
        """accuracy, false_positive_rate, false_negative_rate and the frame counts so far."""
        c = self.counts
        n = sum(c.values())
        negatives, positives = c["tn"] + c["fp"], c["tp"] + c["fn"]
        return {
            "accuracy": (c["tp"] + c["tn"]) / n if n else float("nan"),
            "false_positive_rate": c["fp"] / negatives if negatives else 0.0,
            "false_negative_rate": c["fn"] / positives if positives else 0.0,
            "n_frames": n, "n_positive": positives, "n_negative": negatives,
        }


def score_episode(model: RewardModel, data: dict[str, np.ndarray], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Rewards and success probabilities ``(T,)`` of each stored observation of one episode."""
    length = len(data["action"])
    if hasattr(model, "score_batch"):
        cameras = [k[len("rgb_"):] for k in data if k.startswith("rgb_")]
        rewards, probs = [], []
        for start in range(0, length, batch_size):
            r, p = model.score_batch({c: data[f"rgb_{c}"][start:start + batch_size] for c in cameras})
            rewards.append(r)
            probs.append(p)
        return np.concatenate(rewards).astype(np.float32), np.concatenate(probs).astype(np.float32)
    keys = [k for k in data if k.startswith(OBSERVATION_PREFIXES)]
    scores = np.array([model({k: data[k][t] for k in keys}) for t in range(length)], dtype=np.float32)
    return scores[:, 0], scores[:, 1]


def evaluate_on_store(model: RewardModel, store: Any, episodes: list[int] | None = None,
                      progress: bool = False) -> dict[str, Any]:
    """Accuracy, false-positive and false-negative rates of the model's success calls against the
    store's success labels (``robolearn.reward.data``), over ``episodes`` (default: all)."""
    threshold = success_threshold(model)
    episodes = list(range(store.n_episodes)) if episodes is None else episodes
    predicted, labels = [], []
    for index in tqdm(episodes, desc="scoring episodes", disable=not progress):
        data = store.episode(index)
        _, probs = score_episode(model, data)
        predicted.append(probs >= threshold)
        labels.append(episode_labels(data, store.episode_meta(index)))
    if not labels:
        raise DataError("the store has no episodes to evaluate on")
    return {**binary_metrics(np.concatenate(predicted), np.concatenate(labels)), "threshold": threshold,
            "n_episodes": len(episodes)}


def calibrate_on_store(model: RewardModel, store: Any, target_fpr: float = 0.02, episodes: list[int] | None = None,
                       progress: bool = False) -> dict[str, Any]:
    """The model's success setting measured on a store's success-labeled frames: the lowest value
    whose false-positive rate on them is at most ``target_fpr``, with the metrics there.

    The setting is ``threshold`` on ``success_prob`` (never below 0.5, as for the classifier) for
    most models, and ``success_reward`` on the reward R for the CLIP reward (its ``calibrates``).
    Evaluate the result on other episodes than the ones it was calibrated on."""
    from robolearn.reward.classifier import calibrate_threshold

    setting = getattr(model, "calibrates", "threshold")
    episodes = list(range(store.n_episodes)) if episodes is None else episodes
    scores, labels = [], []
    for index in tqdm(episodes, desc="scoring episodes", disable=not progress):
        data = store.episode(index)
        rewards, probs = score_episode(model, data)
        scores.append(rewards if setting == "success_reward" else probs)
        labels.append(episode_labels(data, store.episode_meta(index)))
    if not labels:
        raise DataError("the store has no episodes to calibrate on")
    score, label = np.concatenate(scores), np.concatenate(labels)
    if label.all() or not label.any():
        raise DataError(f"calibration needs success and non-success frames; {int(label.sum())} of {len(label)} "
                         "are labeled success")
    value = calibrate_threshold(score, label, target_fpr, floor=None if setting == "success_reward" else 0.5)
    return {"setting": setting, "value": value, "target_fpr": target_fpr, "n_episodes": len(episodes),
            **binary_metrics(score >= value, label)}


def _last_step_reward(model: RewardModel, data: dict[str, np.ndarray], meta: dict,
                      last_frame_reward: float) -> tuple[float, str]:
    """The reward of an episode's last step, whose next observation is not stored, and its source.

    For a model whose reward is its success call (1.0 or 0.0: the classifier, the VLM judge), the
    store's own success mark of that step answers it exactly (``success[-1]``, else the episode's
    ``success``). A model with a graded reward (CLIP, preference) has no reward for an observation
    it cannot see, so the last stored observation's reward stands in for it."""
    if getattr(model, "reward_is_success_call", False):
        if "success" in data:
            return float(bool(data["success"][-1])), "success_mark"
        if "success" in meta:
            return float(bool(meta["success"])), "episode_success"
    return last_frame_reward, "last_frame"


def relabel_store(model: RewardModel, source: Any, destination: str | Path, spec: str = "",
                  progress: bool = False) -> dict[str, Any]:
    """Copy ``source`` into a new store at ``destination`` with ``reward`` replaced by the model's
    reward; the original is kept as ``reward_env``. reward[t] scores observation t+1 (the reward
    follows the action). The last step's next observation is not stored (``_last_step_reward``):
    success-call models take the store's success mark for it; graded models score the last stored
    observation, and the result counts those steps (``last_step_from``) and warns about them.
    Camera frames are linked from the source chunk by chunk (bit-exact, never re-encoded).
    The source store is never modified."""
    from robolearn.store import DemoStore

    out = DemoStore.create(destination, cell_config=source.cell_config, cameras=source.cameras,
                           jpeg_quality=source.jpeg_quality)
    totals: dict[str, Any] = {"n_episodes": 0, "n_steps": 0, "reward_sum": 0.0}
    last_step_from: dict[str, int] = {}
    for index in tqdm(range(source.n_episodes), desc="relabeling", disable=not progress):
        data = dict(source.episode(index))
        source_meta = source.episode_meta(index)
        rewards, _ = score_episode(model, data)
        relabeled = np.empty_like(rewards)
        relabeled[:-1] = rewards[1:]
        relabeled[-1], how = _last_step_reward(model, data, source_meta, float(rewards[-1]))
        last_step_from[how] = last_step_from.get(how, 0) + 1
        if "reward" in data:
            data["reward_env"] = np.asarray(data["reward"], dtype=np.float32)
        data["reward"] = relabeled
        meta = {**source_meta, "reward_model": spec or type(model).__name__, "reward_last_step_from": how}
        out.append_episode(data, meta, frames_from=(source, index))
        totals["n_episodes"] += 1
        totals["n_steps"] += len(relabeled)
        totals["reward_sum"] += float(relabeled.sum())
    warnings = []
    if last_step_from.get("last_frame"):
        warnings.append(f"{last_step_from['last_frame']} episodes: the last step's next observation is not stored, so "
                        "its reward scores the last stored observation instead (one step early; for an episode that "
                        "ends on success, the success frame itself is missing)")
    return {**totals, "last_step_from": last_step_from, "warnings": warnings, "store": str(destination)}
