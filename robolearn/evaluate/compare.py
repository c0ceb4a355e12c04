"""Sim-vs-real agreement over policies (SIMPLER): pair twin and real records, then Pearson r, MMRV
and the absolute success gaps, per task and over all pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robolearn.errors import DataError
from robolearn.evaluate.results import EvalRecord
from robolearn.evaluate.stats import mmrv, pearson_r


def pair_records(sim: Sequence[EvalRecord], real: Sequence[EvalRecord]) -> list[tuple[EvalRecord, EvalRecord]]:
    """Match records by ``(policy_id, task)``; a key evaluated twice on one side (e.g. one checkpoint
    evaluated in the twins of two cells) is an error naming the cells (which one counts would be a
    guess; ``filter_cell`` picks one)."""
    def index(records: Sequence[EvalRecord], side: str) -> dict[tuple[str, str], EvalRecord]:
        out: dict[tuple[str, str], EvalRecord] = {}
        for record in records:
            key = (record.policy_id, record.task)
            if key in out:
                cells = sorted({out[key].cell, record.cell})
                flag = "--cell" if side == "sim" else "--real-cell"
                fix = (f"pick one cell with {flag} (e.g. {flag} {cells[0]})" if len(cells) > 1 else
                       f"both on cell {cells[0]}: keep one (move the other out of the {side} RESULTS)")
                raise DataError(f"two {side} records for policy {key[0]!r} on task {key[1]!r} (cells {cells}); {fix}")
            out[key] = record
        return out

    sim_index, real_index = index(sim, "sim"), index(real, "real")
    keys = sorted(sim_index.keys() & real_index.keys())
    if not keys:
        raise DataError(f"no policy/task is in both: sim has {sorted(sim_index)}, real has {sorted(real_index)}")
    return [(sim_index[k], real_index[k]) for k in keys]


def filter_cell(records: Sequence[EvalRecord], cell: str | None, side: str) -> list[EvalRecord]:
    """The records of cell ``cell`` (its name; None: all); none left is an error listing the cells."""
    if cell is None:
        return list(records)
    kept = [r for r in records if r.cell == cell]
    if not kept:
        raise DataError(f"no {side} record on cell {cell!r}; the {side} records are on {sorted({r.cell for r in records})}")
    return kept


def _metrics(pairs: Sequence[tuple[EvalRecord, EvalRecord]]) -> dict[str, Any]:
    sim = [s.success_rate for s, _ in pairs]
    real = [r.success_rate for _, r in pairs]
    gaps = np.abs(np.subtract(sim, real))
    out: dict[str, Any] = {"n_policies": len(pairs), "mean_abs_gap": float(gaps.mean()), "max_abs_gap": float(gaps.max())}
    if len(pairs) >= 2:
        out["pearson_r"] = pearson_r(sim, real)
        out["mmrv"] = mmrv(sim=sim, real=real)
    else:
        out["pearson_r"] = out["mmrv"] = None
    return out


def compare_records(sim: Sequence[EvalRecord], real: Sequence[EvalRecord]) -> dict[str, Any]:
    """Pearson r, MMRV and gaps; ``per_task`` when several tasks; ``policies`` lists every pair."""
    pairs = pair_records(sim, real)
    tasks = sorted({s.task for s, _ in pairs})
    result = _metrics(pairs)
    if len(tasks) > 1:
        result["per_task"] = {t: _metrics([p for p in pairs if p[0].task == t]) for t in tasks}
    result["policies"] = [
        {"policy_id": s.policy_id, "task": s.task, "sim_success_rate": s.success_rate, "real_success_rate": r.success_rate,
         "abs_gap": abs(s.success_rate - r.success_rate), "sim_episodes": s.n_episodes, "real_episodes": r.n_episodes}
        for s, r in pairs
    ]
    return result
