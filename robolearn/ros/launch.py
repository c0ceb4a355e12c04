"""Pure-pip launch: run a set of nodes, each in its own process, under one supervisor.

A launch YAML names arguments (overridable with ``--set KEY=VALUE``) and nodes::

    args: {cell: configs/cells/sim_panda.yaml, episodes: 3}
    nodes:
      - {name: recorder, node: recorder, params: {store: "${store}"}, restart: true}
      - {name: twin, node: twin, params: {episodes: "${episodes}"}, required: true}

Each node runs as ``python -m robolearn node NODE --cell CELL --param k=v ...``. The supervisor
starts a zenoh router at the router endpoint unless one is already listening there (``rmw_zenohd``
on a ROS 2 machine). A node that exits non-zero is reported and restarted if ``restart: true``; when
a ``required`` node exits (with any status) or on Ctrl-C/SIGTERM, every node gets SIGINT, then
SIGKILL after ``stop_timeout_s``. Nodes run in their own sessions, so a terminal's Ctrl-C reaches only the
supervisor, which forwards one SIGINT to each node.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robolearn.config import ConfigError, apply_overrides, from_dict, read_yaml
from robolearn.ros.zenoh_backend import open_router, router_listening


@dataclass
class LaunchNode:
    """One process: ``node`` is a name from ``robolearn node --help``; params are passed as ``--param``."""

    name: str = ""
    node: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    restart: bool = False
    max_restarts: int = 3
    required: bool = False


@dataclass
class LaunchConfig:
    args: dict[str, Any] = field(default_factory=dict)
    cell: str = "${cell}"
    router: str = "tcp/localhost:7447"
    stop_timeout_s: float = 10.0
    nodes: list[LaunchNode] = field(default_factory=list)


def _substitute(value: Any, args: dict[str, Any], source: str) -> Any:
    if isinstance(value, str):
        def repl(match: re.Match) -> str:
            key = match.group(1)
            if key not in args:
                raise ConfigError(source, key, f"${{{key}}} is not defined under args; known: {', '.join(args)}")
            return str(args[key])

        return re.sub(r"\$\{(\w+)\}", repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, args, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, args, source) for v in value]
    return value


def load_launch(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LaunchConfig:
    """Load a launch YAML; ``overrides`` ``KEY=VALUE`` set ``args`` (``episodes=5``) or any key (``router=...``)."""
    data = read_yaml(path)
    args_keys = set((data.get("args") or {}).keys())
    routed = [f"args.{o}" if o.split("=", 1)[0] in args_keys else o for o in overrides]
    data = apply_overrides(data, routed)
    config = from_dict(LaunchConfig, data, source=str(path))
    source = str(path)
    config.cell = _substitute(config.cell, config.args, source)
    for node in config.nodes:
        node.params = _substitute(node.params, config.args, source)
        if not node.node:
            raise ConfigError(source, f"nodes.{node.name}.node", "missing; name the node to run, e.g. twin or recorder")
        node.name = node.name or node.node
    return config


class Supervisor:
    """Starts, watches and stops the node processes of one ``LaunchConfig``."""

    def __init__(self, config: LaunchConfig, log=print):  # noqa: ANN001
        self.config, self.log = config, log
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self.exit_codes: dict[str, int] = {}
        self._stopping = False
        self._router = None

    def command(self, node: LaunchNode) -> list[str]:
        cmd = [sys.executable, "-m", "robolearn", "node", node.node, "--cell", self.config.cell,
               "--router", self.config.router, "--param", f"node_name={node.name}"]
        for key, value in node.params.items():
            cmd += ["--param", f"{key}={value}"]
        return cmd

    def start(self, node: LaunchNode) -> None:
        env = dict(os.environ)
        env.setdefault("MUJOCO_GL", "egl")
        self.procs[node.name] = subprocess.Popen(self.command(node), env=env, start_new_session=True)
        self.log(f"robolearn launch: started {node.name} (pid {self.procs[node.name].pid})")

    def run(self) -> dict[str, Any]:
        """Run until a required node exits or Ctrl-C; returns exit codes and restart counts."""
        if not router_listening(self.config.router):
            self._router = open_router(self.config.router)
            self.log(f"robolearn launch: zenoh router on {self.config.router}")
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda *_: self.request_stop()) if in_main else None
        try:
            for node in self.config.nodes:
                self.start(node)
            while not self._stopping:
                time.sleep(0.2)
                for node in self.config.nodes:
                    proc = self.procs[node.name]
                    code = proc.poll()
                    if code is None or node.name in self.exit_codes:
                        continue
                    if node.required:
                        self.log(f"robolearn launch: {node.name} exited ({code}); stopping all")
                        self.exit_codes[node.name] = code
                        self._stopping = True
                    elif code != 0 and node.restart and self.restarts.get(node.name, 0) < node.max_restarts:
                        self.restarts[node.name] = self.restarts.get(node.name, 0) + 1
                        self.log(f"robolearn launch: {node.name} crashed ({code}); restart "
                                 f"{self.restarts[node.name]}/{node.max_restarts}")
                        self.start(node)
                    else:
                        self.log(f"robolearn launch: {node.name} exited ({code})")
                        self.exit_codes[node.name] = code
        except KeyboardInterrupt:
            self.log("robolearn launch: interrupted; stopping all nodes")
        finally:
            self.stop_all()
            if in_main:
                signal.signal(signal.SIGTERM, previous)
            if self._router is not None:
                self._router.close()
        return {"exit_codes": self.exit_codes, "restarts": self.restarts}

    def request_stop(self) -> None:
        self._stopping = True

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + self.config.stop_timeout_s
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"robolearn launch: {name} did not stop in {self.config.stop_timeout_s} s; killing")
                proc.kill()
                proc.wait()
            self.exit_codes.setdefault(name, proc.returncode)
