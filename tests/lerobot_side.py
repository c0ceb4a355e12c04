"""Run under an interpreter with LeRobot installed (LeRobot 0.6 needs Python ≥ 3.12, robolearn's
venv is 3.11): ``python lerobot_side.py COMMAND ARGS...`` prints one JSON object.

- ``write EPISODES.npz FEATURES.json ROOT FPS ROBOT_TYPE``: writes the same episodes with LeRobot's
  own writer (``LeRobotDataset.create`` + ``add_frame`` + ``save_episode``), for comparing files;
- ``tools EXPORT WORK``: LeRobot's own tools on a robolearn export: open and decode it,
  ``LeRobotDataset.resume`` + ``add_frame`` + ``save_episode``, ``lerobot-edit-dataset`` merge of
  the export with the appended copy, ``delete_episodes``; every result is opened and decoded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def write(episodes_npz: str, features_json: str, root: str, fps: str, robot_type: str) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    data = np.load(episodes_npz)
    features = {k: v for k, v in json.loads(Path(features_json).read_text()).items() if k not in BOOKKEEPING}
    for spec in features.values():
        spec.get("info", {}).pop("robolearn", None)
        if spec.get("info") == {}:
            del spec["info"]
        if spec["dtype"] == "video":
            spec.pop("info", None)
            if spec["shape"][-1] == 1:
                spec["info"] = {"is_depth_map": True}
    dataset = LeRobotDataset.create("local/reference", fps=int(fps), features=features, root=root,
                                    robot_type=robot_type or None, use_videos=True)
    for episode in range(int(data["n_episodes"])):
        values = {name: data[f"{episode}/{name}"] for name in features}
        for t in range(len(next(iter(values.values())))):
            frame = {name: np.asarray(v[t]).reshape(features[name]["shape"]) for name, v in values.items()}
            dataset.add_frame({**frame, "task": str(data[f"{episode}/task"])})
        dataset.save_episode()
    dataset.finalize()
    return {"root": root}


def _decode_all(dataset) -> dict:
    """Every frame of ``dataset`` decoded (``dataset[i]``): counts and video shapes."""
    shapes = {}
    for i in range(len(dataset)):
        item = dataset[i]
        shapes = {k: list(item[k].shape) for k in dataset.meta.video_keys}
    return {"episodes": dataset.num_episodes, "frames": dataset.num_frames, "decoded": len(dataset),
            "video_shapes": shapes, "depth_keys": list(dataset.meta.depth_keys)}


def tools(export: str, work: str) -> dict:
    from lerobot.datasets.dataset_tools import delete_episodes
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    work_dir = Path(work)
    opened = LeRobotDataset("local/export", root=export)
    report = {"opened": _decode_all(opened), "state": [opened[i]["observation.state"].tolist() for i in range(len(opened))],
              "depth": [opened[i][k].numpy().tolist() for k in opened.meta.depth_keys for i in (0,)]}
    appended = work_dir / "appended"
    shutil.copytree(export, appended)
    dataset = LeRobotDataset.resume("local/appended", root=appended)
    rng = np.random.default_rng(0)
    for _ in range(5):
        frame = {"task": "appended by lerobot"}
        for name, spec in dataset.meta.features.items():
            if name in BOOKKEEPING:
                continue
            shape = tuple(spec["shape"])
            if name in dataset.meta.depth_keys:
                frame[name] = rng.uniform(0.2, 2.0, shape).astype(np.float32)
            elif spec["dtype"] == "video":
                frame[name] = rng.integers(0, 255, shape, dtype=np.uint8)
            elif spec["dtype"] == "bool":
                frame[name] = np.zeros(shape, bool)
            else:
                frame[name] = rng.uniform(-1, 1, shape).astype(spec["dtype"])
        dataset.add_frame(frame)
    dataset.save_episode()
    dataset.finalize()
    report["appended"] = _decode_all(LeRobotDataset("local/appended", root=appended))
    merged = work_dir / "merged"
    script = Path(sys.executable).parent / "lerobot-edit-dataset"
    result = subprocess.run([str(script), "--new_repo_id", "local/merged", "--new_root", str(merged),
                             "--operation.type", "merge", "--operation.repo_ids", "['local/export', 'local/appended']",
                             "--operation.roots", f"['{export}', '{appended}']"], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"lerobot-edit-dataset merge failed:\n{result.stderr[-4000:]}")
    report["merged"] = _decode_all(LeRobotDataset("local/merged", root=merged))
    deleted = delete_episodes(LeRobotDataset("local/export", root=export), [0], output_dir=work_dir / "deleted",
                              repo_id="local/deleted")
    report["deleted"] = _decode_all(deleted)
    report["paths"] = {"appended": str(appended), "merged": str(merged), "deleted": str(work_dir / "deleted")}
    return report


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    print(json.dumps({"write": write, "tools": tools}[command](*args)))
