"""Learner: encoders, critic ensembles, BC/IQL/Cal-QL/RLPD/WSRL, replay, checkpoints, policies."""

from robolearn.learn.agent_policy import load_policy

__all__ = ["load_policy"]
