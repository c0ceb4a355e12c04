"""The zenoh backend speaks rmw_zenoh: cross-process pub/sub, CDR bytes, attachments, liveliness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zenoh

from robolearn.cell import load_cell
from robolearn.interfaces import ArmState
from robolearn.ros import Node, ZenohSettings, messages
from robolearn.ros.zenoh_backend import (
    ATTACHMENT_BYTES,
    entity_gid,
    free_endpoint,
    open_router,
    topic_keyexpr,
    unpack_attachment,
)

CELL = "configs/cells/sim_panda.yaml"


@pytest.fixture
def router():
    endpoint = free_endpoint()
    session = open_router(endpoint)
    yield endpoint
    session.close()


def settings(endpoint: str) -> ZenohSettings:
    return ZenohSettings(router_endpoint=endpoint)


PUBLISHER_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from robolearn.ros import Node, ZenohSettings, messages
    node = Node("talker", settings=ZenohSettings(router_endpoint=sys.argv[1]))
    pub = node.create_publisher(messages.IMAGE, "/camera/front/image")
    ready = node.create_subscription("std_msgs/msg/Empty", "/ready", lambda r: node.shutdown())
    node.spin(timeout_s=20)
    for i in range(20):
        rgb = np.full((4, 5, 3), i, np.uint8)
        pub.publish(messages.image_msg(rgb, 1_000_000_000 + i, "front"))
        time.sleep(0.01)
    time.sleep(0.5)
    node.close()
""")


def test_cross_process_image_pubsub(router):
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER_SCRIPT, router])
    got = []
    try:
        with Node("listener", settings=settings(router)) as node:
            node.create_subscription(messages.IMAGE, "/camera/front/image", got.append, depth=100)
            ready = node.create_publisher("std_msgs/msg/Empty", "/ready")
            empty = messages.msg_class("std_msgs/msg/Empty")()
            deadline = time.monotonic() + 30
            while len(got) < 20 and time.monotonic() < deadline:
                if not got:
                    ready.publish(empty)
                node.spin(timeout_s=0.2)
    finally:
        assert proc.wait(timeout=30) == 0
    assert [r.sequence for r in got] == list(range(1, 21))
    for i, received in enumerate(got):
        assert messages.stamp_ns(received.msg) == 1_000_000_000 + i
        np.testing.assert_array_equal(messages.image_array(received.msg), np.full((4, 5, 3), i, np.uint8))
        assert received.source_stamp_ns > 0


def test_wire_bytes_equal_rosbags_cdr_and_attachment_is_rmw_zenoh(router):
    state = ArmState(q_rad=np.linspace(-1, 1, 7), dq_rad_s=np.zeros(7), ee_pos_m=np.array([0.5, 0.0, 0.3]),
                     ee_quat_wxyz=np.array([1.0, 0, 0, 0]), gripper_width_m=0.04, stamp_ns=1_500_000_007)
    msg = messages.joint_state_msg(state, [f"joint{i}" for i in range(1, 8)])
    expected = bytes(messages.serialize(msg, messages.JOINT_STATE))
    key = topic_keyexpr(0, "/joint_states", messages.JOINT_STATE)
    assert key == ("0/joint_states/sensor_msgs::msg::dds_::JointState_/"
                   "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e")
    raw = zenoh.open(settings(router).session_config())
    samples = []
    raw.declare_subscriber(key, lambda s: samples.append((s.payload.to_bytes(), s.attachment.to_bytes())))
    with Node("arm", settings=settings(router)) as node:
        pub = node.create_publisher(messages.JOINT_STATE, "joint_states")
        deadline = time.monotonic() + 10
        while not samples and time.monotonic() < deadline:
            pub.publish(msg)
            time.sleep(0.1)
        gid = pub._impl.gid
    raw.close()
    payload, attachment = samples[0]
    assert payload == expected
    assert payload[:4] == b"\x00\x01\x00\x00"
    assert len(attachment) == ATTACHMENT_BYTES == 33
    sequence, stamp, sent_gid = unpack_attachment(attachment)
    assert sequence >= 1 and stamp > 0 and sent_gid == gid


def test_liveliness_tokens_in_rmw_zenoh_format(router):
    with Node("recorder", namespace="/cell", settings=settings(router)) as node, \
            Node("observer", settings=settings(router)) as observer:
        node.create_publisher(messages.SAFETY_VIOLATION, "/arm/violations", depth=10)
        node.create_subscription(messages.IMAGE, "camera/front/image", lambda r: None, depth=5, reliable=False)
        zid = node.backend_impl.zid
        deadline = time.monotonic() + 10
        tokens: list[str] = []
        while len(tokens) < 3 and time.monotonic() < deadline:
            tokens = [t for t in observer.backend_impl.graph() if f"/{zid}/" in t]
    assert f"@ros2_lv/0/{zid}/0/0/NN/%/%cell/recorder" in tokens
    violation_hash = messages.type_hash(messages.SAFETY_VIOLATION)
    assert (f"@ros2_lv/0/{zid}/0/1/MP/%/%cell/recorder/%arm%violations/"
            f"robolearn_msgs::msg::dds_::SafetyViolation_/{violation_hash}/::,10:,:,:,,") in tokens
    image_hash = messages.type_hash(messages.IMAGE)
    assert (f"@ros2_lv/0/{zid}/0/2/MS/%/%cell/recorder/%cell%camera%front%image/"
            f"sensor_msgs::msg::dds_::Image_/{image_hash}/2::,5:,:,:,,") in tokens
    assert len(tokens) == 3


