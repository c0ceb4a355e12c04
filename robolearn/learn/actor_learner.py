"""Distributed online RL (SERL-style): actor processes step an env and stream transitions to a learner
process over Zenoh; the learner trains and pushes weights back.

Delivery: each actor run is a *stream* (``<actor_id>-<random>``) that numbers its transitions 0, 1, ….
The learner accepts only the next expected number of each stream, so resends and reorderings are
harmless. A transition is *committed* once it is inside a learner checkpoint; only then does the
learner acknowledge it. The actor keeps every unacknowledged transition and resends them every
``resend_s``, so a learner killed at any moment restarts from its last checkpoint and receives again
exactly what it had not committed. While no learner is heard for ``learner_timeout_s`` the actor keeps
acting on its last weights, or holds (stops stepping) with ``hold_when_learner_away``. A transition
with a NaN or infinite value is dropped by the learner with a counted warning (its episode then gets
no Cal-QL floor), never trained on.

Key expressions under ``prefix``: ``transitions/<stream>``, ``ack`` (JSON {stream: next expected seq}),
``weights`` (actor + encoder weights, safetensors). Messages are a 4-byte header length, a JSON header
and a safetensors payload (no pickle).
"""

from __future__ import annotations

import json
import logging
import queue
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
import safetensors.torch
import torch
import zenoh

from robolearn.errors import RobolearnError, UsageError
from robolearn.learn.agent_policy import AgentPolicy
from robolearn.learn.api import ActionScaler, as_obs_dict, save_agent, stored_action
from robolearn.learn.buffer import MixedBuffer, first_non_finite
from robolearn.learn.checkpoint import load_checkpoint, recover_checkpoint

log = logging.getLogger(__name__)


@dataclass
class ActorLearnerConfig:
    """router: the Zenoh router both sides connect to (``tcp/<host>:<port>``). push_weights_every:
    learner update cycles between weight broadcasts (SERL: 30–50 steps). checkpoint_every_s: how often
    the learner commits (checkpoints, then acknowledges) what it received; at most
    ``checkpoint_max_time_fraction`` of its time goes to checkpoints (the replay buffer is saved whole,
    which grows with it, with pixels most of all), so the interval stretches to that share, while the
    actor keeps what is not yet committed. learner_timeout_s: silence
    after which the actor considers the learner away. start_transitions: online transitions before the
    first update (at least; the algorithm's ``start_steps`` and WSRL's ``warmup_steps`` also apply);
    from then on the learner runs at most one update cycle (``utd`` critic steps + one actor step) per
    transition received."""

    router: str = "tcp/127.0.0.1:7447"
    prefix: str = "robolearn/learn"
    resend_s: float = 1.0
    push_weights_every: int = 20
    checkpoint_every_s: float = 2.0
    checkpoint_max_time_fraction: float = 0.1
    learner_timeout_s: float = 5.0
    hold_when_learner_away: bool = False
    start_transitions: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.checkpoint_max_time_fraction <= 1.0:
            raise ValueError(f"checkpoint_max_time_fraction must be in (0, 1], got {self.checkpoint_max_time_fraction}")


def open_session(router: str, wait_s: float = 120.0) -> zenoh.Session:
    """A client session through the router at ``router``, retried for up to ``wait_s`` while the router
    is not up yet (an actor may start before its learner); once open it reconnects by itself."""
    config = zenoh.Config()
    config.insert_json5("mode", '"client"')
    config.insert_json5("connect/endpoints", json.dumps([router]))
    config.insert_json5("scouting/multicast/enabled", "false")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return zenoh.open(config)
        except zenoh.ZError as err:
            if time.monotonic() > deadline:
                raise ConnectionError(f"no Zenoh router at {router} after {wait_s:.0f} s; start the learner "
                                      "(robolearn finetune --role learner --router ...) or fix --router") from err
            time.sleep(1.0)


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    head = json.dumps(header).encode()
    body = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()}) if arrays else b""
    return struct.pack("<I", len(head)) + head + body


