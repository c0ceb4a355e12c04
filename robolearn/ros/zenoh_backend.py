"""The ``zenoh`` backend: ROS 2 publish/subscribe that speaks rmw_zenoh (pure pip, no ROS install).

Protocol (ros2/rmw_zenoh, ``docs/design.md`` and ``liveliness_utils.cpp``, Jazzy and later):

- data key expression: ``<domain>/<topic without leading slash>/<pkg>::msg::dds_::<Type>_/<RIHS01 hash>``;
- payload: CDR with its 4-byte encapsulation header (``robolearn.ros.messages.serialize``);
- attachment on every put, 33 bytes: int64 sequence number, int64 source timestamp (ns since the Unix
  epoch, system time like rmw_zenoh's), the length
  16 as one byte, then the 16-byte publisher gid (XXH3-128 of the entity's liveliness key expression,
  low 64 bits first);
- liveliness tokens (what ``ros2 node list`` / ``ros2 topic list`` read)::

      @ros2_lv/<domain>/<zid>/<nid>/<eid>/NN/<enclave>/<namespace>/<node>
      @ros2_lv/<domain>/<zid>/<nid>/<eid>/{MP,MS}/<enclave>/<namespace>/<node>/<topic>/<type>/<hash>/<qos>

  with ``/`` in names replaced by ``%`` and the QoS written as rmw_zenoh does, leaving out values equal
  to its defaults (reliable, volatile, keep-last 42): depth 10 reliable is ``::,10:,:,:,,``.

Network layout (decided for robolearn, same as rmw_zenoh's): every node's session is a *peer* that
listens on ``tcp/127.0.0.1:0`` (localhost only) and connects to a router at ``tcp/localhost:7447``
with multicast scouting off; the router's gossip introduces the peers, which then talk directly. On a
ROS 2 machine that router is ``ros2 run rmw_zenoh_cpp rmw_zenohd``; in robolearn's pure-pip mode
``robolearn launch`` runs one in its supervisor process (``open_router``) when none is listening, and
``robolearn node router`` runs one alone. Peers retry the router until it appears, so start order does
not matter. ``ZenohSettings`` (from the cell's ``ros`` section, the environment, the command line,
or the ``ZENOH_SESSION_CONFIG_URI`` file, as in rmw_zenoh) changes any of this, e.g. to listen on a
LAN interface for a robot PC.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import xxhash
import zenoh

from robolearn.ros import messages
from robolearn.ros.clock import ros_now_ns

ADMIN_SPACE = "@ros2_lv"
ATTACHMENT_FORMAT = "<qqB16s"
ATTACHMENT_BYTES = struct.calcsize(ATTACHMENT_FORMAT)
GID_BYTES = 16
DEFAULT_DEPTH = 42


@dataclass
class ZenohSettings:
    """Where a robolearn zenoh session listens and which router it connects to.

    domain_id: the ROS domain (``ROS_DOMAIN_ID``). router_endpoint: the router peers connect to.
    listen_endpoints: where this session accepts peers (localhost only by default).
    multicast_scouting: off, as in rmw_zenoh. config_file: a zenoh json5 file that replaces all of
    this (``ZENOH_SESSION_CONFIG_URI``).
    """

    domain_id: int = 0
    router_endpoint: str = "tcp/localhost:7447"
    listen_endpoints: tuple[str, ...] = ("tcp/127.0.0.1:0",)
    multicast_scouting: bool = False
    config_file: str = ""

    @classmethod
    def from_env(cls, base: ZenohSettings | None = None, **overrides: Any) -> ZenohSettings:
        """``base`` (default: the defaults), then ``ROS_DOMAIN_ID``, ``ROBOLEARN_ZENOH_ROUTER`` and
        ``ZENOH_SESSION_CONFIG_URI`` where set, then ``overrides`` (None values ignored)."""
        settings = replace(base or cls())
        for variable, key, kind in (("ROS_DOMAIN_ID", "domain_id", int), ("ROBOLEARN_ZENOH_ROUTER", "router_endpoint", str),
                                    ("ZENOH_SESSION_CONFIG_URI", "config_file", str)):
            if os.environ.get(variable):
                setattr(settings, key, kind(os.environ[variable]))
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, value)
        return settings

    @classmethod
    def from_cell(cls, cell: Any, **overrides: Any) -> ZenohSettings:
        """The cell's ``ros`` section (domain, router, listen endpoints; localhost only unless the
        cell says otherwise), then the environment and ``overrides`` as in ``from_env``."""
        ros = cell.ros
        base = cls(domain_id=ros.domain_id, router_endpoint=ros.router_endpoint, listen_endpoints=tuple(ros.listen_endpoints))
        return cls.from_env(base, **overrides)

    def session_config(self) -> zenoh.Config:
        if self.config_file:
            return zenoh.Config.from_file(self.config_file)
        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("listen/endpoints", json.dumps(list(self.listen_endpoints)))
        config.insert_json5("connect/endpoints", json.dumps([self.router_endpoint]))
        config.insert_json5("scouting/multicast/enabled", json.dumps(self.multicast_scouting))
        config.insert_json5("scouting/gossip/enabled", "true")
        return config


def router_config(endpoint: str) -> zenoh.Config:
    config = zenoh.Config()
    config.insert_json5("mode", '"router"')
    config.insert_json5("listen/endpoints", json.dumps([endpoint.replace("localhost", "127.0.0.1")]))
    config.insert_json5("scouting/multicast/enabled", "false")
    return config


def router_listening(endpoint: str, timeout_s: float = 0.2) -> bool:
    """Whether something accepts TCP connections at ``endpoint`` (``tcp/HOST:PORT``)."""
    host, port = endpoint.split("/", 1)[1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def open_router(endpoint: str = "tcp/localhost:7447") -> zenoh.Session:
    """A zenoh router session (what ``rmw_zenohd`` is) listening on ``endpoint``; close it to stop."""
    return zenoh.open(router_config(endpoint))


def free_endpoint() -> str:
    """A ``tcp/127.0.0.1:PORT`` with a currently free port (tests, private graphs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{sock.getsockname()[1]}"


def mangle(name: str) -> str:
    return name.replace("/", "%")


def qos_keyexpr(depth: int = 10, reliable: bool = True) -> str:
    """rmw_zenoh's QoS string, leaving out values equal to its defaults."""
    reliability = "" if reliable else "2"
    history_depth = "" if depth == DEFAULT_DEPTH else str(depth)
    return f"{reliability}::,{history_depth}:,:,:,,"


def topic_keyexpr(domain_id: int, topic: str, typename: str) -> str:
    return f"{domain_id}/{topic.strip('/')}/{messages.dds_type_name(typename)}/{messages.type_hash(typename)}"


def liveliness_keyexpr(
    domain_id: int, zid: str, nid: int, eid: int, kind: str, namespace: str, node: str,
    topic: str = "", typename: str = "", qos: str = "",
) -> str:
    """A token in rmw_zenoh's format; ``kind`` is NN, MP, MS, SS or SC; topic fields for all but NN."""
    parts = [ADMIN_SPACE, str(domain_id), zid, str(nid), str(eid), kind, "%", mangle(namespace or "/"), mangle(node)]
    if kind != "NN":
        parts += [mangle(topic), messages.dds_type_name(typename), messages.type_hash(typename), qos]
    return "/".join(parts)


def entity_gid(keyexpr: str) -> bytes:
    """The 16-byte gid rmw_zenoh derives from a liveliness key expression (XXH3-128, low half first)."""
    return xxhash.xxh3_128_intdigest(keyexpr.encode()).to_bytes(GID_BYTES, "little")


def pack_attachment(sequence: int, source_stamp_ns: int, gid: bytes) -> bytes:
    return struct.pack(ATTACHMENT_FORMAT, sequence, source_stamp_ns, GID_BYTES, gid)


def unpack_attachment(data: bytes) -> tuple[int, int, bytes]:
    """33 bytes → (sequence number, source timestamp ns, publisher gid)."""
    if len(data) != ATTACHMENT_BYTES:
        raise ValueError(f"rmw_zenoh attachment must be {ATTACHMENT_BYTES} bytes, got {len(data)}")
    sequence, stamp, length, gid = struct.unpack(ATTACHMENT_FORMAT, data)
    if length != GID_BYTES:
        raise ValueError(f"attachment gid length must be {GID_BYTES}, got {length}")
    return sequence, stamp, gid


class ZenohPublisher:
    """Publishes one ROS type on one topic; ``publish`` takes a rosbags message, ``publish_cdr`` bytes."""

    def __init__(self, session: zenoh.Session, keyexpr: str, token_keyexpr: str, typename: str, reliable: bool):
        self.typename = typename
        self.keyexpr = keyexpr
        self.gid = entity_gid(token_keyexpr)
        self._publisher = session.declare_publisher(
            keyexpr, reliability=zenoh.Reliability.RELIABLE if reliable else zenoh.Reliability.BEST_EFFORT,
            congestion_control=zenoh.CongestionControl.BLOCK if reliable else zenoh.CongestionControl.DROP,
        )
        self._token = session.liveliness().declare_token(token_keyexpr)
        self._sequence = 0
        self._lock = threading.Lock()

    def publish(self, msg: Any) -> None:
        self.publish_cdr(messages.serialize(msg, self.typename))

    def publish_cdr(self, cdr: bytes | memoryview) -> None:
        with self._lock:
            self._sequence += 1
            attachment = pack_attachment(self._sequence, ros_now_ns(), self.gid)
            self._publisher.put(cdr if isinstance(cdr, bytes) else bytes(cdr), attachment=attachment)

    def has_subscribers(self) -> bool:
        return bool(self._publisher.matching_status.matching)

    def close(self) -> None:
        self._token.undeclare()
        self._publisher.undeclare()


_threads_with_kept_state: set[int] = set()


def keep_thread_state() -> None:
    """Keep the calling foreign thread's Python thread state until the thread ends.

    zenoh-python enters Python from its receive threads with ``PyGILState_Ensure``/``Release`` around
    every sample, which creates and destroys a thread state each time (python/cpython#146219); cold,
    that cost about 0.1 ms per 640x480 image here (docs/ros.md, "Performance"). One outer
    ``PyGILState_Ensure`` that is never released keeps the state: the pattern CPython's C-API docs give
    for foreign threads that call into Python repeatedly. Call with the GIL held (from a callback).
    """
    ident = threading.get_ident()
    if ident not in _threads_with_kept_state:
        ctypes.pythonapi.PyGILState_Ensure()
        _threads_with_kept_state.add(ident)


class ZenohSubscription:
    """Calls ``callback(cdr_bytes, attachment_bytes_or_None)`` on zenoh's receive thread for every sample."""

    def __init__(self, session: zenoh.Session, keyexpr: str, token_keyexpr: str,
                 callback: Callable[[bytes, bytes | None], None]):
        def on_sample(sample: zenoh.Sample) -> None:
            keep_thread_state()
            attachment = sample.attachment
            callback(sample.payload.to_bytes(), None if attachment is None else attachment.to_bytes())

        self.keyexpr = keyexpr
        # Direct, on zenoh's receive thread: samples of all the node's topics reach its queue in arrival
        # order (zenoh-python's default runs each subscriber's callback on a thread of its own, which
        # reorders topics: the recorder pairs each command with the observation it was taken on).
        self._subscriber = session.declare_subscriber(keyexpr, zenoh.handlers.Callback(on_sample, indirect=False))
        self._token = session.liveliness().declare_token(token_keyexpr)

    def close(self) -> None:
        self._token.undeclare()
        self._subscriber.undeclare()


class ZenohNodeBackend:
    """One node on its own zenoh session: the node token, then publishers and subscriptions."""

    def __init__(self, name: str, namespace: str = "/", settings: ZenohSettings | None = None):
        self.settings = settings or ZenohSettings.from_env()
        self.name, self.namespace = name, namespace
        self.session = zenoh.open(self.settings.session_config())
        self.zid = str(self.session.zid())
        self._next_id = 0
        self.node_id = self._new_id()
        self.node_keyexpr = liveliness_keyexpr(
            self.settings.domain_id, self.zid, self.node_id, self.node_id, "NN", namespace, name)
        self._node_token = self.session.liveliness().declare_token(self.node_keyexpr)
        self._entities: list[ZenohPublisher | ZenohSubscription] = []

    def _new_id(self) -> int:
        entity_id, self._next_id = self._next_id, self._next_id + 1
        return entity_id

    def _resolve(self, topic: str) -> str:
        if topic.startswith("/"):
            return topic
        return f"{self.namespace.rstrip('/')}/{topic}"

    def create_publisher(self, typename: str, topic: str, depth: int = 10, reliable: bool = True) -> ZenohPublisher:
        topic = self._resolve(topic)
        token = liveliness_keyexpr(self.settings.domain_id, self.zid, self.node_id, self._new_id(), "MP",
                                   self.namespace, self.name, topic, typename, qos_keyexpr(depth, reliable))
        publisher = ZenohPublisher(self.session, topic_keyexpr(self.settings.domain_id, topic, typename),
                                   token, typename, reliable)
        self._entities.append(publisher)
        return publisher

    def create_subscription(self, typename: str, topic: str, callback: Callable[[bytes, bytes | None], None],
                            depth: int = 10, reliable: bool = True) -> ZenohSubscription:
        topic = self._resolve(topic)
        token = liveliness_keyexpr(self.settings.domain_id, self.zid, self.node_id, self._new_id(), "MS",
                                   self.namespace, self.name, topic, typename, qos_keyexpr(depth, reliable))
        subscription = ZenohSubscription(self.session, topic_keyexpr(self.settings.domain_id, topic, typename),
                                         token, callback)
        self._entities.append(subscription)
        return subscription

    def graph(self, timeout_s: float = 1.0) -> list[str]:
        """Every liveliness token of this domain visible now (``ros2 node list``'s raw material)."""
        replies = self.session.liveliness().get(f"{ADMIN_SPACE}/{self.settings.domain_id}/**", timeout=timeout_s)
        return sorted(str(reply.ok.key_expr) for reply in replies if reply.ok is not None)

    def close(self) -> None:
        for entity in reversed(self._entities):
            entity.close()
        self._entities.clear()
        self._node_token.undeclare()
        self.session.close()
