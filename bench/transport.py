"""Transport benchmark: 640×480 RGB ``sensor_msgs/Image`` at 30 Hz across two processes.

The same run measures raw zenoh puts of the same CDR bytes (the baseline) and the robolearn node API
as the camera node uses it (the frame's CDR built per frame, rmw_zenoh key expression and
attachment; rosbags deserialization and dispatch on the subscriber's spin thread). The two streams
are interleaved (a raw frame, half a period later a node frame), so both see the same machine load.
Latency is one-way on the host monotonic clock shared by both processes: for the node API from
before the frame is serialized (its header stamp) to the subscription callback; for raw zenoh from
the ``put`` to the sample's bytes in a plain zenoh callback (zenoh-python's default, which runs it on
a thread of its own, as the node API runs callbacks on its spin thread). The node subscription keeps
``SUBSCRIPTION_DEPTH`` messages (keep-last 2, what the camera topics use), so frames a real
subscriber would lose to a slow spin thread count as lost here too. A frame counts as delivered only
when it arrives intact (the published shape, the full payload); a wrong one counts in ``*_corrupt``
and as lost. Prints one JSON line last: ``image_30hz_p50_ms``, ``image_30hz_p99_ms``,
``image_30hz_loss`` (node API), the raw baseline's p50/p99/loss, both corrupt counts, and
``overhead_vs_raw_zenoh`` (node p50 / raw p50). Targets: loss 0, p99 ≤ 15 ms, overhead ≤ 1.5×.

    python bench/transport.py [--frames 300]
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import time

import numpy as np
import zenoh

from robolearn.interfaces import now_ns
from robolearn.ros import Node, Received, ZenohSettings, messages
from robolearn.ros.zenoh_backend import free_endpoint, open_router

RAW_KEY = "bench/raw_image"
TOPIC = "/bench/image"
HEIGHT, WIDTH, RATE_HZ = 480, 640, 30.0
SUBSCRIPTION_DEPTH = 2
"""Keep-last depth of the node subscription: what the camera topics use."""
LAST_FRAME_GRACE_S = 1.0
"""How long the subscriber waits for stragglers after it saw the last frame of both streams."""


def subscriber(endpoint: str, frames: int, payload_bytes: int) -> None:
    """Child process: receive both streams, print latencies (ms) of intact frames and counts of
    corrupt ones as JSON. Stops a grace period after the last sequence number of both streams
    arrived (lost frames are not waited for), or at the timeout."""
    settings = ZenohSettings(router_endpoint=endpoint)
    raw_ms: list[float] = []
    node_ms: list[float] = []
    corrupt = {"raw": 0, "node": 0}
    last_seen = {"raw": False, "node": False}

    def on_raw(sample: zenoh.Sample) -> None:
        payload = sample.payload.to_bytes()
        received_ns = now_ns()
        sequence, sent_ns = struct.unpack_from("<qq", sample.attachment.to_bytes())
        last_seen["raw"] |= sequence == frames
        if len(payload) != payload_bytes:
            corrupt["raw"] += 1
            return
        raw_ms.append((received_ns - sent_ns) / 1e6)

    def on_node(received: Received) -> None:
        received_ns = now_ns()
        last_seen["node"] |= received.sequence == frames
        if messages.image_array(received.msg).shape != (HEIGHT, WIDTH, 3):
            corrupt["node"] += 1
            return
        node_ms.append((received_ns - messages.stamp_ns(received.msg)) / 1e6)

    raw = zenoh.open(settings.session_config())
    raw.declare_subscriber(RAW_KEY, on_raw)
    node = Node("bench_listener", settings=settings)
    node.create_subscription(messages.IMAGE, TOPIC, on_node, depth=SUBSCRIPTION_DEPTH)
    print("ready", flush=True)
    node.spin(until=lambda: all(last_seen.values()), timeout_s=frames / RATE_HZ * 2 + 30)
    node.spin(timeout_s=LAST_FRAME_GRACE_S)
    corrupt["node"] += sum(node.dropped.values())  # frames that did not even deserialize
    node.close()
    raw.close()
    print(json.dumps({"raw_ms": raw_ms, "node_ms": node_ms, "corrupt": corrupt}), flush=True)


def percentile_ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames per stream (default 300: 10 s at 30 Hz)")
    parser.add_argument("--role", default="main", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--payload-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sub":
        subscriber(args.endpoint, args.frames, args.payload_bytes)
        return

    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    rgb = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cdr = bytes(messages.serialize(messages.image_msg(rgb, now_ns(), "bench"), messages.IMAGE))
    child = subprocess.Popen([sys.executable, __file__, "--role", "sub", "--endpoint", endpoint,
                              "--frames", str(args.frames), "--payload-bytes", str(len(cdr))],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    node = Node("bench_talker", settings=settings)
    publisher = node.create_publisher(messages.IMAGE, TOPIC, depth=10)
    raw = zenoh.open(settings.session_config())
    raw_publisher = raw.declare_publisher(RAW_KEY, congestion_control=zenoh.CongestionControl.BLOCK)
    time.sleep(1.0)
    gid = bytes(16)
    period_s = 1.0 / RATE_HZ
    start = time.monotonic()
    for i in range(args.frames):
        for offset_s, send_node in ((0.0, False), (period_s / 2, True)):
            delay = start + i * period_s + offset_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if send_node:
                publisher.publish_cdr(messages.image_cdr(rgb, now_ns(), "bench"))
            else:
                raw_publisher.put(cdr, attachment=struct.pack("<qqB16s", i + 1, now_ns(), 16, gid))
    output, _ = child.communicate(timeout=args.frames / RATE_HZ * 2 + 60)
    result_lines = [line for line in output.splitlines() if line.startswith("{")]
    data = json.loads(result_lines[-1])
    node.close()
    raw.close()
    router.close()
    raw_ms, node_ms = np.array(data["raw_ms"]), np.array(data["node_ms"])
    node_p50, raw_p50 = percentile_ms(node_ms, 50), percentile_ms(raw_ms, 50)
    result = {
        "frames": args.frames,
        "subscription_depth": SUBSCRIPTION_DEPTH,
        "image_30hz_p50_ms": node_p50,
        "image_30hz_p99_ms": percentile_ms(node_ms, 99),
        "image_30hz_loss": round(1.0 - len(node_ms) / args.frames, 4),
        "image_30hz_corrupt": data["corrupt"]["node"],
        "raw_zenoh_p50_ms": raw_p50,
        "raw_zenoh_p99_ms": percentile_ms(raw_ms, 99),
        "raw_zenoh_loss": round(1.0 - len(raw_ms) / args.frames, 4),
        "raw_zenoh_corrupt": data["corrupt"]["raw"],
        "overhead_vs_raw_zenoh": round(node_p50 / raw_p50, 3) if node_p50 is not None and raw_p50 else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
