"""A self-contained HTML report of evaluations: success over checkpoints (with 95% intervals), the
return histogram, failure frames, a table of every record, and optional extra tables (pipeline
stages, sim-vs-real metrics). Plots are matplotlib PNGs embedded as base64, so the report is one file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import DataError
from robolearn.evaluate.results import EvalRecord


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(png_base64: str, alt: str, width_px: int | None = None) -> str:
    width = f' width="{width_px}"' if width_px else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64}"{width}>'


def _one_run(records: Sequence[EvalRecord]) -> bool:
    """Whether the records are checkpoints of one training run with known steps (``<run>/<ckpt>`` ids)."""
    runs = {r.policy_id.rsplit("/", 1)[0] if "/" in r.policy_id else "" for r in records}
    return len(runs) == 1 and all(r.policy_step is not None for r in records)


def success_plot(records: Sequence[EvalRecord]) -> str:
    """Success rate per record with Wilson 95% intervals: over training steps for the checkpoints of
    one run, else over the records in the given order, labeled by policy."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2))
    axes = figure.subplots()
    by_step = _one_run(records)
    for kind, marker in (("sim", "o"), ("real", "s")):
        group = [(i, r) for i, r in enumerate(records) if r.kind == kind]
        if not group:
            continue
        x = [float(r.policy_step) if by_step else float(i) for i, r in group]
        order = np.argsort(x, kind="stable")
        x = np.array(x)[order]
        rate = np.array([group[i][1].success_rate for i in order])
        low, high = np.array([group[i][1].ci95 for i in order]).T
        axes.errorbar(x, rate, yerr=[rate - low, high - rate], marker=marker, capsize=3, label=kind)
    if not by_step:
        axes.set_xticks(range(len(records)), [r.policy_id for r in records], rotation=15, fontsize=8)
    axes.set_xlabel("training step" if by_step else "checkpoint")
    axes.set_ylabel("success rate")
    axes.set_ylim(-0.05, 1.05)
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def return_histogram(record: EvalRecord) -> str:
    """Histogram of the completed episodes' returns, successes and failures stacked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2))
    axes = figure.subplots()
    returns = np.array(record.returns)
    success = np.array([e.success for e in record.completed], dtype=bool)
    bins = np.histogram_bin_edges(returns, bins=min(20, max(5, len(returns) // 2)))
    axes.hist([returns[success], returns[~success]], bins=bins, stacked=True, label=["success", "failure"],
              color=["tab:green", "tab:red"])
    axes.set_xlabel("episode return")
    axes.set_ylabel("episodes")
    axes.legend()
    return _png(figure)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(k, '')))}</td>" for k in keys) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(f"{v:.3f}" for v in value) + "]"
    return str(value)


STYLE = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}figure{display:inline-block;margin:4px}figcaption{font-size:0.85em;color:#555}"""


def render_report(records: Sequence[EvalRecord], title: str = "robolearn evaluation",
                  sections: Sequence[tuple[str, list[dict[str, Any]] | dict[str, Any]]] = (),
                  headline: int = -1) -> str:
    """The report as HTML text. ``records``: evaluations over checkpoints; ``records[headline]`` is
    the one summarized first, with its return histogram and failure frames. ``sections``: extra
    ``(heading, table)`` pairs, a table being a list of row dicts or one dict (key/value rows)."""
    if not records:
        raise DataError("a report needs at least one evaluation record")
    main = records[headline]
    low, high = main.ci95
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p><b>{html.escape(main.policy_id)}</b> on <b>{html.escape(main.cell)}</b> / "
             f"<b>{html.escape(main.task)}</b> ({main.kind}): success {main.successes}/{main.n_episodes} = "
             f"{main.success_rate:.2f} (95% CI {low:.2f}–{high:.2f}), mean return {np.mean(main.returns):.3f}</p>"]
    for heading, table in sections:
        rows = [{"key": k, "value": v} for k, v in table.items()] if isinstance(table, dict) else table
        parts.append(f"<h2>{html.escape(heading)}</h2>{_table(rows)}")
    parts.append("<h2>Success over checkpoints</h2>" + _img(success_plot(records), "success over checkpoints"))
    parts.append("<h2>Return histogram</h2>" + _img(return_histogram(main), "return histogram"))
    parts.append("<h2>Failure frames</h2>")
    if main.failure_frames:
        for frame in main.failure_frames:
            index = frame["index"]
            caption = f"episode {index} (seed {main.episode_results[index].seed})"
            parts.append(f"<figure>{_img(frame['png_base64'], caption, 192)}<figcaption>{caption}</figcaption></figure>")
    else:
        parts.append("<p>no failed episode with a camera frame</p>")
    rows = [{"policy": r.policy_id, "kind": r.kind, "step": r.policy_step, "episodes": r.n_episodes,
             "success_rate": r.success_rate, "ci95": list(r.ci95), "mean_return": float(np.mean(r.returns))}
            for r in records]
    parts.append("<h2>Evaluations</h2>" + _table(rows))
    episodes = [{"episode": e.index, "seed": e.seed, "success": e.success, "return": e.episode_return,
                 "steps": e.steps, "violations": e.violations, "ended_by": "aborted (quit)" if e.aborted else e.ended_by}
                for e in main.episode_results]
    parts.append(f"<h2>Episodes of {html.escape(main.policy_id)}</h2>" + _table(episodes))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, records: Sequence[EvalRecord], title: str = "robolearn evaluation",
                 sections: Sequence[tuple[str, list[dict[str, Any]] | dict[str, Any]]] = (),
                 headline: int = -1) -> Path:
    """Write ``render_report(...)`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(records, title, sections, headline))
    return path
