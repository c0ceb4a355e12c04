"""A VLM judge over an OpenAI-compatible chat-completions endpoint (vLLM, Ollama, hosted APIs).

``JudgeClient.success_prob(image, task)`` asks "is the task done?" with the image as a base64 data
URL and reads p(yes) from the first answer token's log-probabilities, summed over the spellings of
yes and of no (RoboFuME: success when p(yes) > p(no)); a server that returns no log-probabilities
is answered from the text (1.0 or 0.0).
``JudgeClient.compare(image0, image1, task)`` is RL-VLM-F's two-stage query: describe both images,
then say which is closer to the goal (0 or 1; −1 = cannot tell).

Requests have a timeout, are retried with exponential backoff on connection errors, timeouts,
429 and 5xx (honouring ``Retry-After``), are spaced by a rate limit, and are cached on disk keyed
by the full request, so relabeling a store twice costs nothing the second time. An unreachable
endpoint or a reply that is not a chat completion raises :class:`JudgeError` with the URL and what
came back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.config import ConfigError
from robolearn.errors import RobolearnError
from robolearn.interfaces import Observation
from robolearn.reward.base import RewardConfig

SUCCESS_PROMPT = (
    "This image shows a robot cell. The task is: {task}. Is the task done in this image? "
    "Answer with a single word, yes or no."
)
DESCRIBE_PROMPT = (
    "Image 1 and Image 2 show a robot cell. The task is: {task}. Describe each image in one or two "
    "sentences, focusing on what matters for the task."
)
COMPARE_PROMPT = (
    "Is the goal '{task}' better achieved in Image 1 or Image 2? Reply with a single character: 0 if "
    "Image 1 is better, 1 if Image 2 is better, -1 if you cannot tell or there is no difference."
)
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class JudgeError(RobolearnError, RuntimeError):
    """The endpoint cannot be used: unreachable, refusing, or answering something that is not a
    chat completion. The message names the URL and what came back."""


@dataclass
class JudgeConfig:
    """Where and how to ask. base_url: up to ``/v1`` (e.g. ``http://localhost:8000/v1`` for vLLM,
    ``http://localhost:11434/v1`` for Ollama); model: the served model name; api_key_env: name
    of the environment variable holding the key (unset or empty: no key sent); timeout_s: per
    request; max_retries: extra tries after the first; backoff_s: first retry delay (doubles);
    max_requests_per_s: rate limit (0: none); cache_dir: on-disk response cache (None: no cache);
    top_logprobs: alternatives requested for the answer token; image_format: ``png`` or ``jpeg``."""

    base_url: str = "http://localhost:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 1.0
    max_requests_per_s: float = 5.0
    cache_dir: str | None = "~/.cache/robolearn/vlm_judge"
    top_logprobs: int = 10
    image_format: str = "png"

    def __post_init__(self) -> None:
        if self.image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {self.image_format!r}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0 or self.max_requests_per_s < 0:
            raise ValueError("timeout_s must be positive; max_retries, backoff_s and max_requests_per_s non-negative")


def image_data_url(image: np.ndarray, image_format: str = "png") -> str:
    """``(H, W, 3) uint8`` RGB → ``data:image/<format>;base64,...``."""
    import imagecodecs

    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape}")
    encoded = imagecodecs.png_encode(image) if image_format == "png" else imagecodecs.jpeg8_encode(image, level=95)
    return f"data:image/{image_format};base64,{base64.b64encode(encoded).decode('ascii')}"


def _answer_word(token: Any) -> str:
    """A token as the word it spells: tokenizer space markers (``Ġ``, ``▁``), surrounding space and
    punctuation removed, lower case (`` Yes``, ``YES``, ``yes.`` → ``yes``)."""
    return str(token).replace("\u0120", " ").replace("\u2581", " ").strip().strip(".,!:;\"'*").lower()


def yes_probability(response: dict[str, Any]) -> float:
    """p(yes) / (p(yes) + p(no)) from the first answer token's top log-probabilities, or 1.0 / 0.0
    from the answer text when the server sent none. p(yes) sums the probabilities of every variant
    of the word among the top tokens (``yes``, `` yes``, ``Yes``, ``YES``, ...), and p(no) likewise:
    a tokenizer splits the same answer over several tokens. Raises JudgeError when neither says yes
    or no."""
    choice = _first_choice(response)
    content = (choice.get("logprobs") or {}).get("content") or []
    if content:
        first = content[0]
        logprobs: dict[str, float] = {}
        for candidate in [*(first.get("top_logprobs") or []), first]:  # the sampled token may repeat a top one
            if isinstance(candidate.get("logprob"), (int, float)):
                logprobs.setdefault(str(candidate.get("token", "")), float(candidate["logprob"]))
        mass = {"yes": 0.0, "no": 0.0}
        for token, logprob in logprobs.items():
            word = _answer_word(token)
            if word in mass:
                mass[word] += math.exp(logprob)
        if mass["yes"] + mass["no"] > 0:
            return mass["yes"] / (mass["yes"] + mass["no"])
    text = _message_text(choice).strip().lower()
    match = re.match(r"\W*(yes|no)\b", text)
    if match:
        return 1.0 if match.group(1) == "yes" else 0.0
    raise JudgeError(f"the judge answered neither yes nor no: {text[:200]!r}")


def _first_choice(response: Any) -> dict[str, Any]:
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise JudgeError(f"not a chat completion (no choices): {json.dumps(response)[:300]}")
    return choices[0]


def _message_text(choice: dict[str, Any]) -> str:
    content = (choice.get("message") or {}).get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise JudgeError(f"chat completion without text content: {json.dumps(choice)[:300]}")
    return content


_ANSWER = r"(-1|0|1)(?!\d|\.\d)"  # -1, 0 or 1 as a whole number ("1." and "0)" count; "10", "0.5" do not)
_LEADING_ANSWER = re.compile(r"^[\s\"'`*(\[]*" + _ANSWER)
_STATED_ANSWER = re.compile(r"\banswer\b[^\w-]{0,5}(?:is[^\w-]{0,5})?" + _ANSWER, re.IGNORECASE)


def parse_preference(text: str) -> int:
    """RL-VLM-F answer → 0 (image 1 better), 1 (image 2 better) or −1 (cannot tell / unparseable).

    The prompt asks for the answer alone, so a reply that starts with −1, 0 or 1 is that answer,
    whatever follows ("1.", "0 (Image 1 is better)", "**1**"); otherwise the last "answer is X" /
    "Answer: X" counts. Anything else (e.g. "Image 2 is better", whose digit names an image) is −1,
    discarded rather than guessed."""
    leading = _LEADING_ANSWER.match(text)
    if leading:
        return int(leading.group(1))
    stated = _STATED_ANSWER.findall(text)
    return int(stated[-1]) if stated else -1


class JudgeClient:
    """Talks to one OpenAI-compatible endpoint; thread-safe rate limiting; see the module docstring."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.cache_dir = Path(config.cache_dir).expanduser() if config.cache_dir else None
        self._lock = threading.Lock()
        self._next_request_s = 0.0
        self.n_requests = 0
        self.n_cache_hits = 0

    def _wait_for_rate_limit(self) -> None:
        if not self.config.max_requests_per_s:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_request_s)
            self._next_request_s = start + 1.0 / self.config.max_requests_per_s
        if start > now:
            time.sleep(start - now)

    def _post_once(self, body: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as reply:
            raw = reply.read()
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise JudgeError(f"{self.url} returned a reply that is not JSON: {raw[:200]!r}") from err

    def chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one chat-completions request (cached, rate-limited, retried); returns the JSON reply."""
        body = json.dumps({"model": self.config.model, **payload}, sort_keys=True).encode()
        cache_file = None
        if self.cache_dir is not None:
            digest = hashlib.sha256(self.url.encode() + b"\n" + body).hexdigest()
            cache_file = self.cache_dir / digest[:2] / f"{digest}.json"
            if cache_file.is_file():
                self.n_cache_hits += 1
                return json.loads(cache_file.read_text())
        last_error = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(self.config.backoff_s * 2 ** (attempt - 1))
            self._wait_for_rate_limit()
            self.n_requests += 1
            try:
                response = self._post_once(body)
            except urllib.error.HTTPError as err:
                detail = err.read()[:200].decode("utf-8", "replace")
                last_error = f"HTTP {err.code}: {detail}"
                if err.code not in RETRYABLE_STATUS:
                    raise JudgeError(f"{self.url} refused the request ({last_error}); check model and api key") from err
                retry_after = err.headers.get("Retry-After") if err.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    time.sleep(min(float(retry_after), 60.0))
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                last_error = f"{type(reason).__name__}: {reason}"
                continue
            _first_choice(response)
            if cache_file is not None:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(response))
                tmp.replace(cache_file)
            return response
        raise JudgeError(
            f"VLM endpoint {self.url} unreachable after {self.config.max_retries + 1} tries ({last_error}); "
            "start the server (e.g. `vllm serve MODEL` or `ollama serve`) or fix base_url"
        )

    def _image_part(self, image: np.ndarray) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": image_data_url(image, self.config.image_format)}}

    def success_prob(self, image: np.ndarray, task: str, prompt: str = SUCCESS_PROMPT) -> float:
        """p(yes) that ``task`` is done in ``image`` (``(H, W, 3) uint8``)."""
        payload = {
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt.format(task=task)},
                                                      self._image_part(image)]}],
            "max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": self.config.top_logprobs,
        }
        return yes_probability(self.chat(payload))

    def compare(self, image0: np.ndarray, image1: np.ndarray, task: str) -> int:
        """RL-VLM-F preference: 0 if ``image0`` is closer to the goal, 1 if ``image1``, −1 if unsure."""
        images = [{"type": "text", "text": "Image 1:"}, self._image_part(image0),
                  {"type": "text", "text": "Image 2:"}, self._image_part(image1)]
        describe = [{"role": "user", "content": [{"type": "text", "text": DESCRIBE_PROMPT.format(task=task)}, *images]}]
        description = _message_text(_first_choice(self.chat(
            {"messages": describe, "max_tokens": 300, "temperature": 0.0})))
        answer = describe + [{"role": "assistant", "content": description},
                             {"role": "user", "content": COMPARE_PROMPT.format(task=task)}]
        return parse_preference(_message_text(_first_choice(self.chat(
            {"messages": answer, "max_tokens": 5, "temperature": 0.0}))))


# The smallest float32 above 0.5: under robolearn's one success rule, success_prob >= threshold, it
# makes the judge's default call RoboFuME's p(yes) > p(no), so a tie (0.5) is not a success. float32,
# because probabilities are scored in float32 arrays, against which a float64 threshold rounds to 0.5.
ABOVE_HALF = float(np.nextafter(np.float32(0.5), np.float32(1.0)))


class JudgeReward:
    """The VLM judge as a ``RewardModel`` (RoboFuME): reward 1.0 when p(yes) reaches ``threshold``
    (default: p(yes) > p(no))."""

    reward_is_success_call = True

    def __init__(self, client: JudgeClient, task: str, camera: str, prompt: str = SUCCESS_PROMPT,
                 threshold: float = ABOVE_HALF):
        self.client, self.task, self.camera, self.prompt = client, task, camera, prompt
        self.cameras, self.threshold = [camera], float(threshold)

    def __call__(self, obs: Observation) -> tuple[float, float]:
        key = f"rgb_{self.camera}"
        if key not in obs:
            raise KeyError(f"the VLM judge reads {key!r}; the observation has {sorted(obs)}")
        prob = self.client.success_prob(obs[key], self.task, self.prompt)
        return float(prob >= self.threshold), prob


@RewardConfig.register("vlm")
@dataclass
class VlmRewardConfig(RewardConfig):
    """RoboFuME-style VLM success judge. task: what success looks like, in words (e.g. "the red
    cube is lifted above the table"); camera: which ``rgb_<camera>`` image to send; prompt: the
    question (``{task}`` is filled in); judge: the endpoint (``JudgeConfig``); threshold: p(yes)
    that counts as success (None: p(yes) > p(no); ``robolearn reward calibrate`` measures one on
    labeled frames)."""

    task: str = ""
    camera: str = "front"
    prompt: str = SUCCESS_PROMPT
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    threshold: float | None = None

    def create(self, env: Any = None) -> JudgeReward:
        if not self.task:
            raise ConfigError("reward", "task", "describe success in words, e.g. task: the red cube is lifted")
        threshold = ABOVE_HALF if self.threshold is None else self.threshold
        return JudgeReward(JudgeClient(self.judge), self.task, self.camera, self.prompt, threshold)
