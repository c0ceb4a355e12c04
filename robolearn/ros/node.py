"""The node API every robolearn ROS 2 node is written against, with two backends.

``Node(name, backend="zenoh" | "rclpy" | "auto")`` gives publishers, subscriptions, timers and
parameters in the style of rclpy. Messages are rosbags dataclasses named by their ROS type string
(``"sensor_msgs/msg/Image"``, see ``robolearn.ros.messages``). Subscription callbacks and timers run
on the thread that calls ``spin`` (one at a time, like rclpy's single-threaded executor), so node code
needs no locks. ``spin`` returns on ``shutdown()``, SIGINT, SIGTERM or SIGHUP, after which ``close``
undeclares everything; a node is also a context manager. Stamps on the wire are ROS system time
(``robolearn.ros.clock``).
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robolearn.errors import UsageError
from robolearn.ros import messages
from robolearn.ros.zenoh_backend import ZenohSettings, unpack_attachment

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop a node cleanly (devices disconnected, an arm held)."""
BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass
class Received:
    """One delivered message: the message, its CDR bytes, and the rmw attachment fields."""

    msg: Any
    cdr: bytes
    sequence: int
    source_stamp_ns: int


class Publisher:
    def __init__(self, impl: Any, typename: str):
        self._impl, self.typename = impl, typename

    def publish(self, msg: Any) -> None:
        self._impl.publish(msg)

    def publish_cdr(self, cdr: bytes | memoryview) -> None:
        """Publish already serialized CDR (with encapsulation header) without re-serializing."""
        self._impl.publish_cdr(cdr)

    def has_subscribers(self) -> bool:
        """Whether any subscription on the graph matches this publisher now."""
        return self._impl.has_subscribers()


class Timer:
    def __init__(self, period_s: float, callback: Callable[[], None]):
        if period_s <= 0:
            raise ValueError(f"timer period must be positive, got {period_s} s")
        self.period_s, self.callback = period_s, callback
        self.next_s = time.monotonic() + period_s
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def rclpy_available() -> bool:
    """Whether ``rclpy`` and robolearn's message package (``robolearn_msgs``, built in the ROS
    workspace from ``robolearn/ros/msg``) both import: what the rclpy backend needs."""
    try:
        import rclpy  # noqa: F401
        import robolearn_msgs  # noqa: F401
    except ImportError:
        return False
    return True


