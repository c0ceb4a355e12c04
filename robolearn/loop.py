"""The main job, end to end on the twin, from the cameras: collect expert demonstrations → train a
success classifier (the learned reward) → pretrain the RLPD agent offline (behaviour cloning of its
actor and image encoder on the demonstrations' frames) → fine-tune that same agent online with the
learned reward (its encoder frozen and the frames' embeddings cached, demonstrations mixed 50/50
into every batch, the scripted expert standing in for the human who intervenes) → evaluate the
pretrained and the fine-tuned policy on the same seeds in K workers → ``report.html``.

Every policy observes ``state`` and the cell's cameras (``rgb_*``), what a real cell has. Each stage
is the function behind its own command, called with the loop's settings: ``robolearn collect``
(demonstrations and the classifier's data), ``robolearn reward train``, ``robolearn train --algo
rlpd``, ``robolearn finetune --algo rlpd --init ... --reward classifier:... --teleop expert``,
``robolearn eval`` (the record is stored beside each checkpoint, where ``robolearn deploy`` looks).
The cell is loaded once and handed to every stage. The policy the loop hands over is the one with
the better twin success rate (the fine-tuned one on a tie).

Layout of ``out``: ``demos.zarr`` (demonstrations, then the online episodes), ``reward_data.zarr``
(episodes that run past success: half by the expert, a quarter by a very noisy expert, mostly
failures, and a quarter of uniformly random actions, the states a fresh policy visits),
``backbone/`` (a small random CLIP when none is given, for machines that cannot download weights),
``reward/``, ``pretrain/`` and ``finetune/`` (each a run with ``run.yaml`` and ``last``, with
``evaluations/``), ``loop.json``, ``report.html``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from robolearn.cell import CellConfig, as_cell, cell_label
from robolearn.collect import CollectSettings, collect
from robolearn.errors import AlreadyExistsError, DataError
from robolearn.evaluate.report import write_report
from robolearn.evaluate.twin_eval import EvalSettings, evaluate_policy, save_beside_checkpoint
from robolearn.interfaces import real_cell_keys

FINETUNE_ALGO = "rlpd"
REWARD_EPISODE_STEPS = 50
FAILURE_NOISE = 1.0


LOOP_ENCODER = ("encoder.image=fast_cnn", "encoder.image_size_px=64", "encoder.image_latent_dim=64")
"""The image encoder every loop stage shares: a CPU trains it on the demonstrations' own frames."""


@dataclass(frozen=True)
class LoopBudget:
    """How much of each stage to run. demos: expert episodes (``demo_noise``: action noise std as a
    fraction of the range); reward_episodes: episodes recorded past success for the classifier, half
    by the expert with ``demo_noise``, a quarter with noise ``FAILURE_NOISE`` (mostly failures), a
    quarter of uniformly random actions; reward_steps: classifier head updates; pretrain_steps:
    behaviour-cloning steps of the RLPD agent (batch ``pretrain_batch``); finetune_steps: online env
    steps; finetune_critics: RLPD's critic ensemble (10 in RLPD and SERL, 2 in HIL-SERL);
    finetune_utd: critic updates per env step; critic_warmup: fine-tuning update cycles that train
    only the critics; eval_episodes: twin episodes per policy (the same seeds for both)."""

    demos: int
    demo_noise: float
    reward_episodes: int
    reward_steps: int
    pretrain_steps: int
    pretrain_batch: int
    finetune_steps: int
    finetune_critics: int
    finetune_utd: int
    critic_warmup: int
    eval_episodes: int


BUDGETS = {
    "small": LoopBudget(demos=40, demo_noise=0.1, reward_episodes=16, reward_steps=1000, pretrain_steps=2000,
                        pretrain_batch=64, finetune_steps=2000, finetune_critics=2, finetune_utd=2, critic_warmup=500,
                        eval_episodes=40),
    "medium": LoopBudget(demos=100, demo_noise=0.1, reward_episodes=48, reward_steps=2000, pretrain_steps=10_000,
                         pretrain_batch=128, finetune_steps=20_000, finetune_critics=10, finetune_utd=4,
                         critic_warmup=1000, eval_episodes=100),
    "large": LoopBudget(demos=300, demo_noise=0.1, reward_episodes=150, reward_steps=5000, pretrain_steps=30_000,
                        pretrain_batch=256, finetune_steps=100_000, finetune_critics=10, finetune_utd=20,
                        critic_warmup=2000, eval_episodes=100),
}


