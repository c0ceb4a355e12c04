"""Replay buffers: a numpy ring buffer of transitions, and the RLPD/SERL mix that samples demo and
online data symmetrically (interventions go to both). Batches come back as torch tensors on the
learner's device (pinned host memory and non-blocking copies on CUDA)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robolearn.errors import DataError, RobolearnError
from robolearn.learn.losses import mc_return_to_go

NO_FLOOR = -np.inf
"""``mc_return`` of a transition whose return-to-go is not known (yet): max(Q, −inf) = Q, no Cal-QL floor."""


class BadTransitionError(RobolearnError, ValueError):
    """A transition with a NaN or infinite action, reward or observation."""


def first_non_finite(arrays: dict[str, Any]) -> tuple[str, int, float] | None:
    """``(name, index along axis 0, value)`` of the first NaN or ±inf among float arrays ``(T, ...)``,
    or None; the name is the key, with the (flat) element index for arrays of vectors (``state[2]``)."""
    for key, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind != "f":
            continue
        flat = array.reshape(len(array), -1)
        finite = np.isfinite(flat)
        if not finite.all():
            t, j = np.unravel_index(int(np.argmin(finite)), finite.shape)
            name = key if array.ndim == 1 else f"{key}[{j}]"
            return name, int(t), float(flat[t, j])
    return None


class ReplayBuffer:
    """Transitions (obs, action, reward, next_obs, done, mc_return, action_chunk, chunk_mask).

    obs_spaces: key → (shape, dtype) of one observation (no batch dim). ``chunk`` > 1 stores the next
    ``chunk`` actions of each step (BC with action chunking; filled by ``add_episode``). ``mc_return``
    is Cal-QL's floor, ``NO_FLOOR`` (−inf) where it is not known. Non-finite actions, rewards or
    observations are refused with a ``BadTransitionError`` naming the key.
    """

    def __init__(self, obs_spaces: dict[str, tuple[tuple[int, ...], np.dtype]], action_dim: int,
                 capacity: int, chunk: int = 1, seed: int = 0):
        self.capacity, self.chunk, self.action_dim = capacity, chunk, action_dim
        self.obs = {k: np.zeros((capacity, *s), d) for k, (s, d) in obs_spaces.items()}
        self.next_obs = {k: np.zeros((capacity, *s), d) for k, (s, d) in obs_spaces.items()}
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.mc_return = np.full(capacity, NO_FLOOR, np.float32)
        self.action_chunk = np.zeros((capacity, chunk, action_dim), np.float32)
        self.chunk_mask = np.zeros((capacity, chunk), np.float32)
        self.size, self.cursor = 0, 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: dict, action: np.ndarray, reward: float, next_obs: dict, done: bool,
            mc_return: float = NO_FLOOR, action_chunk: np.ndarray | None = None,
            chunk_mask: np.ndarray | None = None) -> int:
        """Store one transition; returns its slot (the oldest is overwritten once full)."""
        values = {**{f"obs.{k}": obs[k] for k in self.obs}, **{f"next_obs.{k}": next_obs[k] for k in self.obs},
                  "action": action, "reward": reward}
        bad = first_non_finite({k: np.asarray(v)[None] for k, v in values.items()})
        if bad is not None or np.isnan(mc_return) or mc_return == np.inf:
            key, _, value = bad or ("mc_return", 0, mc_return)
            raise BadTransitionError(f"transition {self.size} of this buffer: {key} is {value}, not finite; fix the "
                                     "env or data that produced it (a sensor dropout or a division by zero in a reward)")
        i = self.cursor
        for k in self.obs:
            self.obs[k][i] = obs[k]
            self.next_obs[k][i] = next_obs[k]
        self.action[i], self.reward[i], self.done[i], self.mc_return[i] = action, reward, float(done), mc_return
        if action_chunk is None:
            action_chunk, chunk_mask = np.repeat(np.asarray(action)[None], self.chunk, 0), np.eye(1, self.chunk)[0]
        self.action_chunk[i], self.chunk_mask[i] = action_chunk, chunk_mask
        self.cursor = (self.cursor + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def add_episode(self, episode: dict[str, np.ndarray], gamma: float, *, r_neg: float | None = None) -> int:
        """Add the transitions of one stored episode (DemoStore layout, time first); returns how many.

        The last step is kept only when terminated (its next observation is not stored and is masked).
        ``mc_return`` is the Monte-Carlo return-to-go (``losses.mc_return_to_go``); an episode without
        ``reward`` (enough for BC) stores reward 0 and no floor. Raises ``BadTransitionError`` naming
        the step and key of a NaN or infinite value.
        """
        actions = episode["action"].astype(np.float32)
        n = len(actions)
        has_reward = "reward" in episode
        rewards = episode["reward"].astype(np.float32) if has_reward else np.zeros(n, np.float32)
        bad = first_non_finite({**{k: episode[k] for k in self.obs}, "action": actions, "reward": rewards})
        if bad is not None:
            key, t, value = bad
            raise BadTransitionError(f"episode step {t}: {key} is {value}, not finite")
        terminated = episode.get("terminated", np.zeros(n, bool)).astype(bool)
        rtg = mc_return_to_go(rewards, gamma, r_neg) if has_reward else np.full(n, NO_FLOOR, np.float32)
        added = 0
        for t in range(n):
            last = t == n - 1
            if last and not terminated[t]:
                break
            nxt = t if last else t + 1
            idx = np.arange(t, t + self.chunk)
            mask = (idx < n).astype(np.float32)
            chunk = actions[np.minimum(idx, n - 1)]
            self.add({k: episode[k][t] for k in self.obs}, actions[t], rewards[t],
                     {k: episode[k][nxt] for k in self.obs}, bool(terminated[t]), rtg[t], chunk, mask)
            added += 1
        return added

    def sample_numpy(self, batch_size: int) -> dict:
        if self.size == 0:
            raise DataError("cannot sample from an empty replay buffer; add transitions or demos first")
        idx = self.rng.integers(0, self.size, batch_size)
        return {"obs": {k: v[idx] for k, v in self.obs.items()}, "next_obs": {k: v[idx] for k, v in self.next_obs.items()},
                "action": self.action[idx], "reward": self.reward[idx], "done": self.done[idx],
                "mc_return": self.mc_return[idx], "action_chunk": self.action_chunk[idx], "chunk_mask": self.chunk_mask[idx]}

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict:
        return to_device(self.sample_numpy(batch_size), torch.device(device))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays for checkpointing (the filled part only)."""
        out = {"action": self.action, "reward": self.reward, "done": self.done, "mc_return": self.mc_return,
               "action_chunk": self.action_chunk, "chunk_mask": self.chunk_mask,
               **{f"obs.{k}": v for k, v in self.obs.items()}, **{f"next_obs.{k}": v for k, v in self.next_obs.items()}}
        out = {k: v[: self.size] for k, v in out.items()}
        out["cursor"] = np.array([self.cursor, self.size], np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.cursor, self.size = (int(x) for x in state["cursor"])
        for k, v in state.items():
            if k == "cursor":
                continue
            group, _, key = k.partition(".")
            target = {"obs": self.obs, "next_obs": self.next_obs}.get(group)
            array = target[key] if target is not None else getattr(self, k)
            array[: len(v)] = v


class MixedBuffer:
    """RLPD symmetric sampling: ``offline_fraction`` of every batch from the demo buffer, the rest from
    the online buffer (all online while the demo buffer is empty, e.g. WSRL).

    Online transitions are grouped into episodes by an ``episode`` key (one per actor stream). Until
    its episode ends a transition carries ``NO_FLOOR``; then the episode's Monte-Carlo return-to-go
    (Cal-QL's floor, ``losses.mc_return_to_go``) is written into its transitions in both buffers.
    ``open_episodes()`` / ``load_open_episodes()`` carry the episodes still open through a checkpoint.
    """

    def __init__(self, demo: ReplayBuffer, online: ReplayBuffer, offline_fraction: float = 0.5,
                 gamma: float = 0.99, r_neg: float | None = 0.0):
        self.demo, self.online, self.offline_fraction = demo, online, offline_fraction
        self.gamma, self.r_neg = gamma, r_neg
        self._open: dict[str, list[tuple[int, int, float]]] = {}  # episode → (online slot, demo slot or −1, reward)

    def add(self, obs: dict, action: np.ndarray, reward: float, next_obs: dict, done: bool,
            intervention: bool = False, episode: str = "") -> None:
        """Add an online transition; a teleop intervention also goes to the demo buffer (HIL-SERL)."""
        i = self.online.add(obs, action, reward, next_obs, done)
        j = self.demo.add(obs, action, reward, next_obs, done) if intervention else -1
        self._open.setdefault(episode, []).append((i, j, float(reward)))

    def end_episode(self, episode: str = "") -> None:
        """Write the return-to-go of the episode that just ended into its transitions."""
        steps = self._open.pop(episode, [])
        if not steps:
            return
        online, demo, rewards = (np.array(column) for column in zip(*steps))
        rtg = mc_return_to_go(rewards, self.gamma, self.r_neg)
        self.online.mc_return[online] = rtg
        self.demo.mc_return[demo[demo >= 0]] = rtg[demo >= 0]

    def abandon_episode(self, episode: str = "") -> None:
        """Forget an open episode whose return-to-go cannot be known (one of its transitions was
        dropped): its transitions so far stay unfloored; later ones start a new episode."""
        self._open.pop(episode, None)

    def open_episodes(self) -> dict[str, np.ndarray]:
        """The open episodes as arrays: ``<episode>/slots`` ``(n, 2)`` int64 (online slot, demo slot or
        −1) and ``<episode>/reward`` ``(n,)`` float32."""
        out = {}
        for episode, steps in self._open.items():
            out[f"{episode}/slots"] = np.array([(i, j) for i, j, _ in steps], np.int64)
            out[f"{episode}/reward"] = np.array([r for *_, r in steps], np.float32)
        return out

    def load_open_episodes(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what ``open_episodes`` returned (after loading both buffers)."""
        self._open = {}
        for key, slots in arrays.items():
            episode, _, kind = key.rpartition("/")
            if kind == "slots":
                self._open[episode] = [(int(i), int(j), float(r)) for (i, j), r in zip(slots, arrays[f"{episode}/reward"])]

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict:
        n_demo = int(round(batch_size * self.offline_fraction)) if len(self.demo) else 0
        if len(self.online) == 0:
            n_demo = batch_size
        parts = [b.sample_numpy(n) for b, n in ((self.demo, n_demo), (self.online, batch_size - n_demo)) if n > 0]
        return to_device(_concat(parts), torch.device(device))


def _concat(parts: list) -> dict:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return {k: ({kk: np.concatenate([p[k][kk] for p in parts]) for kk in first[k]} if isinstance(first[k], dict)
                else np.concatenate([p[k] for p in parts])) for k in first}


def to_device(batch: dict, device: torch.device) -> dict:
    """numpy → torch; on CUDA via pinned host memory with non-blocking copies."""
    def move(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x))
        if device.type == "cuda":
            return t.pin_memory().to(device, non_blocking=True)
        return t
    return {k: ({kk: move(vv) for kk, vv in v.items()} if isinstance(v, dict) else move(v)) for k, v in batch.items()}