class Node:
    """A ROS 2 node. ``parameters``: initial values for ``declare_parameter`` (e.g. from the command line).

    backend: ``zenoh`` (default, pure pip), ``rclpy`` (needs a ROS 2 install) or ``auto`` (rclpy when
    it and ``robolearn_msgs`` import, see ``rclpy_available``, else zenoh). settings: zenoh session
    settings (ignored by rclpy).
    """

    def __init__(self, name: str, namespace: str = "/", backend: str = "zenoh",
                 parameters: dict[str, Any] | None = None, settings: ZenohSettings | None = None):
        if backend == "auto":
            backend = "rclpy" if rclpy_available() else "zenoh"
        if backend == "zenoh":
            from robolearn.ros.zenoh_backend import ZenohNodeBackend

            self._backend: Any = ZenohNodeBackend(name, namespace, settings)
        elif backend == "rclpy":
            from robolearn.ros.rclpy_backend import RclpyNodeBackend

            self._backend = RclpyNodeBackend(name, namespace)
        else:
            raise UsageError(f"unknown ROS backend {backend!r}; use zenoh, rclpy or auto")
        self.name, self.backend = name, backend
        self._overrides = dict(parameters or {})
        self._parameters: dict[str, Any] = {}
        self._events: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._timers: list[Timer] = []
        self._stop = threading.Event()
        self._closed = False
        self._saved_handlers: dict[int, Any] = {}
        self.dropped: dict[str, int] = {}

    @property
    def backend_impl(self) -> Any:
        return self._backend

    def declare_parameter(self, name: str, default: Any) -> Any:
        """The parameter's value: the override given at construction, else ``default``."""
        value = self._overrides.get(name, default)
        if isinstance(default, bool) and isinstance(value, str):
            if value.strip().lower() not in BOOL_WORDS:
                raise UsageError(f"parameter {name!r} of node {self.name!r} must be true or false, got {value!r}")
            value = BOOL_WORDS[value.strip().lower()]
        if default is not None and value is not None and not isinstance(value, type(default)):
            try:
                value = type(default)(value)
            except (TypeError, ValueError) as err:
                raise UsageError(f"parameter {name!r} of node {self.name!r} must be {type(default).__name__}, "
                                 f"got {value!r}") from err
        self._parameters[name] = value
        return value

    def declared_parameters(self) -> dict[str, Any]:
        return dict(self._parameters)

    def undeclared_parameters(self) -> list[str]:
        """Overrides given at construction that no ``declare_parameter`` asked for (typos, as a rule)."""
        return sorted(set(self._overrides) - set(self._parameters))

    def get_parameter(self, name: str) -> Any:
        if name not in self._parameters:
            raise KeyError(f"parameter {name!r} is not declared on node {self.name!r}")
        return self._parameters[name]

    def create_publisher(self, typename: str, topic: str, depth: int = 10, reliable: bool = True) -> Publisher:
        messages.msg_class(typename)
        return Publisher(self._backend.create_publisher(typename, topic, depth, reliable), typename)

    def create_subscription(self, typename: str, topic: str, callback: Callable[[Received], None],
                            depth: int = 10, reliable: bool = True) -> Any:
        """``callback(Received)`` runs in ``spin``. At most ``depth`` messages wait; older ones are dropped
        (keep-last history). A message that does not deserialize as ``typename``, or on which
        ``callback`` raises, is dropped, counted in ``dropped[topic]`` and logged; the node goes on."""
        messages.msg_class(typename)
        if depth < 1:
            raise UsageError(f"subscription depth on {topic} must be at least 1 (messages kept while the spin thread "
                             f"is busy), got {depth}")
        # Keep-last history: appending to a full deque drops its oldest message (atomically, like popleft).
        pending: deque[tuple[bytes, bytes | None]] = deque(maxlen=depth)

        def deliver() -> None:
            try:
                cdr, attachment = pending.popleft()
            except IndexError:  # dropped by the history before its turn
                return
            try:
                sequence, stamp = -1, 0
                if attachment is not None:
                    sequence, stamp, _ = unpack_attachment(attachment)
                received = Received(messages.deserialize(cdr, typename), cdr, sequence, stamp)
            except Exception as err:  # a foreign publisher's bytes: never a reason to stop this node
                self._drop(topic, "malformed", err)
                return
            try:
                callback(received)
            except Exception as err:
                self._drop(topic, "unusable", err)

        def on_data(cdr: bytes, attachment: bytes | None) -> None:
            pending.append((cdr, attachment))
            self._events.put(deliver)

        return self._backend.create_subscription(typename, topic, on_data, depth, reliable)

    def _drop(self, topic: str, why: str, err: Exception) -> None:
        """Count a message that could not be deserialized (``malformed``) or that its callback raised
        on (``unusable``), and say so on stderr (the first few per topic, then every hundredth)."""
        count = self.dropped[topic] = self.dropped.get(topic, 0) + 1
        if count <= 3 or count % 100 == 0:
            print(f"robolearn node {self.name}: dropped a {why} message on {topic} ({count} dropped so far): "
                  f"{type(err).__name__}: {err}", file=sys.stderr, flush=True)

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(period_s, callback)
        self._timers.append(timer)
        return timer

    def spin_once(self, timeout_s: float = 0.1) -> None:
        """Run due timers and at most the pending callbacks, waiting up to ``timeout_s`` for one."""
        now = time.monotonic()
        for timer in self._timers:
            if not timer.cancelled and now >= timer.next_s:
                timer.next_s = max(timer.next_s + timer.period_s, now)
                timer.callback()
        live = [t.next_s for t in self._timers if not t.cancelled]
        wait_s = max(0.0, min([timeout_s, *(t - time.monotonic() for t in live)]))
        try:
            event = self._events.get(timeout=wait_s)
        except queue.Empty:
            return
        while event is not None:
            event()
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                event = None

    def spin(self, until: Callable[[], bool] | None = None, timeout_s: float | None = None) -> None:
        """Process callbacks and timers until ``shutdown()``, SIGINT/SIGTERM/SIGHUP (main thread only;
        SIGHUP: the SSH session or terminal running the node closed), ``until()`` is true, or
        ``timeout_s`` passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                previous[sig] = signal.signal(sig, lambda *_: self.shutdown())
        try:
            while not self._stop.is_set():
                if until is not None and until():
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                self.spin_once(0.05)
            self._drain()
        finally:
            if self._stop.is_set():
                # A second Ctrl-C must not interrupt the clean close; ``close`` restores the handlers.
                self._saved_handlers.update(previous)
            else:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _drain(self) -> None:
        """Run the callbacks of messages that arrived before shutdown, so none is lost on a clean stop."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if event is not None:
                event()

    def shutdown(self) -> None:
        """Make ``spin`` return (safe from any thread and from signal handlers)."""
        self._stop.set()
        self._events.put(None)

    @property
    def ok(self) -> bool:
        return not self._stop.is_set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.close()
        for sig, handler in self._saved_handlers.items():
            signal.signal(sig, handler)
        self._saved_handlers.clear()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
