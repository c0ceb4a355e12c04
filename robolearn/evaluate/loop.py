"""The main job, end to end on the twin: collect expert demonstrations → train a success classifier
(the learned reward) → pretrain offline (Cal-QL) → fine-tune online with the learned reward (Cal-QL,
demonstrations mixed in) → evaluate every checkpoint in K workers → ``report.html``.

Each stage calls the function behind its own command (``robolearn reward train``, ``train``,
``finetune``, ``eval``), so the loop is those commands in sequence with shared paths. Layout of
``out``: ``demos.zarr``, ``reward_data.zarr`` (episodes run past success, a third random), ``backbone/`` (a small random CLIP when none is given: the machines that
run this cannot download weights), ``reward/``, ``pretrain/last``, ``finetune/last`` (each with
``evaluations/``), ``loop.json``, ``report.html``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robolearn.evaluate.evaluate import EvalSettings, evaluate_policy, save_beside_checkpoint
from robolearn.evaluate.report import write_report


@dataclass(frozen=True)
class LoopBudget:
    """How much of each stage to run. demos: expert episodes (``demo_noise``: action noise std as a
    fraction of the range, for varied demonstrations); reward_episodes: episodes recorded past success
(a third of them random) to train the success classifier; reward_steps: classifier head updates;
    pretrain_steps: offline gradient steps; finetune_steps: online env steps; eval_episodes: twin
    episodes per checkpoint."""

    demos: int
    demo_noise: float
    reward_episodes: int
    reward_steps: int
    pretrain_steps: int
    finetune_steps: int
    eval_episodes: int


BUDGETS = {
    "small": LoopBudget(demos=30, demo_noise=0.1, reward_episodes=12, reward_steps=300, pretrain_steps=1500, finetune_steps=1000,
                        eval_episodes=20),
    "medium": LoopBudget(demos=100, demo_noise=0.1, reward_episodes=48, reward_steps=2000, pretrain_steps=20_000, finetune_steps=20_000,
                         eval_episodes=50),
    "large": LoopBudget(demos=300, demo_noise=0.1, reward_episodes=150, reward_steps=5000, pretrain_steps=100_000, finetune_steps=100_000,
                        eval_episodes=100),
}
ALGO = "calql"
REWARD_EPISODE_STEPS = 50


def collect_episodes(store_path: str | Path, cell: str, task: str, episodes: int, noise_scale: float = 0.0,
                     seed: int = 0, random_every: int = 0, run_past_success_steps: int = 0,
                     progress: bool = True) -> dict[str, Any]:
    """Record ``episodes`` twin episodes with all cameras into a new DemoStore (episode i seeded
    ``seed + i``), driven by the scripted expert, or by uniform random actions on every
    ``random_every``-th episode (failures: negatives for a success classifier). With
    ``run_past_success_steps`` every episode runs that many steps without ending on success, so the
    frames after success are stored too (positives)."""
    from robolearn.config import to_dict
    from robolearn.env import make_env
    from robolearn.rollout import run_episode
    from robolearn.sim.experts import make_expert
    from robolearn.store import DemoStore

    overrides = ["terminate_on_success=false", f"max_episode_steps={run_past_success_steps}"] if run_past_success_steps else []
    env = make_env(cell, task, cameras=True, task_overrides=overrides)
    expert = make_expert(env, noise_scale=noise_scale, seed=seed)
    store = DemoStore.create(store_path, cell_config=to_dict(env.cell))
    successes, steps = 0, 0
    for index in tqdm(range(episodes), desc="collect", unit="ep", disable=not progress or None):
        rows: dict[str, list] = {}
        scripted = not (random_every and index % random_every == random_every - 1)
        rng = np.random.default_rng(seed + index)

        def on_step(obs: dict, action: np.ndarray, reward: float, info: dict) -> None:
            for key, value in obs.items():
                rows.setdefault(key, []).append(value)
            rows.setdefault("action", []).append(action)
            rows.setdefault("reward", []).append(np.float32(reward))
            rows.setdefault("success", []).append(bool(info["success"]))
            rows.setdefault("terminated", []).append(bool(info["success"] and env.terminate_on_success))
            rows.setdefault("intervention", []).append(False)
            rows.setdefault("stamp_ns", []).append(np.int64(info["stamp_ns"]))

        def act(obs: dict) -> Any:
            return expert.read() if scripted else rng.uniform(-1, 1, 7).astype(np.float32)

        started = time.monotonic()
        result = run_episode(env, act, seed=seed + index, on_step=on_step, on_reset=expert.reset)
        store.append_episode({k: np.stack(v) for k, v in rows.items()},
                             {"task": task, "source": "expert" if scripted else "policy",
                              "operator": "expert" if scripted else "random", "success": result.success,
                              "duration_s": time.monotonic() - started, "seed": seed + index})
        successes += result.success
        steps += result.steps
    env.close()
    return {"store": str(store_path), "episodes": episodes, "steps": steps, "success_rate": successes / episodes}


def run_loop(cell: str, task: str, out: str | Path, budget: LoopBudget, workers: int = 2, seed: int = 0,
             backbone: str | None = None, device: str | None = None,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage; returns the stage results and timings (also written to ``out/loop.json``)."""
    from robolearn.learn.finetune import finetune
    from robolearn.learn.runner import train_from_store
    from robolearn.reward.classifier import ClassifierTrainConfig, save_classifier
    from robolearn.reward.classifier import train_from_store as train_classifier_from_store
    from robolearn.reward.encoders import save_tiny_clip
    from robolearn.store import DemoStore

    out = Path(out)
    if (out / "demos.zarr").exists():
        raise FileExistsError(f"{out} already holds a loop run (demos.zarr); pick a new --out")
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}

    def stage(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        log(f"robolearn loop: {name} ...")
        started = time.monotonic()
        stages[name] = run()
        seconds[name] = round(time.monotonic() - started, 1)
        log(f"robolearn loop: {name} done in {seconds[name]} s")
        return stages[name]

    store, reward_store = str(out / "demos.zarr"), str(out / "reward_data.zarr")
    stage("collect", lambda: collect_episodes(store, cell, task, budget.demos, budget.demo_noise, seed))

    def reward_stage() -> dict[str, Any]:
        data = collect_episodes(reward_store, cell, task, budget.reward_episodes, 0.1, seed + 50_000, random_every=3,
                                run_past_success_steps=REWARD_EPISODE_STEPS)
        encoder = backbone or str(save_tiny_clip(out / "backbone"))
        config = ClassifierTrainConfig(backbone=encoder, steps=budget.reward_steps, seed=seed)
        model, report = train_classifier_from_store(DemoStore.open(reward_store), config, progress=True)
        save_classifier(model, out / "reward")
        return {"checkpoint": str(out / "reward"), "backbone": encoder, "cameras": model.cameras,
                "episodes": data["episodes"], **report}

    stage("reward", reward_stage)
    stage("pretrain", lambda: train_from_store(ALGO, store, task, cell, budget.pretrain_steps, 0, 0,
                                               str(out / "pretrain"), device=device, seed=seed))
    stage("finetune", lambda: finetune(ALGO, store, task, cell, budget.finetune_steps, str(out / "finetune"),
                                       init=str(out / "pretrain" / "last"), reward=f"classifier:{out / 'reward'}",
                                       device=device, seed=seed, eval_episodes=1))
    records = []

    def evaluate_stage() -> dict[str, Any]:
        results = {}
        for name in ("pretrain", "finetune"):
            ckpt = out / name / "last"
            settings = EvalSettings(cell=cell, task=task, episodes=budget.eval_episodes, workers=workers,
                                    seed=100_000 + seed, device=device)
            record = evaluate_policy(str(ckpt), settings)
            save_beside_checkpoint(record, ckpt)
            records.append(record)
            results[name] = {"success_rate": record.success_rate, "ci95": list(record.ci95),
                             "mean_return": float(np.mean(record.returns))}
        return results

    stage("evaluate", evaluate_stage)
    summary = {"cell": cell, "task": task, "budget": asdict(budget), "seconds": seconds,
               "total_minutes": round(sum(seconds.values()) / 60, 2), "stages": stages,
               "success_rate": records[-1].success_rate, "ci95": list(records[-1].ci95)}
    (out / "loop.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    reward = stages["reward"]
    finetuned = stages["finetune"]
    sections = [
        ("Stages (seconds)", {**seconds, "total_minutes": summary["total_minutes"]}),
        ("Demonstrations", {k: v for k, v in stages["collect"].items() if k != "store"}),
        ("Learned reward (success classifier)", {k: v for k, v in reward.items() if isinstance(v, (int, float, str))}),
        ("Online fine-tuning", {k: v for k, v in finetuned.items() if isinstance(v, (int, float, str))}),
    ]
    write_report(out / "report.html", records, title=f"robolearn loop: {task} on {Path(cell).stem}", sections=sections)
    summary["report"] = str(out / "report.html")
    return summary