def test_gid_is_xxh3_of_token_and_hashes_match_ros():
    assert messages.type_hash("std_msgs/msg/String") == (
        "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18")
    # XXH3-128("abc") = 0x06b05ab6733a6185_78af5f94892f3950; rmw_zenoh copies the low half first.
    assert entity_gid("abc") == bytes.fromhex("50392f89945faf78" "85613a73b65ab006")
    for typename in (messages.TELEOP_COMMAND, messages.EPISODE_CONTROL, messages.SAFETY_VIOLATION):
        assert messages.type_hash(typename).startswith("RIHS01_")


def test_node_parameters_and_timer(router):
    with Node("timed", settings=settings(router), parameters={"rate_hz": "20", "bad": "nope"}) as node:
        assert node.declare_parameter("rate_hz", 10.0) == 20.0
        assert node.declare_parameter("topic", "/x") == "/x"
        with pytest.raises(ValueError, match="must be float"):
            node.declare_parameter("bad", 1.0)
        ticks = []
        node.create_timer(0.02, lambda: ticks.append(1))
        node.spin(until=lambda: len(ticks) >= 5, timeout_s=5)
    assert len(ticks) >= 5


def test_subscription_keeps_the_last_depth_messages(router):
    """Messages that arrive while the spin thread is busy wait in a keep-last history of ``depth``:
    the oldest are dropped, the newest delivered in order."""
    with Node("talker", settings=settings(router)) as talker, Node("listener", settings=settings(router)) as listener:
        got = []
        listener.create_subscription("std_msgs/msg/String", "/chatter", lambda r: got.append(r.msg.data), depth=3)
        publisher = talker.create_publisher("std_msgs/msg/String", "/chatter")
        string = messages.msg_class("std_msgs/msg/String")
        deadline = time.monotonic() + 10
        while not publisher.has_subscribers() and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(8):
            publisher.publish(string(data=str(i)))
        time.sleep(1.0)  # all eight arrive (reliable, localhost) before the listener spins
        listener.spin(until=lambda: len(got) >= 3, timeout_s=5)
        listener.spin(timeout_s=0.3)
    assert got == ["5", "6", "7"]
    with Node("empty", settings=settings(router)) as node, pytest.raises(ValueError, match="depth on /chatter must be at least 1"):
        node.create_subscription("std_msgs/msg/String", "/chatter", got.append, depth=0)


def test_zenoh_receive_threads_keep_their_python_thread_state_between_samples(router):
    """Subscription callbacks run on zenoh's receive threads, which enter Python once per sample. Their
    Python thread state (here: a ``threading.local``) lives on from one sample to the next instead of
    being created and destroyed each time (``keep_thread_state``, 0.1 ms per camera frame)."""
    local = threading.local()
    counts_by_thread: dict[int, list[int]] = {}

    def on_data(cdr: bytes, attachment: bytes | None) -> None:
        count = getattr(local, "count", 0)
        counts_by_thread.setdefault(threading.get_ident(), []).append(count)
        local.count = count + 1

    with Node("talker", settings=settings(router)) as talker, Node("listener", settings=settings(router)) as listener:
        listener.backend_impl.create_subscription("std_msgs/msg/String", "/chatter", on_data)
        publisher = talker.create_publisher("std_msgs/msg/String", "/chatter")
        deadline = time.monotonic() + 10
        while not publisher.has_subscribers() and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(20):
            publisher.publish(messages.msg_class("std_msgs/msg/String")(data=str(i)))
            time.sleep(0.01)
        deadline = time.monotonic() + 5
        while sum(map(len, counts_by_thread.values())) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sum(map(len, counts_by_thread.values())) == 20
    assert max(map(len, counts_by_thread.values())) >= 2
    for counts in counts_by_thread.values():
        assert counts == list(range(len(counts)))


def _listening_sockets() -> dict[int, str]:
    """This process's listening TCP sockets: inode → local address (hex, as /proc/net/tcp* has it)."""
    own = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            own.add(int(target[8:-1]))
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[9]) in own:  # state LISTEN
                listening[int(fields[9])] = fields[1].split(":")[0]
    return listening


def test_sessions_listen_on_localhost_only(router):
    before = _listening_sockets()
    with Node("local", settings=settings(router)):
        opened = {inode: address for inode, address in _listening_sockets().items() if inode not in before}
    assert opened  # the node's session accepts peers...
    assert set(opened.values()) == {"0100007F"}  # ...on 127.0.0.1 only


def test_settings_from_cell_env_and_flags(monkeypatch):
    for variable in ("ROS_DOMAIN_ID", "ROBOLEARN_ZENOH_ROUTER", "ZENOH_SESSION_CONFIG_URI"):
        monkeypatch.delenv(variable, raising=False)
    assert ZenohSettings.from_cell(load_cell(CELL)).listen_endpoints == ("tcp/127.0.0.1:0",)
    lan = load_cell(CELL, ["ros.domain_id=3", "ros.router_endpoint=tcp/10.0.0.2:7447", "ros.listen_endpoints=[tcp/10.0.0.5:0]"])
    from_cell = ZenohSettings.from_cell(lan)
    assert (from_cell.domain_id, from_cell.router_endpoint, from_cell.listen_endpoints) == (
        3, "tcp/10.0.0.2:7447", ("tcp/10.0.0.5:0",))
    monkeypatch.setenv("ROS_DOMAIN_ID", "7")
    assert ZenohSettings.from_cell(lan).domain_id == 7  # the environment overrides the cell
    assert ZenohSettings.from_cell(lan, domain_id=9, router_endpoint=None).domain_id == 9  # a flag overrides both
    config = json.loads(from_cell.session_config().get_json("listen/endpoints"))
    assert config == ["tcp/10.0.0.5:0"]