def split(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """(JSON header, safetensors body) of a message."""
    (n,) = struct.unpack_from("<I", payload)
    return json.loads(payload[4:4 + n]), payload[4 + n:]


def unpack(payload: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    header, body = split(payload)
    return header, (safetensors.numpy.load(body) if body else {})


def _transition_arrays(seq: int, obs: dict, action: np.ndarray, reward: float, next_obs: dict, done: bool,
                       intervention: bool, episode_end: bool) -> dict[str, np.ndarray]:
    out = {"seq": np.array([seq], np.int64), "action": np.asarray(action, np.float32)[None],
           "reward": np.array([reward], np.float32), "done": np.array([done], np.float32),
           "intervention": np.array([intervention], np.bool_), "episode_end": np.array([episode_end], np.bool_)}
    out.update({f"obs.{k}": np.asarray(v)[None] for k, v in obs.items()})
    out.update({f"next_obs.{k}": np.asarray(v)[None] for k, v in next_obs.items()})
    return out


def _concat(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([it[k] for it in items]) for k in items[0]}


class WeightsMismatchError(RobolearnError):
    """The learner pushed weights that do not fit the actor's agent."""


class Actor:
    """Steps ``env`` with ``agent``'s policy, streams transitions, loads pushed weights (actor and
    encoder tensors; weights that do not fit are refused and ``run`` raises ``WeightsMismatchError``)."""

    def __init__(self, env: Any, agent: torch.nn.Module, cfg: ActorLearnerConfig, actor_id: str = "actor0",
                 on_episode: Callable[[dict[str, np.ndarray], dict], None] | None = None, seed: int = 0):
        self.env, self.agent, self.cfg = env, agent, cfg
        self.stream = f"{actor_id}-{uuid.uuid4().hex[:8]}"
        self.on_episode = on_episode
        self.keys = sorted(agent.obs_shapes)
        self.policy = AgentPolicy(agent, self.keys, torch.device("cpu"), deterministic=False)
        self.scale = ActionScaler(env.action_space)
        self.pending: deque[tuple[int, dict[str, np.ndarray]]] = deque()
        self.lock = threading.Lock()
        self.acked = 0
        self.weights_version = 0
        self.last_heard = 0.0
        self.seq = 0
        self.interventions = 0
        self.seed = seed
        self.weights_error: str | None = None
        own = agent.state_dict()
        self._pushed_shapes = {k: tuple(v.shape) for k, v in own.items() if k.startswith(("actor.", "encoder."))}
        self.session = open_session(cfg.router)
        self.publisher = self.session.declare_publisher(f"{cfg.prefix}/transitions/{self.stream}",
                                                        congestion_control=zenoh.CongestionControl.BLOCK)
        self._subs = [self.session.declare_subscriber(f"{cfg.prefix}/ack", self._on_ack),
                      self.session.declare_subscriber(f"{cfg.prefix}/weights", self._on_weights)]
        self._last_resend = time.monotonic()

    def _on_ack(self, sample: zenoh.Sample) -> None:
        acked = json.loads(sample.payload.to_bytes()).get(self.stream, 0)
        with self.lock:
            self.last_heard = time.monotonic()
            self.acked = max(self.acked, acked)
            while self.pending and self.pending[0][0] < self.acked:
                self.pending.popleft()

    def _on_weights(self, sample: zenoh.Sample) -> None:
        header, body = split(sample.payload.to_bytes())
        state = safetensors.torch.load(body)
        problem = self.weights_mismatch(state)
        with self.lock:
            self.last_heard = time.monotonic()
            if problem:
                self.weights_error = problem
                log.error("%s", problem)
                return
            self.agent.load_state_dict(state, strict=False)  # the critics are not pushed
            self.weights_version = header["version"]

    def weights_mismatch(self, state: dict[str, torch.Tensor]) -> str | None:
        """Why pushed ``state`` (actor.* and encoder.* tensors) does not fit this agent, or None."""
        missing = sorted(set(self._pushed_shapes) - set(state))
        unexpected = sorted(set(state) - set(self._pushed_shapes))
        wrong = [f"{k} {tuple(v.shape)} vs {self._pushed_shapes[k]}" for k, v in sorted(state.items())
                 if k in self._pushed_shapes and tuple(v.shape) != self._pushed_shapes[k]]
        if not (missing or unexpected or wrong):
            return None
        return (f"actor {self.stream}: the learner's weights do not fit this actor's agent (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}); start actor and learner with the same "
                "--algo, --set and --obs (and --init)")

    def learner_away(self) -> bool:
        return time.monotonic() - self.last_heard > self.cfg.learner_timeout_s

    def _send(self, arrays: dict[str, np.ndarray]) -> None:
        self.publisher.put(pack({"stream": self.stream}, arrays))

    def resend_unacked(self) -> None:
        with self.lock:
            items = [a for _, a in self.pending]
        for start in range(0, len(items), 256):
            self._send(_concat(items[start:start + 256]))
        self._last_resend = time.monotonic()

    def run(self, steps: int, min_step_s: float = 0.0) -> None:
        """Act for ``steps`` env steps on the latest weights received; while the learner is away it keeps
        acting, or with ``hold_when_learner_away`` stops the arm and waits. ``min_step_s`` paces a fast
        simulated env like a real control loop."""
        raw = self.env.reset(seed=self.seed)[0]
        full, obs = as_obs_dict(raw), as_obs_dict(raw, self.keys)
        episode: dict[str, list] = {}
        done_steps, holding = 0, False
        while done_steps < steps:
            if self.weights_error:
                raise WeightsMismatchError(self.weights_error)
            if time.monotonic() - self._last_resend > self.cfg.resend_s:
                self.resend_unacked()
            if self.cfg.hold_when_learner_away and self.last_heard > 0 and self.learner_away():
                if not holding and hasattr(getattr(self.env.unwrapped, "arm", None), "stop"):
                    self.env.unwrapped.arm.stop()  # a real arm holds its pose until the learner is back
                holding = True
                time.sleep(0.05)
                continue
            holding = False
            t0 = time.monotonic()
            with self.lock:
                action = self.policy.act(obs)
            raw, reward, terminated, truncated, info = self.env.step(self.scale(action))
            action = stored_action(self.scale, action, info)
            next_obs = as_obs_dict(raw, self.keys)
            intervention, success = bool(info.get("intervention", False)), bool(info.get("success", False))
            arrays = _transition_arrays(self.seq, obs, action, float(reward), next_obs, bool(terminated), intervention,
                                        bool(terminated or truncated))
            with self.lock:
                self.pending.append((self.seq, arrays))
            self._send(arrays)
            self.seq += 1
            self.interventions += intervention
            done_steps += 1
            step_record = {**full, "action": action, "reward": np.float32(reward), "terminated": bool(terminated),
                           "success": success, "intervention": intervention}
            if "success_true" in info:  # the ground truth, when a learned reward decides success
                step_record["success_true"] = bool(info["success_true"])
            for k, v in step_record.items():
                episode.setdefault(k, []).append(v)
            obs, full = next_obs, as_obs_dict(raw)
            time.sleep(max(0.0, min_step_s - (time.monotonic() - t0)))
            if terminated or truncated:
                if self.on_episode is not None:
                    self.on_episode({k: np.stack(v) for k, v in episode.items()},
                                    {"success": bool(np.any(episode["success"])), "source": "online"})
                raw = self.env.reset()[0]
                full, obs, episode = as_obs_dict(raw), as_obs_dict(raw, self.keys), {}

    def flush(self, timeout_s: float) -> bool:
        """Resend until every transition is acknowledged; False on timeout."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self.lock:
                if not self.pending:
                    return True
            self.resend_unacked()
            time.sleep(min(self.cfg.resend_s, 0.5))
        return not self.pending

    def close(self) -> None:
        for sub in self._subs:
            sub.undeclare()
        self.session.close()


class Learner:
    """Receives transitions into ``buffer.online`` (interventions also into ``buffer.demo``), trains
    ``agent`` at its update-to-data ratio, pushes weights, checkpoints to ``ckpt_dir`` and acknowledges
    what each checkpoint holds. Resumes from ``ckpt_dir`` when it exists.

    ``buffer.demo`` comes filled with the store's demonstrations; the checkpoint records how many
    (``store_demos``) and keeps the demo buffer whenever interventions grew it past that, so they
    survive any number of restarts. Episodes still open at a checkpoint are kept too, so a restarted
    learner writes their return-to-go when they end."""

    def __init__(self, agent: torch.nn.Module, buffer: MixedBuffer, ckpt_dir: str | Path, cfg: ActorLearnerConfig,
                 device: torch.device | str = "cpu", extra_config: dict[str, Any] | None = None):
        self.agent, self.buffer, self.cfg, self.device = agent, buffer, cfg, torch.device(device)
        self.ckpt_dir = Path(ckpt_dir)
        self.extra_config = extra_config or {}
        self.expected: dict[str, int] = {}
        self.updates = 0
        self.dropped = 0
        self.store_demos = len(buffer.demo)
        recover_checkpoint(self.ckpt_dir)
        if (self.ckpt_dir / "config.json").exists():
            config, replay = load_checkpoint(self.ckpt_dir, agent, agent.optimizers(), self.device, self.buffer_rngs())
            self.expected = dict(config["committed"])
            self.updates = config["updates"]
            self.store_demos = config.get("store_demos", self.store_demos)
            if replay is not None:
                buffer.online.load_state_dict(_section(replay, "online."))
                demo = _section(replay, "demo.")
                if demo:
                    buffer.demo.load_state_dict(demo)
                buffer.load_open_episodes(_section(replay, "open/"))
        self.committed = dict(self.expected)
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.session = open_session(cfg.router)
        self._sub = self.session.declare_subscriber(f"{cfg.prefix}/transitions/*",
                                                    lambda s: self.inbox.put(s.payload.to_bytes()))
        self.ack_pub = self.session.declare_publisher(f"{cfg.prefix}/ack")
        self.weights_pub = self.session.declare_publisher(f"{cfg.prefix}/weights")
        # WSRL: no update before its warm-up transitions (the actors run the pretrained policy meanwhile)
        self.start_transitions = max(cfg.start_transitions, agent.cfg.start_steps, getattr(agent.cfg, "warmup_steps", 0))
        self._last_ckpt = self._last_ack = time.monotonic()
        self.checkpoint_s = 0.0
        self.weights_pushed = 0

    def buffer_rngs(self) -> dict[str, np.random.Generator]:
        return {"online": self.buffer.online.rng, "demo": self.buffer.demo.rng}

    def receive(self) -> int:
        """Move queued transitions into the buffers; returns how many were new. A transition with a
        NaN or infinite value is dropped (counted in ``dropped``, with a warning)."""
        added = 0
        while True:
            try:
                header, arrays = unpack(self.inbox.get_nowait())
            except queue.Empty:
                return added
            stream = header["stream"]
            for i, seq in enumerate(arrays["seq"].tolist()):
                if seq != self.expected.get(stream, 0):
                    continue
                self.expected[stream] = seq + 1
                added += 1
                bad = first_non_finite({k: v[i:i + 1] for k, v in arrays.items()})
                if bad is not None:
                    self.dropped += 1
                    log.warning("dropped transition %d of stream %s: %s is %s, not finite (%d dropped so far); its "
                                "episode gets no Cal-QL floor. Check the actor's env and reward model",
                                seq, stream, bad[0], bad[2], self.dropped)
                    self.buffer.abandon_episode(stream)
                    continue
                obs = {k[4:]: v[i] for k, v in arrays.items() if k.startswith("obs.")}
                next_obs = {k[9:]: v[i] for k, v in arrays.items() if k.startswith("next_obs.")}
                self.buffer.add(obs, arrays["action"][i], float(arrays["reward"][i]), next_obs, bool(arrays["done"][i]),
                                intervention=bool(arrays["intervention"][i]), episode=stream)
                if arrays["episode_end"][i]:
                    self.buffer.end_episode(stream)

    def push_weights(self) -> None:
        state = {f"actor.{k}": v for k, v in self.agent.actor.state_dict().items()}
        state.update({f"encoder.{k}": v for k, v in self.agent.encoder.state_dict().items()})
        state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
        head = json.dumps({"version": self.updates}).encode()
        self.weights_pub.put(struct.pack("<I", len(head)) + head + safetensors.torch.save(state))
        self.weights_pushed += 1

    def checkpoint(self) -> None:
        started = time.monotonic()
        replay = {f"online.{k}": v for k, v in self.buffer.online.state_dict().items()}
        if len(self.buffer.demo) > self.store_demos:  # interventions joined the demonstrations
            replay.update({f"demo.{k}": v for k, v in self.buffer.demo.state_dict().items()})
        replay.update({f"open/{k}": v for k, v in self.buffer.open_episodes().items()})
        save_agent(self.ckpt_dir, self.agent, self.agent.obs_shapes, self.updates, replay, rngs=self.buffer_rngs(),
                   committed=self.expected, updates=self.updates, store_demos=self.store_demos, **self.extra_config)
        self.committed = dict(self.expected)
        self._last_ckpt = time.monotonic()
        self.checkpoint_s = self._last_ckpt - started
        self.ack()

    def checkpoint_due(self) -> bool:
        """Every ``checkpoint_every_s``, or less often when saving would otherwise take more than
        ``checkpoint_max_time_fraction`` of the learner's time."""
        interval_s = max(self.cfg.checkpoint_every_s, self.checkpoint_s / self.cfg.checkpoint_max_time_fraction)
        return time.monotonic() - self._last_ckpt > interval_s

    def ack(self) -> None:
        """Acknowledge committed transitions (also the learner's heartbeat)."""
        self.ack_pub.put(json.dumps(self.committed).encode())
        self._last_ack = time.monotonic()

    def received(self) -> int:
        """Transitions received over the whole run (restarts included)."""
        return sum(self.expected.values())

    def cycles_allowed(self) -> int:
        """Update cycles the data received so far allows: one per transition from ``start_transitions`` on."""
        return max(self.received() - self.start_transitions + 1, 0)

    def step(self) -> dict[str, float]:
        """Receive, then one update cycle (``utd`` critic steps, one actor step) if the transitions received
        allow another (the update-to-data ratio); checkpoint and push on schedule."""
        self.receive()
        info: dict[str, float] = {}
        cfg_agent = self.agent.cfg
        if self.updates < self.cycles_allowed():
            batches = [self.buffer.sample(cfg_agent.batch_size, self.device) for _ in range(cfg_agent.utd)]
            with torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
                info = self.agent.update(batches)
            self.updates += 1
            if self.updates % self.cfg.push_weights_every == 0:
                self.push_weights()
        else:
            time.sleep(0.01)
        if self.checkpoint_due():
            self.checkpoint()
        elif time.monotonic() - self._last_ack > 0.5:
            self.ack()
        return info

    def total_committed(self) -> int:
        return sum(self.committed.values())

    def close(self) -> None:
        self._sub.undeclare()
        self.session.close()


def _section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def make_env_from_spec(spec: str, seed: int = 0) -> Any:
    """``gym:<id>`` (any gymnasium env) or ``twin:<task>[:<cell yaml>]`` (robolearn twin, state only)."""
    kind, _, rest = spec.partition(":")
    if kind == "gym":
        import gymnasium as gym

        return gym.make(rest)
    if kind == "twin":
        from robolearn.env import make_env

        task, _, cell = rest.partition(":")
        return make_env(cell=cell or "configs/cells/sim_panda.yaml", task=task, seed=seed, cameras=False)
    raise UsageError(f"env spec {spec!r} is neither gym:<id> nor twin:<task>[:<cell>]")


def _agent_for(env: Any, algo_config: dict[str, Any]) -> torch.nn.Module:
    from robolearn.learn.agents import config_from_dict, make_agent
    from robolearn.learn.api import observation_spaces

    cfg = config_from_dict(algo_config.get("algo", "rlpd"), {k: v for k, v in algo_config.items() if k != "algo"})
    spaces = observation_spaces(env.observation_space)
    return make_agent(cfg, {k: s for k, (s, _) in spaces.items()}, int(np.prod(env.action_space.shape)))


def learner_main(env_spec: str, algo_config: dict[str, Any], ckpt_dir: str, al_config: dict[str, Any],
                 until_committed: int, max_s: float, result_path: str | None = None) -> None:
    """Learner process: trains until ``until_committed`` transitions are committed (or ``max_s``)."""
    from robolearn.learn.api import observation_spaces
    from robolearn.learn.buffer import ReplayBuffer

    env = make_env_from_spec(env_spec)
    agent = _agent_for(env, algo_config)
    spaces = observation_spaces(env.observation_space)
    action_dim = int(np.prod(env.action_space.shape))
    buffer = MixedBuffer(ReplayBuffer(spaces, action_dim, 100_000), ReplayBuffer(spaces, action_dim, 100_000),
                         agent.cfg.offline_fraction, agent.cfg.gamma, agent.cfg.r_neg)
    learner = Learner(agent, buffer, ckpt_dir, ActorLearnerConfig(**al_config))
    end = time.monotonic() + max_s
    while time.monotonic() < end and learner.total_committed() < until_committed:
        learner.step()
    learner.checkpoint()
    if result_path:
        Path(result_path).write_text(json.dumps({"committed": learner.committed, "updates": learner.updates,
                                                 "online_size": len(buffer.online), "weights_pushed": learner.weights_pushed}))
    learner.close()


def actor_main(env_spec: str, algo_config: dict[str, Any], al_config: dict[str, Any], actor_id: str, steps: int,
               flush_s: float, result_path: str | None = None, min_step_s: float = 0.0) -> None:
    """Actor process: acts ``steps`` env steps, then resends until everything is acknowledged."""
    env = make_env_from_spec(env_spec)
    actor = Actor(env, _agent_for(env, algo_config), ActorLearnerConfig(**al_config), actor_id)
    actor.run(steps, min_step_s)
    flushed = actor.flush(flush_s)
    if result_path:
        actions = np.concatenate([a["action"] for _, a in actor.pending]) if actor.pending else np.zeros((0,))
        Path(result_path).write_text(json.dumps({"stream": actor.stream, "sent": actor.seq, "flushed": flushed,
                                                 "weights_version": actor.weights_version,
                                                 "unacked": len(actor.pending), "unacked_actions": actions.tolist()}))
    actor.close()
