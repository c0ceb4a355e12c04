"""Twin speed: physics with the arm's controller, and control steps with rendered cameras.

Prints a last-line JSON with ``physics_realtime_factor`` (simulated seconds per wall second, the
Cartesian controller running at every physics step), ``physics_only_realtime_factor`` (bare
``mj_step``, the baseline measured in the same run), ``control_steps_per_s_2cam_128`` and
``control_steps_per_s_2cam_480x640`` (env steps at the control rate with two cameras rendering
color and depth). Targets on a 2-core machine: physics ≥ 50× real time, ≥ 40 steps/s at 128×128.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.cell import load_cell  # noqa: E402
from robolearn.env import make_env  # noqa: E402
from robolearn.sim import Twin  # noqa: E402

CELL = "configs/cells/sim_panda.yaml"


def physics_factor(seconds: float, with_controller: bool) -> float:
    twin = Twin(load_cell(CELL))
    n_steps = round(seconds * twin.physics_hz)
    start = time.perf_counter()
    if with_controller:
        twin.advance(seconds)
    else:
        for _ in range(n_steps):
            mujoco.mj_step(twin.model, twin.data)
    return seconds / (time.perf_counter() - start)


def control_steps_per_s(width: int, height: int, n_steps: int) -> float:
    overrides = [f"cameras.{i}.{key}={value}" for i in (0, 1) for key, value in (("width_px", width), ("height_px", height))]
    overrides += ["cameras.1.depth=true"]
    env = make_env(CELL, "pick_cube", seed=0, overrides=overrides)
    rng = np.random.default_rng(0)
    env.step(env.action_space.sample())
    start = time.perf_counter()
    for _ in range(n_steps):
        env.step(rng.uniform(-1, 1, 7).astype(np.float32))
    rate = n_steps / (time.perf_counter() - start)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per physics measurement")
    parser.add_argument("--steps", type=int, default=200, help="control steps per camera measurement")
    args = parser.parse_args()
    result = {
        "physics_realtime_factor": physics_factor(args.seconds, with_controller=True),
        "physics_only_realtime_factor": physics_factor(args.seconds, with_controller=False),
        "control_steps_per_s_2cam_128": control_steps_per_s(128, 128, args.steps),
        "control_steps_per_s_2cam_480x640": control_steps_per_s(640, 480, max(args.steps // 4, 10)),
    }
    result["controller_cost_fraction"] = 1.0 - result["physics_realtime_factor"] / result["physics_only_realtime_factor"]
    result["targets_met"] = result["physics_realtime_factor"] >= 50 and result["control_steps_per_s_2cam_128"] >= 40
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
