"""Pure-pip launch: run a set of nodes, each in its own process, under one supervisor.

A launch YAML names arguments (overridable with ``--set KEY=VALUE``) and nodes::

    args: {cell: configs/cells/sim_panda.yaml, episodes: 3, teleop: expert}
    nodes:
      - {name: recorder, node: recorder, params: {store: "${store}"}, restart: true}
      - {name: twin, node: twin, params: {episodes: "${episodes}", teleop: "${teleop}"}, required: true}
      - {name: teleop, node: teleop, set: ["teleop={type: ${teleop}}"], unless: {teleop: expert}}

``${name}`` is replaced by the argument's value in ``cell``, ``router``, ``set`` and ``params``.
``when: {arg: value}`` runs a node only if every listed argument has that value, ``unless`` skips it
if any has. Each node runs as ``python -m robolearn node NODE --cell CELL --set ... --param k=v ...``
(``set``: cell overrides for this node; ``cell_set`` at the top: for every node), with the
supervisor's terminal as its standard input (a keyboard teleop node reads it). The supervisor starts
a zenoh router at the router endpoint (default: the cell's ``ros.router_endpoint``) unless one is
already listening there (``rmw_zenohd`` on a ROS 2 machine). A node that exits non-zero is reported
and restarted if ``restart: true``; when a ``required`` node exits (with any status) or on
Ctrl-C/SIGTERM/SIGHUP (the SSH session or terminal running the launch closed), every node gets
SIGINT, then SIGKILL after ``stop_timeout_s``. Nodes run in their own sessions, so a terminal's
Ctrl-C (or hang-up) reaches only the supervisor, which forwards one SIGINT to each node. A launch
YAML naming an unknown node type, or two enabled nodes with one name, is refused before anything
starts.
"""

from __future__ import annotations

import contextlib
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
from robolearn.ros.zenoh_backend import ZenohSettings, open_router, router_listening

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals on which the supervisor stops every node (Ctrl-C's SIGINT arrives as KeyboardInterrupt)."""


@dataclass
class LaunchNode:
    """One process: ``node`` is a name from ``robolearn node --help``; params are passed as ``--param``."""

    name: str = ""
    node: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    set: list[str] = field(default_factory=list)
    when: dict[str, Any] = field(default_factory=dict)
    unless: dict[str, Any] = field(default_factory=dict)
    restart: bool = False
    max_restarts: int = 3
    required: bool = False

    def enabled(self, args: dict[str, Any]) -> bool:
        """Whether ``when`` and ``unless`` let this node run with launch arguments ``args``."""
        return (all(str(args.get(k)) == str(v) for k, v in self.when.items())
                and not any(str(args.get(k)) == str(v) for k, v in self.unless.items()))


@dataclass
class LaunchConfig:
    """args: launch arguments. cell: the cell YAML every node loads; cell_set: cell overrides for
    every node. router: the zenoh router endpoint (empty: the cell's ``ros.router_endpoint``, then
    ``ROBOLEARN_ZENOH_ROUTER``). stop_timeout_s: SIGINT to SIGKILL on stop."""

    args: dict[str, Any] = field(default_factory=dict)
    cell: str = "${cell}"
    cell_set: list[str] = field(default_factory=list)
    router: str = ""
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
    config.router = _substitute(config.router, config.args, source)
    config.cell_set = _substitute(config.cell_set, config.args, source)
    for node in config.nodes:
        if not node.node:
            raise ConfigError(source, f"nodes.{node.name}.node", "missing; name the node to run, e.g. twin or recorder")
        node.name = node.name or node.node
        node.params = _substitute(node.params, config.args, source)
        node.set = _substitute(node.set, config.args, source)
    config.nodes = [node for node in config.nodes if node.enabled(config.args)]
    check_nodes(config.nodes, source)
    return config


def check_nodes(nodes: list[LaunchNode], source: str) -> None:
    """Raise ``ConfigError`` for a node type ``robolearn node`` does not know, or two enabled nodes
    with one name (the supervisor tells processes apart by name)."""
    from robolearn.ros.nodes import NODE_NAMES

    seen: set[str] = set()
    for node in nodes:
        if node.node not in NODE_NAMES:
            raise ConfigError(source, f"nodes.{node.name}.node",
                              f"unknown node {node.node!r}; choose one of: {', '.join(NODE_NAMES)}")
        if node.name in seen:
            raise ConfigError(source, f"nodes.{node.name}",
                              "two enabled nodes have this name; give each a unique name (or make their when/unless "
                              "conditions exclusive)")
        seen.add(node.name)


def resolve_router(config: LaunchConfig) -> str:
    """The router endpoint of ``config``: its own, else the cell's (and the environment's)."""
    if config.router:
        return config.router
    from robolearn.cell import load_cell

    return ZenohSettings.from_cell(load_cell(config.cell, config.cell_set)).router_endpoint


class Supervisor:
    """Starts, watches and stops the node processes of one ``LaunchConfig``."""

    def __init__(self, config: LaunchConfig, log=print):  # noqa: ANN001
        check_nodes(config.nodes, "launch config")
        self.config, self._log = config, log
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self.exit_codes: dict[str, int] = {}
        self._stopping = False
        self._router = None
        self.router = resolve_router(config)

    def log(self, line: str) -> None:
        """Report ``line``; a terminal that went away (SSH closed: EIO) must not stop the shutdown."""
        with contextlib.suppress(OSError):
            self._log(line)

    def command(self, node: LaunchNode) -> list[str]:
        cmd = [sys.executable, "-m", "robolearn", "node", node.node, "--cell", self.config.cell,
               "--router", self.router, "--param", f"node_name={node.name}"]
        for override in [*self.config.cell_set, *node.set]:
            cmd += ["--set", override]
        for key, value in node.params.items():
            cmd += ["--param", f"{key}={value}"]
        return cmd

    def start(self, node: LaunchNode) -> None:
        self.procs[node.name] = subprocess.Popen(self.command(node), start_new_session=True)
        self.log(f"robolearn launch: started {node.name} (pid {self.procs[node.name].pid})")

    def run(self) -> dict[str, Any]:
        """Run until a required node exits or Ctrl-C; returns exit codes and restart counts."""
        if not router_listening(self.router):
            self._router = open_router(self.router)
            self.log(f"robolearn launch: zenoh router on {self.router}")
        in_main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS} if in_main else {}
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
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._router is not None:
                self._router.close()
        return {"exit_codes": self.exit_codes, "restarts": self.restarts}

    def request_stop(self) -> None:
        self._stopping = True

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.log(f"robolearn launch: {signal.Signals(signum).name}; stopping all nodes")
        self.request_stop()

    def stop_all(self) -> None:
        """SIGINT to every running node, then SIGKILL to those still running after ``stop_timeout_s``.
        A node that the SIGINT ended before it could handle it (still importing: Python exits by the
        signal, code −2, or with 130) stopped as asked and counts as exit code 0."""
        interrupted = set()
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                interrupted.add(name)
        deadline = time.monotonic() + self.config.stop_timeout_s
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"robolearn launch: {name} did not stop in {self.config.stop_timeout_s} s; killing")
                proc.kill()
                proc.wait()
            code = proc.returncode
            self.exit_codes.setdefault(name, 0 if name in interrupted and code in (-signal.SIGINT, 130) else code)
