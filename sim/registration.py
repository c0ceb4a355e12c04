"""The twin's tasks as gymnasium environments: ``gym.make("robolearn/PickCube-v0")`` (registered when
``robolearn.sim`` is imported, or by name: ``gym.make("robolearn.sim:robolearn/PickCube-v0")``).

Keyword arguments of ``gym.make``: ``cell`` (a cell YAML or ``CellConfig``; default the reference
``sim_panda``), ``cameras`` (True: all of the cell's, False: none, or a list of names),
``observation_keys`` (default: ``state`` and the cameras' ``rgb_*``, what a real cell observes; add
``object_state`` for the twin-only privileged pose, ``depth_<camera>`` for depth), ``overrides``
and ``task_overrides`` (``KEY=VALUE`` on the cell and the task), ``real_time``. The time limit is
the task's own ``max_episode_steps`` (the env truncates by itself; gymnasium's ``TimeLimit`` is not
added on top).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym

from robolearn.cell import DEFAULT_CELL, CellConfig
from robolearn.interfaces import real_cell_keys

ENV_IDS = {"reach": "robolearn/Reach-v0", "pick_cube": "robolearn/PickCube-v0", "push_cube": "robolearn/PushCube-v0",
           "pick_cube_reset": "robolearn/PickCubeReset-v0", "push_cube_reset": "robolearn/PushCubeReset-v0"}


def make_task_env(task: str, cell: str | Path | CellConfig = DEFAULT_CELL, cameras: bool | Sequence[str] = True,
                  observation_keys: Sequence[str] | None = None, overrides: Sequence[str] = (),
                  task_overrides: Sequence[str] = (), real_time: bool = False, render_mode: str | None = None) -> gym.Env:
    """The entry point behind every registered id (see the module docstring)."""
    from robolearn.env import make_env

    env = make_env(cell, task, cameras=cameras, overrides=overrides, task_overrides=task_overrides,
                   render_mode=render_mode, real_time=real_time)
    keys = list(observation_keys) if observation_keys is not None else real_cell_keys(env.observation_space.spaces)
    if sorted(keys) == sorted(env.observation_space.spaces):
        return env
    return gym.wrappers.FilterObservation(env, keys)


def register_envs() -> None:
    """Register every twin task under ``ENV_IDS`` (idempotent)."""
    for task, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="robolearn.sim.registration:make_task_env", kwargs={"task": task},
                         disable_env_checker=False, order_enforce=True)
