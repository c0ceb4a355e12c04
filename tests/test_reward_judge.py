"""VLM judge client against a local OpenAI-compatible chat-completions server.

Test scaffolding: ``ChatServer`` is a small HTTP server on 127.0.0.1 that speaks the
chat-completions protocol (the request and reply shapes vLLM and Ollama use) and answers from a
queue of scripted behaviours, so timeouts, server errors, malformed replies and the cache are
exercised over real sockets with the real client.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import imagecodecs
import numpy as np
import pytest

from robolearn.reward import load_reward_model
from robolearn.reward.vlm_judge import (
    JudgeClient,
    JudgeConfig,
    JudgeError,
    image_data_url,
    parse_preference,
    yes_probability,
)


def completion(text: str, top: dict[str, float] | None = None) -> dict:
    """A chat completion whose first token has ``top`` (token → probability) as top log-probabilities."""
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top is not None:
        entries = [{"token": t, "logprob": math.log(p)} for t, p in top.items()]
        choice["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}]}
    return {"id": "cmpl-1", "object": "chat.completion", "model": "test", "choices": [choice]}


class ChatServer:
    """Test scaffolding: an OpenAI-compatible ``POST /v1/chat/completions`` server.

    ``script``: behaviours consumed one per request; each is a dict reply, ``("status", code)``,
    ``("sleep", seconds, reply)``, ``("raw", bytes)``, or a callable of the request JSON returning a
    reply. When the script is empty, ``default`` answers. ``requests`` records every request body.
    """

    def __init__(self, default=None):
        self.script: list = []
        self.default = default
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                action = server.script.pop(0) if server.script else server.default
                if callable(action):
                    action = action(body)
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    action = action[2]
                if isinstance(action, tuple) and action[0] == "status":
                    self.send_response(action[1])
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                payload = action[1] if isinstance(action, tuple) else json.dumps(action).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


YES_DEFAULT = 0.85  # the default reply's p(yes) + p(Yes) over p(yes) + p(Yes) + p(no)


@pytest.fixture
def server():
    srv = ChatServer(default=completion("yes", {"yes": 0.8, "no": 0.15, "Yes": 0.05}))
    yield srv
    srv.close()


def client_for(server: ChatServer, tmp_path, **kw) -> JudgeClient:
    config = dict(base_url=server.base_url, model="test-vlm", timeout_s=2.0, max_retries=2, backoff_s=0.01,
                  max_requests_per_s=0, cache_dir=str(tmp_path / "cache"))
    config.update(kw)
    return JudgeClient(JudgeConfig(**config))


IMAGE = (np.arange(16 * 16 * 3) % 251).astype(np.uint8).reshape(16, 16, 3)


def test_success_prob_from_logprobs_and_request_shape(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client = client_for(server, tmp_path)
    assert client.success_prob(IMAGE, "lift the cube") == pytest.approx(YES_DEFAULT)
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "test-vlm" and body["logprobs"] is True and body["max_tokens"] == 1
    text, image = body["messages"][0]["content"]
    assert "lift the cube" in text["text"]
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = imagecodecs.png_decode(base64.b64decode(url.split(",", 1)[1]))
    np.testing.assert_array_equal(decoded, IMAGE)


def test_yes_probability_parsing():
    assert yes_probability(completion("No", {"No": 0.9, "Yes": 0.1})) == pytest.approx(0.1)
    assert yes_probability(completion(" yes", {" yes": 0.6, "maybe": 0.4})) == pytest.approx(1.0)
    assert yes_probability(completion("Yes, the cube is lifted.")) == 1.0
    assert yes_probability(completion("no.")) == 0.0
    with pytest.raises(JudgeError, match="neither yes nor no"):
        yes_probability(completion("The image shows a robot."))
    with pytest.raises(JudgeError, match="no choices"):
        yes_probability({"object": "error", "message": "oops"})


def test_yes_probability_sums_the_spellings_of_each_answer():
    """A tokenizer spreads one answer over " yes", "Yes", "YES", ...: their probabilities add up
    (the largest alone would say 0.4 / 0.6 here, the wrong side of 0.5)."""
    spread = completion(" yes", {" yes": 0.25, "No": 0.4, "Yes": 0.2, "YES": 0.05, " no": 0.05, "maybe": 0.05})
    assert yes_probability(spread) == pytest.approx(0.5 / 0.95)
    sentencepiece = completion("\u2581Yes", {"\u2581Yes": 0.3, "\u2581yes": 0.3, "\u2581No": 0.2})
    assert yes_probability(sentencepiece) == pytest.approx(0.75)
    byte_level = completion("\u0120no", {"\u0120no": 0.6, "\u0120No": 0.2, "\u0120yes": 0.2})
    assert yes_probability(byte_level) == pytest.approx(0.2)
    # The sampled token is also listed among the top ones: counted once.
    assert yes_probability(completion("Yes", {"Yes": 0.6, "No": 0.4})) == pytest.approx(0.6)
    # A server that returns only the sampled token's log-probability.
    only_sampled = completion("yes")
    only_sampled["choices"][0]["logprobs"] = {"content": [{"token": "yes", "logprob": math.log(0.7)}]}
    assert yes_probability(only_sampled) == 1.0


@pytest.mark.parametrize("reply, answer", [
    ("0", 0), ("1", 1), ("-1", -1),
    ("1.", 1), ("0.", 0), ("-1.", -1),
    ("0 (Image 1 is better)", 0), ("1 (Image 2 is better)", 1), ("0 - Image 1 shows the cube lifted", 0),
    ("**1**", 1), ('"0"', 0), ("1\n\nImage 2 shows the gripper holding the cube.", 1), ("  0\n", 0),
    ("The answer is -1.", -1), ("Answer: 1", 1), ("Answer: **0**", 0),
    ("Image 1 is better, so the answer is 0.", 0), ("Image 2 shows the lifted cube; answer: 1", 1),
    ("I think image 2 is better", -1), ("Image 1", -1), ("0.5", -1), ("10", -1), ("", -1),
    ("I cannot tell the difference.", -1),
])
def test_parse_preference_reads_the_leading_answer(reply, answer):
    assert parse_preference(reply) == answer


def test_cache_serves_repeated_requests_from_disk(server, tmp_path):
    client = client_for(server, tmp_path)
    first = client.success_prob(IMAGE, "lift the cube")
    server.default = completion("no", {"no": 0.99, "yes": 0.01})
    again = client_for(server, tmp_path)  # a new process would see the same cache directory
    assert again.success_prob(IMAGE, "lift the cube") == first
    assert len(server.requests) == 1 and again.n_cache_hits == 1
    assert again.success_prob(IMAGE[::-1].copy(), "lift the cube") == pytest.approx(0.01)
    assert len(server.requests) == 2


def test_timeout_then_retry_succeeds_and_exhausted_retries_fail_clearly(server, tmp_path):
    client = client_for(server, tmp_path, timeout_s=0.3, cache_dir=None)
    server.script = [("sleep", 1.0, completion("no", {"no": 1.0})), ("status", 503)]
    assert client.success_prob(IMAGE, "task") == pytest.approx(YES_DEFAULT)
    assert client.n_requests == 3
    server.script = [("sleep", 1.0, completion("yes"))] * 3
    with pytest.raises(JudgeError, match=r"unreachable after 3 tries .*timed out"):
        client.success_prob(IMAGE, "task")


def test_malformed_replies_raise_clear_errors_and_are_not_cached(server, tmp_path):
    client = client_for(server, tmp_path)
    server.script = [("raw", b"<html>502 Bad Gateway</html>")]
    with pytest.raises(JudgeError, match="not JSON"):
        client.success_prob(IMAGE, "task")
    server.script = [{"error": {"message": "model not loaded"}}]
    with pytest.raises(JudgeError, match="no choices"):
        client.success_prob(IMAGE, "task")
    server.script = [("status", 401)]
    with pytest.raises(JudgeError, match="refused the request.*HTTP 401"):
        client.success_prob(IMAGE, "task")
    assert client.success_prob(IMAGE, "task") == pytest.approx(YES_DEFAULT)  # nothing bad was cached


def test_unreachable_endpoint(tmp_path):
    client = JudgeClient(JudgeConfig(base_url="http://127.0.0.1:9/v1", timeout_s=0.5, max_retries=1, backoff_s=0.01,
                                     cache_dir=None))
    with pytest.raises(JudgeError, match=r"127.0.0.1:9/v1/chat/completions unreachable after 2 tries"):
        client.success_prob(IMAGE, "task")


def test_rate_limit_spaces_requests(server, tmp_path):
    client = client_for(server, tmp_path, max_requests_per_s=20.0, cache_dir=None)
    start = time.monotonic()
    for _ in range(5):
        client.success_prob(IMAGE, "task")
    assert time.monotonic() - start >= 4 / 20.0 - 0.01


def test_compare_two_stage_query(server, tmp_path):
    server.script = [completion("Image 1: the cube rests on the table. Image 2: the cube is in the air."),
                     completion("1")]
    client = client_for(server, tmp_path)
    assert client.compare(IMAGE, IMAGE[::-1].copy(), "lift the cube") == 1
    describe, answer = (r["body"]["messages"] for r in server.requests)
    assert sum(part.get("type") == "image_url" for part in describe[0]["content"]) == 2
    assert answer[1]["role"] == "assistant" and "in the air" in answer[1]["content"]


def test_vlm_reward_model_from_yaml(server, tmp_path):
    spec = tmp_path / "judge.yaml"
    spec.write_text(f"task: the cube is lifted\ncamera: wrist\njudge:\n  base_url: {server.base_url}\n"
                    f"  cache_dir: null\n  max_requests_per_s: 0\n")
    model = load_reward_model(f"vlm:{spec}")
    reward, prob = model({"rgb_wrist": IMAGE, "state": np.zeros(15, np.float32)})
    assert (reward, prob) == (1.0, pytest.approx(YES_DEFAULT))
    with pytest.raises(KeyError, match="rgb_wrist"):
        model({"rgb_front": IMAGE})


def test_a_tie_is_not_a_success_for_the_judge_reward_nor_its_evaluation(server, tmp_path):
    """p(yes) = p(no) exactly: RoboFuME's rule (success when p(yes) > p(no)) says no, and the reward,
    ``reward eval`` and the reward node all apply the one rule success_prob >= threshold."""
    from robolearn.interfaces import success_threshold
    from robolearn.reward.metrics import evaluate_on_store
    from robolearn.store import DemoStore

    server.default = completion("yes", {"yes": 0.4, "no": 0.4, "maybe": 0.2})
    spec = tmp_path / "judge.yaml"
    spec.write_text(f"task: the cube is lifted\ncamera: front\njudge:\n  base_url: {server.base_url}\n"
                    "  cache_dir: null\n  max_requests_per_s: 0\n")
    model = load_reward_model(f"vlm:{spec}")
    assert model({"rgb_front": IMAGE}) == (0.0, 0.5) and success_threshold(model) > 0.5
    store = DemoStore.create(tmp_path / "s.zarr")
    n = 4
    store.append_episode({"rgb_front": np.stack([IMAGE] * n), "action": np.zeros((n, 7), np.float32),
                          "success": np.array([False, False, True, True])},
                         {"task": "t", "success": True, "source": "teleop"})
    metrics = evaluate_on_store(model, store)  # frame t+1 is labeled success[t]: one success frame
    assert metrics["n_positive"] == 1 and metrics["false_negative_rate"] == 1.0 and metrics["false_positive_rate"] == 0.0
    spec.write_text(spec.read_text() + "threshold: 0.5\n")  # configurable: at 0.5 a tie is a success
    assert load_reward_model(f"vlm:{spec}")({"rgb_front": IMAGE}) == (1.0, 0.5)


def test_image_data_url_jpeg():
    url = image_data_url(np.zeros((8, 8, 3), np.uint8), "jpeg")
    assert url.startswith("data:image/jpeg;base64,")
