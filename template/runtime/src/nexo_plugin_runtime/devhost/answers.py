"""The dev host's answers to the plugin's own requests, as a daemon would give them:
`memory.recall` from nexo-dev.toml's [[memory]], `llm.complete` from its [[llm]] rules or
from a real model behind an OpenAI-compatible endpoint (`--llm-url`), streamed in
`llm.complete.delta` chunks when the plugin asks for a stream. A method no daemon serves
gets -32601, as from the daemon.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .settings import DevSettings

METHOD_NOT_FOUND = -32601
BACKEND_ERROR = -32603
Chunk = Callable[[str], None]


@dataclass(frozen=True)
class Reply:
    """What the host answers: a result, a JSON-RPC error (code, message), or nothing."""

    result: Any = None
    error: tuple[int, str] | None = None
    silent: bool = False


def last_message(params: dict[str, Any]) -> str:
    """The text the LLM rules match: the last message's content."""
    messages = params.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content", ""))
    return ""


class OpenAICompatible:
    """A model behind an OpenAI-compatible chat completions endpoint (OpenAI, a local
    llama.cpp, vLLM or Ollama server, ...). The key comes from the environment and is sent
    only to that endpoint: never shown, logged or recorded."""

    def __init__(self, url: str, key: str | None, model: str | None, timeout: float = 60.0):
        self.url = url.rstrip("/") + "/chat/completions"
        self.key, self.model, self.timeout = key, model, timeout

    def complete(self, params: dict[str, Any], on_chunk: Chunk) -> Reply:
        messages = list(params.get("messages") or [])
        if params.get("system_prompt"):
            messages.insert(0, {"role": "system", "content": params["system_prompt"]})
        stream = bool(params.get("stream"))
        body = {
            "model": self.model or params.get("model"),
            "messages": messages,
            "max_tokens": params.get("max_tokens", 4096),
            "temperature": params.get("temperature", 0.7),
            "stream": stream,
        }
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return self._streamed(response, on_chunk) if stream else self._whole(response)
        except urllib.error.HTTPError as error:
            text = error.read(500).decode("utf-8", "replace")
            return self._failed(f"{self.url} answered {error.code}: {text}")
        except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
            return self._failed(f"{self.url}: {error}")

    def _failed(self, message: str) -> Reply:
        if self.key:
            message = message.replace(self.key, "********")
        return Reply(error=(BACKEND_ERROR, message))

    @staticmethod
    def _usage(document: dict[str, Any]) -> dict[str, int]:
        usage = document.get("usage") or {}
        return {
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        }

    def _whole(self, response: Any) -> Reply:
        document = json.load(response)
        choice = document["choices"][0]
        result = {
            "content": choice["message"].get("content") or "",
            "finish_reason": choice.get("finish_reason") or "stop",
            "usage": self._usage(document),
        }
        return Reply(result=result)

    def _streamed(self, response: Any, on_chunk: Chunk) -> Reply:
        """Server-sent events, `data: {...}` lines up to `data: [DONE]`."""
        finish, usage = "stop", {"prompt_tokens": 0, "completion_tokens": 0}
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                break
            document = json.loads(data)
            if document.get("usage"):
                usage = self._usage(document)
            for choice in document.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    on_chunk(text)
                finish = choice.get("finish_reason") or finish
        return Reply(result={"finish_reason": finish, "usage": usage})


class HostAnswers:
    """Answers to the plugin's requests from the settings' fixtures, or the model."""

    def __init__(self, settings: DevSettings, model: OpenAICompatible | None = None) -> None:
        self.settings, self.model = settings, model

    def answer(self, method: str, params: Any, on_chunk: Chunk) -> Reply:
        params = params if isinstance(params, dict) else {}
        if method == "memory.recall":
            return self.recall(params)
        if method == "llm.complete":
            if self.model is not None:
                return self.model.complete(params, on_chunk)
            return self.complete(params, on_chunk)
        return Reply(error=(METHOD_NOT_FOUND, f"the daemon serves no method {method!r}"))

    def recall(self, params: dict[str, Any]) -> Reply:
        agent = params.get("agent_id")
        limit = params.get("limit", 10)
        mine = [memory for memory in self.settings.memory if memory.agent == agent]
        entries = [
            {
                "id": f"memory-{number}",
                "agent_id": memory.agent,
                "content": memory.content,
                "tags": memory.tags,
                "created_at": "2026-01-01T00:00:00Z",
            }
            for number, memory in enumerate(mine[: limit if isinstance(limit, int) else 10], 1)
        ]
        return Reply(result={"entries": entries})

    def complete(self, params: dict[str, Any], on_chunk: Chunk) -> Reply:
        text = last_message(params)
        rule = next((rule for rule in self.settings.llm if rule.match.search(text)), None)
        if rule is None:
            return Reply(
                error=(
                    BACKEND_ERROR,
                    f"nexo-dev: no [[llm]] rule of nexo-dev.toml matches {text[:80]!r}: add one "
                    "(match = a regular expression, reply = the answer), or run with --llm-url",
                )
            )
        if rule.silent:
            return Reply(silent=True)
        if rule.error is not None:
            return Reply(error=rule.error)
        words = len(rule.reply.split())
        usage = {"prompt_tokens": len(text.split()), "completion_tokens": words}
        if params.get("stream"):
            for chunk in rule.stream():
                on_chunk(chunk)
            return Reply(result={"finish_reason": "stop", "usage": usage})
        return Reply(result={"content": rule.reply, "finish_reason": "stop", "usage": usage})