def collect_all(settings: CollectSettings) -> dict[str, Any]:
    """``robolearn collect`` with these settings; raises when fewer episodes could be committed."""
    result = collect(settings)
    if result["episodes_committed"] < settings.episodes:
        raise DataError(f"collect committed {result['episodes_committed']} of {settings.episodes} episodes into "
                           f"{settings.store} ({result['episodes_discarded']} discarded)")
    return result


def start_run(cls: type, overrides: tuple[str, ...], **fields: Any) -> Any:
    """A loop stage's run config, built, recorded and written as ``robolearn train``/``finetune`` do."""
    from robolearn.learn.runs import build_run, prepare_run_dir, provenance

    run = build_run(cls, fields, overrides=overrides)
    run.provenance = provenance(run, argv=["loop"])
    prepare_run_dir(run, resume=False)
    return run


def run_loop(cell: str | CellConfig, task: str, out: str | Path, budget: LoopBudget, workers: int = 2, seed: int = 0,
             backbone: str | None = None, device: str | None = None,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage; returns the stage results and timings (also written to ``out/loop.json``)."""
    from robolearn.evaluate.stats import paired_difference
    from robolearn.learn.finetune import finetune
    from robolearn.learn.runs import FinetuneRun, TrainRun
    from robolearn.learn.train import train_from_store
    from robolearn.reward.classifier import ClassifierTrainConfig, save_classifier
    from robolearn.reward.classifier import train_from_store as train_classifier_from_store
    from robolearn.reward.encoders import save_tiny_clip
    from robolearn.store import DemoStore

    cell = as_cell(cell)
    out = Path(out)
    if (out / "demos.zarr").exists():
        raise AlreadyExistsError(f"{out} already holds a loop run (demos.zarr); pick a new --out")
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
    stage("collect", lambda: collect_all(CollectSettings(cell=cell, task=task, store=store, episodes=budget.demos,
                                                         noise=budget.demo_noise, seed=seed)))

    def reward_stage() -> dict[str, Any]:
        past_success = ["terminate_on_success=false", f"max_episode_steps={REWARD_EPISODE_STEPS}"]
        quarter = budget.reward_episodes // 4
        clean = collect_all(CollectSettings(cell=cell, task=task, store=reward_store,
                                            episodes=budget.reward_episodes - 2 * quarter, noise=budget.demo_noise,
                                            seed=seed + 50_000, operator="expert", task_overrides=past_success))
        noisy = collect_all(CollectSettings(cell=cell, task=task, store=reward_store, episodes=quarter, noise=FAILURE_NOISE,
                                            seed=seed + 60_000, operator="noisy expert", task_overrides=past_success))
        # What a fresh policy does (the gripper closed on nothing, the arm raised empty): without these
        # negatives the classifier calls a closed gripper at home a success.
        aimless = collect_all(CollectSettings(cell=cell, task=task, store=reward_store, episodes=quarter, teleop="random",
                                              seed=seed + 70_000, operator="random", task_overrides=past_success))
        encoder = backbone or str(save_tiny_clip(out / "backbone"))
        config = ClassifierTrainConfig(backbone=encoder, steps=budget.reward_steps, seed=seed)
        model, report = train_classifier_from_store(DemoStore.open(reward_store), config, progress=True)
        save_classifier(model, out / "reward")
        return {"checkpoint": str(out / "reward"), "backbone": encoder, "cameras": model.cameras,
                "episodes": clean["episodes_committed"] + noisy["episodes_committed"] + aimless["episodes_committed"],
                "episode_success_rate": {"expert": clean["success_rate"], "noisy expert": noisy["success_rate"],
                                         "random": aimless["success_rate"]},
                **report}

    stage("reward", reward_stage)
    keys = real_cell_keys(DemoStore.open(store, mode="r").keys)
    common = {"algo": FINETUNE_ALGO, "store": store, "task": task, "cell": cell, "obs": keys, "seed": seed,
              "device": device}
    pretrain_run = start_run(TrainRun, (*LOOP_ENCODER, f"batch_size={budget.pretrain_batch}"), **common,
                             out=str(out / "pretrain"), steps=budget.pretrain_steps, eval_every=0)
    stage("pretrain", lambda: train_from_store(pretrain_run))
    finetune_run = start_run(FinetuneRun, (*LOOP_ENCODER, "encoder.cache=true", f"n_critics={budget.finetune_critics}",
                                           f"utd={budget.finetune_utd}", f"critic_warmup_steps={budget.critic_warmup}"),
                             **common, out=str(out / "finetune"), init=str(out / "pretrain" / "last"),
                             reward=f"classifier:{out / 'reward'}", teleop="expert", steps=budget.finetune_steps,
                             eval_episodes=0)
    stage("finetune", lambda: finetune(finetune_run))
    records = {}

    def evaluate_stage() -> dict[str, Any]:
        for name in ("pretrain", "finetune"):
            ckpt = out / name / "last"
            settings = EvalSettings(cell=cell, task=task, episodes=budget.eval_episodes, workers=workers,
                                    seed=100_000 + seed, device=device)
            records[name] = evaluate_policy(str(ckpt), settings)
            save_beside_checkpoint(records[name], ckpt)
        gain, interval = paired_difference([e.success for e in records["finetune"].episode_results],
                                           [e.success for e in records["pretrain"].episode_results])
        return {**{name: {"success_rate": r.success_rate, "ci95": list(r.ci95), "mean_return": r.summary()["mean_return"]}
                   for name, r in records.items()},
                "improvement": gain, "improvement_ci95": list(interval)}

    stage("evaluate", evaluate_stage)
    best = max(records, key=lambda name: (records[name].success_rate, name == "finetune"))
    improvement = stages["evaluate"]
    summary = {"cell": cell_label(cell), "task": task, "budget": asdict(budget), "seconds": seconds,
               "total_minutes": round(sum(seconds.values()) / 60, 2), "stages": stages,
               "policy": str(out / best / "last"), "policy_stage": best, "observations": keys,
               "twin_only": "object_state" in keys, "success_rate": records[best].success_rate,
               "ci95": list(records[best].ci95),
               "pretrained_success_rate": records["pretrain"].success_rate,
               "finetuned_success_rate": records["finetune"].success_rate,
               "improvement": improvement["improvement"], "improvement_ci95": improvement["improvement_ci95"],
               "reward_false_positive_rate_online": stages["finetune"].get("reward_false_positive_rate")}
    (out / "loop.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    scalars = (int, float, str)
    low, high = improvement["improvement_ci95"]
    sections = [
        ("Stages (seconds)", {**seconds, "total_minutes": summary["total_minutes"]}),
        ("Pretrained vs fine-tuned (same seeds)", [
            {"policy": name, "observes": ", ".join(keys), "success_rate": r.success_rate, "ci95": list(r.ci95),
             "episodes": r.n_episodes} for name, r in records.items()] + [
            {"policy": "fine-tuned − pretrained", "observes": "", "success_rate": improvement["improvement"],
             "ci95": [low, high], "episodes": budget.eval_episodes}]),
        ("Result", {"policy": summary["policy"], "success_rate": summary["success_rate"], "observes": ", ".join(keys)}),
        ("Demonstrations", {k: v for k, v in stages["collect"].items() if isinstance(v, scalars)}),
        ("Learned reward (success classifier)", {k: v for k, v in stages["reward"].items() if isinstance(v, scalars)}),
        ("Online fine-tuning", {k: v for k, v in stages["finetune"].items() if isinstance(v, scalars)}),
    ]
    names = list(records)
    write_report(out / "report.html", [records[n] for n in names], title=f"robolearn loop: {task} on {cell.name}",
                 sections=sections, headline=names.index(best))
    summary["report"] = str(out / "report.html")
    return summary
