"""Learner throughput: RLPD updates with a batched 10-critic ensemble vs a per-critic Python loop.

One update = one critic step (10 LayerNorm critics 256×2, target = min over a random 2, batch 256)
+ one actor step (ensemble-mean objective) + one temperature step. Prints a last-line JSON with
``rlpd_state_updates_per_s``, ``rlpd_state_speedup_vs_loop`` (same update, critics as a Python loop
of separate MLPs, measured in the same run), ``rlpd_state_fraction_of_matmul_peak`` (matmul FLOPs
of one update counted by ``torch.utils.flop_counter`` × updates/s, over this machine's fp32 matmul
peak measured here), ``rlpd_pixel_updates_per_s`` (two 128×128 cameras, DrQ CNN encoder) and the
device. Targets: speedup ≥ 3×, fraction ≥ 0.3. Runs unchanged on CUDA (``--device cuda``).

On a shared machine every rate is the best of ``--rounds`` interleaved windows (batched, loop and the
matmul peak take turns), so that other processes slow all three alike and the ratios stay fair.
``--compile`` compiles both the batched and the loop agent.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from robolearn.learn.agent_policy import pick_device
from robolearn.learn.api import compile_agent
from robolearn.learn.buffer import ReplayBuffer
from robolearn.learn.models import LoopCriticEnsemble
from robolearn.learn.sac import SACAgent, SACConfig

STATE_SHAPES = {"state": (15,), "object_state": (10,)}
PIXEL_SHAPES = {"state": (15,), "rgb_front": (128, 128, 3), "rgb_wrist": (128, 128, 3)}
ACTION_DIM = 7


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_flops(device: torch.device, seconds: float) -> float:
    """Best fp32 FLOP/s of a large square matmul (TF32 off on CUDA)."""
    n = 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def make_buffer(shapes: dict, n: int) -> ReplayBuffer:
    spaces = {k: (s, np.dtype(np.uint8) if k.startswith("rgb_") else np.dtype(np.float32)) for k, s in shapes.items()}
    buf = ReplayBuffer(spaces, ACTION_DIM, n)
    rng = np.random.default_rng(0)
    for _ in range(n):
        obs = {k: rng.integers(0, 255, s) if k.startswith("rgb_") else rng.normal(size=s) for k, s in shapes.items()}
        buf.add(obs, rng.uniform(-1, 1, ACTION_DIM), float(rng.random() < 0.1), obs, False)
    return buf


def make_agent(shapes: dict, loop: bool, device: torch.device) -> SACAgent:
    cfg = SACConfig(algo="rlpd", n_critics=10, critic_subset=2, hidden=(256, 256), batch_size=256)
    agent = SACAgent(cfg, shapes, ACTION_DIM)
    if loop:
        agent.critic = LoopCriticEnsemble(agent.encoder.out_dim, ACTION_DIM, 10, (256, 256))
        agent.target_critic = copy.deepcopy(agent.critic).requires_grad_(False)
        agent.critic_optim = torch.optim.Adam(list(agent.critic.parameters()) + list(agent.encoder.parameters()), lr=3e-4)
    return agent.to(device)


def updates_per_s(agent: SACAgent, batches: list[dict], seconds: float, device: torch.device, min_iters: int = 3) -> float:
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    iters = 0
    sync(device)
    t0 = time.perf_counter()
    while iters < min_iters or time.perf_counter() - t0 < seconds:
        with autocast:
            agent.update([batches[iters % len(batches)]])
        iters += 1
    sync(device)
    return iters / (time.perf_counter() - t0)


def warm_up(agent: SACAgent, batches: list[dict], device: torch.device) -> None:
    """First updates (allocations, compilation) are not timed."""
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    for batch in batches[:2]:
        with autocast:
            agent.update([batch])
    sync(device)


def update_flops(agent: SACAgent, batch: dict) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        agent.update([batch])
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per measurement and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (best one counts)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks of both agents")
    args = parser.parse_args()
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False

    state_buf = make_buffer(STATE_SHAPES, 2048)
    batches = [state_buf.sample(256, device) for _ in range(8)]
    batched, loop = make_agent(STATE_SHAPES, False, device), make_agent(STATE_SHAPES, True, device)
    flops = update_flops(batched, batches[0])
    if args.compile:
        compile_agent(batched)
        compile_agent(loop)
    warm_up(batched, batches, device)
    warm_up(loop, batches, device)
    rate = loop_rate = peak = 0.0
    for _ in range(args.rounds):
        peak = max(peak, matmul_peak_flops(device, args.seconds / 2))
        rate = max(rate, updates_per_s(batched, batches, args.seconds, device))
        loop_rate = max(loop_rate, updates_per_s(loop, batches, args.seconds, device))

    pixel_buf = make_buffer(PIXEL_SHAPES, 300)
    pixel_batches = [pixel_buf.sample(256, device) for _ in range(2)]
    pixel_agent = make_agent(PIXEL_SHAPES, False, device)
    if args.compile:
        compile_agent(pixel_agent)
    warm_up(pixel_agent, pixel_batches[:1], device)
    pixel_rate = updates_per_s(pixel_agent, pixel_batches, args.seconds, device, min_iters=2)

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(json.dumps({
        "rlpd_state_updates_per_s": round(rate, 2),
        "rlpd_state_loop_updates_per_s": round(loop_rate, 2),
        "rlpd_state_speedup_vs_loop": round(rate / loop_rate, 2),
        "rlpd_state_gflop_per_update": round(flops / 1e9, 3),
        "rlpd_state_achieved_gflops": round(flops * rate / 1e9, 2),
        "matmul_peak_gflops": round(peak / 1e9, 2),
        "rlpd_state_fraction_of_matmul_peak": round(flops * rate / peak, 3),
        "rlpd_pixel_updates_per_s": round(pixel_rate, 3),
        "device": device_name,
        "compiled": args.compile,
    }))


if __name__ == "__main__":
    main()
