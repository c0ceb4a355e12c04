"""Robotiq 2F / Hand-E gripper on a UR arm, through the Robotiq URCap's ASCII socket (port 63352).

The URCap accepts ``SET <VAR> <value>`` (answered ``ack``) and ``GET <VAR>`` (answered
``<VAR> <value>``). Variables: ACT (activate), GTO (go to), POS (0 open .. 255 closed), SPE, FOR
(0..255), STA (3 when activated), OBJ (object detection).
"""

from __future__ import annotations

import socket
import time


class RobotiqSocketGripper:
    def __init__(self, host: str, port: int = 63352, timeout_s: float = 2.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._sock: socket.socket | None = None

    def connect(self, activate_timeout_s: float = 5.0) -> None:
        """Connect and activate (the gripper opens and closes once on first activation)."""
        self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        if self.get("STA") != 3:
            self.set("ACT", 1)
            deadline = time.monotonic() + activate_timeout_s
            while self.get("STA") != 3:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Robotiq gripper at {self.host}:{self.port} did not activate in {activate_timeout_s} s")
                time.sleep(0.05)
        self.set("GTO", 1)

    def _ask(self, line: str) -> str:
        if self._sock is None:
            raise ConnectionError("Robotiq gripper is not connected")
        self._sock.sendall(line.encode("ascii") + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = self._sock.recv(1024)
            if not chunk:
                raise ConnectionError(f"Robotiq gripper at {self.host}:{self.port} closed the connection")
            reply += chunk
        return reply.decode("ascii").strip()

    def set(self, var: str, value: int) -> None:
        reply = self._ask(f"SET {var} {int(value)}")
        if reply != "ack":
            raise ConnectionError(f"Robotiq gripper refused 'SET {var} {value}': {reply!r}")

    def get(self, var: str) -> int:
        reply = self._ask(f"GET {var}")
        name, _, value = reply.partition(" ")
        if name != var:
            raise ConnectionError(f"Robotiq gripper answered {reply!r} to 'GET {var}'")
        return int(value)

    def move(self, position: int, speed: int = 255, force: int = 100) -> None:
        """Go to ``position`` (0 open .. 255 closed) without waiting."""
        self.set("SPE", speed)
        self.set("FOR", force)
        self.set("POS", max(0, min(255, position)))

    def disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
