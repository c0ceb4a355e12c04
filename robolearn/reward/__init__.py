"""Reward models (docs/rewards.md): the twin oracle, a success classifier on a
frozen CLIP/SigLIP encoder, CLIP goal–baseline similarity, a VLM judge over an OpenAI-compatible
endpoint, and a Bradley–Terry reward model trained from VLM preferences.

``load_reward_model(spec, env=None)`` builds any of them; ``spec`` is ``oracle``,
``classifier:<dir>``, ``preference:<dir>``, ``clip:<yaml>``, ``vlm:<yaml>``, a checkpoint
directory or a reward YAML with a ``type`` key. Heavy dependencies (``transformers``) load only
when a backend that needs them is built.
"""

from robolearn.reward.base import RewardConfig, load_reward_model, parse_reward_spec

__all__ = ["RewardConfig", "load_reward_model", "parse_reward_spec"]
