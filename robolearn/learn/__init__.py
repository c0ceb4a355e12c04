"""Learner: encoders, critic ensembles, BC/IQL/Cal-QL/RLPD/WSRL, replay, checkpoints, policies.

The Python API on any gymnasium env: ``train_online`` (``robolearn.learn.online``), ``train_offline``
and ``evaluate`` (``robolearn.learn.api``), ``load_policy`` (a checkpoint as a ``Policy``)."""

from robolearn.learn.agent_policy import load_policy
from robolearn.learn.api import evaluate, train_offline
from robolearn.learn.online import TrainResult, train_online

__all__ = ["TrainResult", "evaluate", "load_policy", "train_offline", "train_online"]
