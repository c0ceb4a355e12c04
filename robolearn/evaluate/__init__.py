"""Evaluation: twin evaluation in parallel workers, the results record shared by sim and real trials,
SIMPLER's sim-vs-real metrics and HTML reports. Running checkpoints on a cell (the deploy gate,
mirroring, real trials) is ``robolearn.deploy``."""

from robolearn.evaluate.results import (
    EpisodeRecord,
    EvalRecord,
    evaluation_path,
    load_records,
    real_evaluation_path,
)
from robolearn.evaluate.stats import mmrv, pearson_r, wilson_interval
from robolearn.evaluate.twin_eval import EvalSettings, ExpertPolicy, evaluate_policy, save_beside_checkpoint

__all__ = [
    "EpisodeRecord", "EvalRecord", "EvalSettings", "ExpertPolicy", "evaluate_policy", "evaluation_path",
    "load_records", "mmrv", "pearson_r", "real_evaluation_path", "save_beside_checkpoint", "wilson_interval",
]
