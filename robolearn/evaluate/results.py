"""The results record shared by twin evaluations and real trials, and where it is stored.

One ``EvalRecord`` is one policy evaluated on one cell and task, in the twin (``kind: sim``) or on
the real cell (``kind: real``): per-episode outcomes plus the success rate and its Wilson 95%
interval. It is a JSON file; ``robolearn compare`` pairs sim and real records by ``policy_id`` and
``task``. The twin evaluation of a checkpoint is also stored beside it, at
``<ckpt>/evaluations/<cell>__<task>.json``, where ``robolearn deploy`` looks for it; its real trials
at ``<ckpt>/evaluations/real/<cell>__<task>.json``. A trial the operator aborted (quit) stays in
the record but counts in no rate: ``n_episodes``, ``successes`` and ``success_rate`` are over the
completed episodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn import __version__
from robolearn.errors import DataError, NotFoundError, UsageError
from robolearn.evaluate.stats import wilson_interval

FORMAT = "robolearn.eval/1"
KINDS = ("sim", "real")


@dataclass
class EpisodeRecord:
    """One episode: ``seed`` it was reset with (None on the real cell), ground-truth or marked
    ``success``, undiscounted ``episode_return``, ``steps``, safety ``violations`` count, what ended it
    (``success``, ``time_limit``, ``failure``, ``stop``, ``reset``, ``quit``), its video file if
    written, and whether it was ``aborted`` (the operator quit mid-trial: no outcome, in no rate)."""

    index: int
    seed: int | None
    success: bool
    episode_return: float
    steps: int
    violations: int = 0
    ended_by: str = "time_limit"
    video: str | None = None
    aborted: bool = False


@dataclass
class EvalRecord:
    """One policy on one cell and task. ``policy_id`` names the policy across machines (default:
    ``<run dir>/<checkpoint dir>``); ``policy_step`` is its training step when known;
    ``policy_sha256``: digest of the checkpoint's weights when evaluated; ``failure_frames``: ``{"index", "png_base64"}`` last camera frames of some failed episodes."""

    kind: str
    policy: str
    policy_id: str
    cell: str
    task: str
    episode_results: list[EpisodeRecord]
    seed: int | None = None
    policy_step: int | None = None
    policy_sha256: str | None = None
    success_source: str = "ground_truth"
    failure_frames: list[dict[str, Any]] = field(default_factory=list)
    created_unix_s: float = field(default_factory=time.time)
    robolearn_version: str = __version__

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.completed:
            raise DataError("an evaluation record needs at least one completed (not aborted) episode")

    @property
    def completed(self) -> list[EpisodeRecord]:
        """The episodes with an outcome (not aborted): the ones every rate counts."""
        return [e for e in self.episode_results if not e.aborted]

    @property
    def n_aborted(self) -> int:
        return len(self.episode_results) - len(self.completed)

    @property
    def n_episodes(self) -> int:
        return len(self.completed)

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.completed)

    @property
    def success_rate(self) -> float:
        return self.successes / self.n_episodes

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n_episodes)

    @property
    def returns(self) -> list[float]:
        return [e.episode_return for e in self.completed]

    def summary(self) -> dict[str, Any]:
        """The headline numbers (what ``robolearn eval --json`` prints first); ``episodes`` counts the
        completed ones, ``aborted`` the trials the operator quit."""
        return {
            "kind": self.kind, "policy": self.policy, "policy_id": self.policy_id, "cell": self.cell,
            "task": self.task, "success_rate": self.success_rate, "ci95": list(self.ci95),
            "episodes": self.n_episodes, "successes": self.successes, "aborted": self.n_aborted,
            "mean_return": float(np.mean(self.returns)), "returns": self.returns, "seed": self.seed,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.summary(), **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> EvalRecord:
        if data.get("format") != FORMAT:
            raise DataError(f"{source}: not a robolearn evaluation record (format {data.get('format')!r}, "
                             f"expected {FORMAT!r}); write one with `robolearn eval --json` or `--out`")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "episode_results"}
        return cls(episode_results=[EpisodeRecord(**e) for e in data["episode_results"]], **fields)

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file, then rename) so a reader never sees half a record."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalRecord:
        return cls.from_dict(_read_json(path), source=str(path))


def _read_json(path: str | Path) -> Any:
    """The JSON in ``path``; a file that is not JSON raises ValueError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); an evaluation record is written by `robolearn eval`; "
                         "fix or remove this file") from err


def policy_id_of(policy: str | Path) -> str:
    """``<parent>/<name>`` of a checkpoint directory: stable across machines, unlike full paths."""
    path = Path(policy)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def model_digest(ckpt_dir: str | Path) -> str:
    """SHA-256 of ``model.safetensors``: ties an evaluation to the exact weights it scored."""
    digest = hashlib.sha256()
    with open(Path(ckpt_dir) / "model.safetensors", "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluation_path(ckpt_dir: str | Path, cell: str, task: str) -> Path:
    """Where the twin evaluation of ``ckpt_dir`` on ``cell`` (the cell's name) and ``task`` lives."""
    return Path(ckpt_dir) / "evaluations" / f"{cell}__{Path(task).stem}.json"


def real_evaluation_path(ckpt_dir: str | Path, cell: str, task: str) -> Path:
    """Where real trials of ``ckpt_dir`` on ``cell`` and ``task`` are stored by default
    (``<ckpt>/evaluations/real/<cell>__<task>.json``); a path already taken gets the next free
    ``<cell>__<task>.<n>.json``, so a record of real trials is never overwritten."""
    path = Path(ckpt_dir) / "evaluations" / "real" / f"{cell}__{Path(task).stem}.json"
    n = 2
    while path.exists():
        path = path.with_name(f"{cell}__{Path(task).stem}.{n}.json")
        n += 1
    return path


def load_records(paths: Iterable[str | Path], kind: str | None = None) -> list[EvalRecord]:
    """Records from files (one record, or a JSON list of records) and directories (every
    ``*.json`` record below them, recursively; other JSON files are skipped). With ``kind``, records
    of the other kind found in directories are skipped (a checkpoint's ``evaluations/`` holds both),
    and one in a file named explicitly is an error."""
    records: list[EvalRecord] = []
    for path in map(Path, paths):
        if path.is_dir():
            for file in sorted(path.rglob("*.json")):
                data = _read_json(file)
                items = data if isinstance(data, list) else [data]
                records += [EvalRecord.from_dict(d, str(file)) for d in items if isinstance(d, dict)
                            and d.get("format") == FORMAT and (kind is None or d.get("kind") == kind)]
        elif path.is_file():
            data = _read_json(path)
            found = [EvalRecord.from_dict(d, str(path)) for d in (data if isinstance(data, list) else [data])]
            wrong = [r.policy_id for r in found if kind is not None and r.kind != kind]
            if wrong:
                raise UsageError(f"{path}: records on the wrong side ({wrong} are not {kind} records); --sim takes "
                                 "twin records, --real real trials")
            records += found
        else:
            raise NotFoundError(f"{path}: no such results file or directory")
    return records
