"""Per-frame latency of the success-classifier reward on CPU, against one twin env step.

The reward is computed once per env step during ``robolearn finetune --reward classifier``, so the
number that matters is its latency relative to a step. Backbones are randomly initialized (no
downloads here) with the shapes of the real ones: compute cost does not depend on the weights.
Prints one JSON line: ms per scored observation (two 128×128 cameras) per backbone, ms per twin
step with cameras, and their ratios.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from robolearn.env import make_env
from robolearn.reward.classifier import ClassifierReward, SuccessHead
from robolearn.reward.encoders import load_encoder, save_tiny_clip

SHAPES = {
    "tiny-64px": None,
    "vit-b-32-224px": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32),
}


def build_backbone(name: str, root: Path) -> Path:
    import transformers

    if SHAPES[name] is None:
        return save_tiny_clip(root / name)
    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2),
        vision_config=SHAPES[name], projection_dim=512)
    transformers.CLIPModel(config).save_pretrained(root / name)
    return root / name


def time_ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    env = make_env(task="pick_cube", cameras=True, seed=0)
    obs, _ = env.reset(seed=0)
    action = np.zeros(7, np.float32)
    result = {"env_step_ms": time_ms(lambda: env.step(action), 50), "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHAPES:
            encoder = load_encoder(build_backbone(name, Path(tmp)))
            grid = 4
            head = SuccessHead(2 * encoder.spatial_dim(grid))
            model = ClassifierReward(encoder, head, ["front", "wrist"], 0.5, grid)
            ms = time_ms(lambda m=model: m(obs), 20)
            result[f"{name}_ms"] = ms
            result[f"{name}_vs_env_step"] = ms / result["env_step_ms"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
