"""A small client of the chat-completions protocol (OpenAI's, spoken by vLLM, llama.cpp, …).

``POST {url}/chat/completions`` with ``{"model", "messages", "temperature", "max_tokens"}``;
the answer is ``choices[0].message.content``. Images go in a user message as
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}``. The URL, model and
key come from the options or from the environment (``HSAE_CHAT_URL``, ``HSAE_CHAT_MODEL``,
the variable named by ``api_key_env``). A timeout, a refused connection, a 429 or a 5xx is
retried ``retries`` times, waiting ``backoff · 2^attempt`` seconds; what still fails, and a
reply that is not a chat completion, raises :class:`ChatError` with a message that says which.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.plugin import PluginConfig

URL_ENV, MODEL_ENV = "HSAE_CHAT_URL", "HSAE_CHAT_MODEL"


class ChatError(Exception):
    """A request that failed for good, or a reply that is not a chat completion."""


class ChatEndpointConfig(PluginConfig):
    url: str | None = Field(None, description=f"base URL, e.g. http://127.0.0.1:8000/v1 (default: ${URL_ENV})")
    model: str | None = Field(None, description=f"the served model's name (default: ${MODEL_ENV})")
    api_key: str | None = Field(None, description="the key; better left out and given by api_key_env")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (none needed if unset)")
    timeout: float = Field(60.0, gt=0, description="seconds to wait for one reply")
    retries: int = Field(2, ge=0, description="further tries after a timeout, a refused connection, a 429 or a 5xx")
    backoff: float = Field(1.0, ge=0, description="seconds before the first retry, doubled for each further one")
    max_tokens: int = Field(400, ge=1)
    temperature: float = Field(0.0, ge=0)
    send_images: bool = Field(True, description="show the image(s) to the model (a vision-language model)")


def image_part(image: Any) -> dict[str, Any]:
    """A PIL image as a chat-completions content part (PNG, base64 data URL)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}


class ChatClient:
    """Sends one conversation, returns the reply's text (see the module docstring)."""

    def __init__(self, config: ChatEndpointConfig, plugin: str):
        url = config.url or os.environ.get(URL_ENV)
        model = config.model or os.environ.get(MODEL_ENV)
        if not url or not model:
            raise BadInput(f"{plugin}: give the endpoint's url and model (options url/model, or ${URL_ENV}/${MODEL_ENV})")
        self.url = url if url.rstrip("/").endswith("/chat/completions") else url.rstrip("/") + "/chat/completions"
        self.model = model
        self.key = config.api_key or os.environ.get(config.api_key_env)
        self.config = config

    def _post(self, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
            return response.read()

    def complete(self, messages: list[dict[str, Any]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.config.temperature,
                           "max_tokens": self.config.max_tokens}).encode()
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                raw = self._post(body)
                break
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code} {exc.reason} from {self.url}"
                if exc.code != 429 and exc.code < 500:
                    raise ChatError(problem) from None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                timed_out = isinstance(reason, (socket.timeout, TimeoutError))
                problem = (f"no reply from {self.url} within {self.config.timeout:g} s" if timed_out
                           else f"{self.url} is unreachable ({reason})")
            if attempt + 1 < attempts:
                time.sleep(self.config.backoff * 2 ** attempt)
        else:
            raise ChatError(f"{problem} (after {attempts} tries)")
        return reply_text(raw)


def reply_text(raw: bytes) -> str:
    """``choices[0].message.content`` of a chat-completions reply, or ChatError."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ChatError(f"malformed reply (not a chat completion): {raw[:200]!r}") from None
    if not isinstance(content, str):
        raise ChatError(f"malformed reply: message content is {type(content).__name__}, not text")
    return content


def json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer (code fences and text around it allowed), or ValueError."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("the answer holds no JSON object")
    try:
        value = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer's JSON does not parse ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("the answer's JSON is not an object")
    return value
