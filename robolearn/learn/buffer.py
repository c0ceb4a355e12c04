"""Replay buffers: a numpy ring buffer of transitions, and the RLPD/SERL mix that samples demo and
online data symmetrically (interventions go to both). Batches come back as torch tensors on the
learner's device (pinned host memory and non-blocking copies on CUDA)."""

from __future__ import annotations

import numpy as np
import torch

from robolearn.learn.losses import mc_return_to_go


class ReplayBuffer:
    """Transitions (obs, action, reward, next_obs, done, mc_return, action_chunk, chunk_mask).

    obs_spaces: key → (shape, dtype) of one observation (no batch dim). ``chunk`` > 1 stores the next
    ``chunk`` actions of each step (BC with action chunking; filled by ``add_episode``).
    """

    def __init__(self, obs_spaces: dict[str, tuple[tuple[int, ...], np.dtype]], action_dim: int,
                 capacity: int, chunk: int = 1, seed: int = 0):
        self.capacity, self.chunk, self.action_dim = capacity, chunk, action_dim
        self.obs = {k: np.zeros((capacity, *s), d) for k, (s, d) in obs_spaces.items()}
        self.next_obs = {k: np.zeros((capacity, *s), d) for k, (s, d) in obs_spaces.items()}
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.mc_return = np.zeros(capacity, np.float32)
        self.action_chunk = np.zeros((capacity, chunk, action_dim), np.float32)
        self.chunk_mask = np.zeros((capacity, chunk), np.float32)
        self.size, self.cursor = 0, 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: dict, action: np.ndarray, reward: float, next_obs: dict, done: bool,
            mc_return: float = 0.0, action_chunk: np.ndarray | None = None, chunk_mask: np.ndarray | None = None) -> int:
        """Store one transition; returns its slot (the oldest is overwritten once full)."""
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

    def add_episode(self, episode: dict[str, np.ndarray], gamma: float, success: bool | None = None,
                    r_neg: float | None = None) -> int:
        """Add the transitions of one stored episode (DemoStore layout, time first); returns how many.

        The last step is kept only when terminated (its next observation is not stored and is masked).
        """
        actions = episode["action"].astype(np.float32)
        rewards = episode["reward"].astype(np.float32)
        terminated = episode.get("terminated", np.zeros(len(actions), bool)).astype(bool)
        if success is None:
            success = bool(episode["success"].any()) if "success" in episode else bool(rewards.max() > 0)
        rtg = mc_return_to_go(rewards, gamma, success, r_neg)
        n = len(actions)
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
            raise ValueError("cannot sample from an empty replay buffer; add transitions or demos first")
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

    Online transitions are grouped into episodes by an ``episode`` key (one per actor stream); when an
    episode ends, its Monte-Carlo return-to-go (Cal-QL's floor; ``r_neg``/(1−γ) for a failed
    sparse-reward episode) is written into its transitions in both buffers.
    """

    def __init__(self, demo: ReplayBuffer, online: ReplayBuffer, offline_fraction: float = 0.5,
                 gamma: float = 0.99, r_neg: float | None = 0.0):
        self.demo, self.online, self.offline_fraction = demo, online, offline_fraction
        self.gamma, self.r_neg = gamma, r_neg
        self._open: dict[str, list[tuple[int, int | None, float, bool]]] = {}

    def add(self, obs: dict, action: np.ndarray, reward: float, next_obs: dict, done: bool,
            intervention: bool = False, success: bool = False, episode: str = "") -> None:
        """Add an online transition; a teleop intervention also goes to the demo buffer (HIL-SERL)."""
        i = self.online.add(obs, action, reward, next_obs, done)
        j = self.demo.add(obs, action, reward, next_obs, done) if intervention else None
        self._open.setdefault(episode, []).append((i, j, float(reward), bool(success)))

    def end_episode(self, episode: str = "") -> None:
        """Write the return-to-go of the episode that just ended into its transitions."""
        steps = self._open.pop(episode, [])
        if not steps:
            return
        rtg = mc_return_to_go(np.array([r for _, _, r, _ in steps]), self.gamma, any(s for *_, s in steps), self.r_neg)
        for (i, j, _, _), value in zip(steps, rtg):
            self.online.mc_return[i] = value
            if j is not None:
                self.demo.mc_return[j] = value

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
