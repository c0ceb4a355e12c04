"""SERL's ImageNet ResNet-10 (``resnet10_params.pkl`` in rail-berkeley/serl's releases) → safetensors.

SERL publishes the weights as a pickled Flax parameter tree. A pickle can run any code, so it is
read once here with an unpickler that builds only numpy arrays and dicts (anything else is refused
before it is constructed), and written as a safetensors file in the parameter names of
``robolearn.learn.vision.GroupNormResNet(10)``, which loads at run time with no pickle involved.

The tree (``serl_launcher/vision/resnet_v1.py``, ``ResNetEncoder`` with stage sizes (1, 1, 1, 1)):
``conv_init/kernel`` (7, 7, 3, 64) and ``norm_init/{scale, bias}``, then ``ResNetBlock_0..3`` with
``Conv_0``, ``MyGroupNorm_0``, ``Conv_1``, ``MyGroupNorm_1`` and, where the shape changes,
``conv_proj`` and ``norm_proj``; Flax kernels are HWIO, PyTorch's OIHW. The ImageNet classifier
(``output_head``) is not part of the trunk and is left out (reported).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import DataError, NotFoundError

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
DICT_GLOBALS = {("collections", "OrderedDict"), ("flax.core.frozen_dict", "FrozenDict")}
"""Mappings a Flax tree may be pickled as; they are rebuilt as plain dicts."""
SKIPPED_SUBTREES = ("output_head",)
BLOCK_PARTS = {"Conv_0": "conv1", "MyGroupNorm_0": "bn1", "Conv_1": "conv2", "MyGroupNorm_1": "bn2",
               "conv_proj": "down.0", "norm_proj": "down.1"}


class _ArraysAndDicts(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if (module, name) in DICT_GLOBALS:
            return dict
        raise DataError(f"the pickle asks for {module}.{name}, which is neither a numpy array nor a dict; refusing "
                        "to load it (a pickle can run code). Convert only SERL's published resnet10_params.pkl")


def read_param_tree(path: str | Path) -> dict[str, Any]:
    """The nested dict of numpy arrays in a pickled parameter tree, read with ``_ArraysAndDicts``."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file; download resnet10_params.pkl from "
                            "https://github.com/rail-berkeley/serl/releases/tag/resnet10 on a machine with internet")
    tree = _ArraysAndDicts(io.BytesIO(path.read_bytes())).load()
    if not isinstance(tree, dict):
        raise DataError(f"{path} holds a {type(tree).__name__}, not a parameter tree (a dict of arrays)")
    return tree


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        elif isinstance(value, np.ndarray):
            out[name] = value
        else:
            raise DataError(f"parameter {name} is a {type(value).__name__}, not an array")
    return out


def _torch_name(flax_name: str) -> str | None:
    """The ``GroupNormResNet`` parameter a Flax parameter path maps to (None: not in the trunk)."""
    parts = flax_name.split("/")
    if parts[0] in SKIPPED_SUBTREES:
        return None
    leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}.get(parts[-1])
    if parts[0] == "conv_init" and leaf:
        return "stem.0.weight"
    if parts[0] == "norm_init" and leaf:
        return f"stem.1.{leaf}"
    if parts[0].startswith("ResNetBlock_") and len(parts) == 3 and parts[1] in BLOCK_PARTS and leaf:
        return f"stages.{int(parts[0].split('_')[1])}.{BLOCK_PARTS[parts[1]]}.{leaf}"
    raise DataError(f"parameter {flax_name} is not part of SERL's ResNet-10 (resnetv1-10); is this resnet10_params.pkl?")


def convert_serl_resnet10(pickle_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Write SERL's ResNet-10 at ``pickle_path`` as safetensors at ``out_path`` in
    ``GroupNormResNet(10)``'s names; returns what was converted and what was left out."""
    import torch
    from safetensors.torch import save_file

    from robolearn.learn.vision import GroupNormResNet

    flat = _flatten(read_param_tree(pickle_path))
    trunk = GroupNormResNet(10).state_dict()
    converted: dict[str, torch.Tensor] = {}
    skipped = []
    for name, array in flat.items():
        target = _torch_name(name)
        if target is None:
            skipped.append(name)
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if tensor.ndim == 4:
            tensor = tensor.permute(3, 2, 0, 1).contiguous()  # HWIO → OIHW
        if tuple(tensor.shape) != tuple(trunk[target].shape):
            raise DataError(f"parameter {name} has shape {tuple(array.shape)}, which does not fit {target} "
                            f"{tuple(trunk[target].shape)} of ResNet-10")
        converted[target] = tensor
    missing = sorted(set(trunk) - set(converted))
    if missing:
        raise DataError(f"{pickle_path} lacks {len(missing)} ResNet-10 tensors ({missing[:3]}); is this resnet10_params.pkl?")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(converted, str(out_path))
    return {"out": str(out_path), "tensors": len(converted), "parameters": int(sum(t.numel() for t in converted.values())),
            "skipped": skipped}
