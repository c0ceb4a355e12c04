"""``robolearn encoder``: pretrained image encoders for the learner (conversion to safetensors)."""

from __future__ import annotations

import argparse

from robolearn.cli.common import add_json_flag, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("encoder", help="pretrained image encoders: convert weights to safetensors",
                                  description="Pretrained trunks for encoder.image (robolearn/learn/vision.py). "
                                  "Weights load from local files only, as safetensors (torchvision's own .pth "
                                  "release is read with weights_only=True).")
    sub = group.add_subparsers(dest="encoder_command", metavar="SUBCOMMAND", required=True)
    serl = sub.add_parser(
        "convert-serl", help="SERL's ImageNet ResNet-10 (resnet10_params.pkl) → safetensors for encoder.image=resnet10",
        description="Read SERL's pickled Flax parameter tree with an unpickler that builds only numpy arrays and "
        "dicts, and write the ResNet-10 trunk as safetensors. Then train with --set encoder.image=resnet10 --set "
        "encoder.weights=OUT (the trunk is frozen, its spatial-embeddings head trains, as in SERL).")
    serl.add_argument("pickle", help="resnet10_params.pkl (github.com/rail-berkeley/serl/releases/tag/resnet10)")
    serl.add_argument("out", help="the .safetensors file to write")
    add_json_flag(serl)
    serl.set_defaults(func=run_convert_serl)


def run_convert_serl(args: argparse.Namespace) -> int:
    from robolearn.learn.serl_weights import convert_serl_resnet10

    emit(convert_serl_resnet10(args.pickle, args.out), args.json)
    return 0
