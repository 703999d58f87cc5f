"""The one result shape both engines return, their sampling parameters, and their errors.

The vLLM client and the local transformers engine take the same `SamplingParams` and return the
same `Completion`s, so the generation app stores a sample the same way whichever engine wrote it
and the RLHF recipes can sample K answers per prompt from either.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

from serving.text import clean_generated_text, is_usable_answer

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
Conversation = Sequence[Message]


class ServingError(RuntimeError):
    """Base of every error an engine raises; the message says what went wrong and where."""


class EngineUnavailable(ServingError):
    """The server could not be reached or died while answering (connection refused or reset)."""


class EngineTimeout(ServingError):
    """The server took longer than the request timeout."""


class MalformedResponse(ServingError):
    """The server answered, but not with a usable completion (garbage, no choices, no text)."""


class RequestRejected(ServingError):
    """The server refused this request itself (HTTP 4xx, e.g. a prompt longer than the context):
    retrying it unchanged cannot help, and it says nothing about the server's health."""


def check_conversation(conversation: Conversation) -> None:
    """Refuse anything that is not a list of chat messages ending with a user turn."""
    if not conversation or not all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        for m in conversation
    ):
        raise ValueError(
            "each conversation must be a non-empty list of {'role': system|user|assistant, 'content': str} messages"
        )
    if conversation[-1]["role"] != "user":
        raise ValueError("each conversation must end with a user message for the model to answer")


@dataclass(frozen=True)
class SamplingParams:
    """Generation parameters, sent explicitly to either engine and stored with every sample."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    # Completions per conversation (the K of rejection sampling; 1 for annotation pairs).
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 1):
            raise ValueError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not (isinstance(self.n, int) and self.n >= 1):
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"stop must be non-empty strings, got {self.stop!r}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SamplingParams":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sampling parameters: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass(frozen=True)
class Completion:
    """One generated answer, with what it cost and exactly how it was sampled.

    Its text is always what the platform stores: cleaned on construction (see `serving.text`).
    """

    text: str
    # "stop" (end of turn or a stop string) or "length" (hit max_tokens), as vLLM reports it.
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    # Wall time of the request (vLLM) or batch (local engine) that produced it.
    latency_ms: float
    # The model as the engine knows it (vLLM's served model name, or the local checkpoint path).
    model: str
    engine: str  # "vllm" | "local"
    sampling: SamplingParams
    # Characters of the engine's text removed or replaced by `serving.text.clean_generated_text`.
    cleaned_chars: int = 0

    def __post_init__(self):
        # Every answer is cleaned here, as it enters the platform, whichever engine wrote it; a
        # count given by the caller (a copy made with dataclasses.replace) is kept and added to.
        cleaned = clean_generated_text(self.text)
        object.__setattr__(self, "text", cleaned.text)
        object.__setattr__(self, "cleaned_chars", self.cleaned_chars + cleaned.cleaned_chars)

    @property
    def usable(self) -> bool:
        """False when the answer is empty or only whitespace: nothing to show an annotator."""
        return is_usable_answer(self.text)

    def sampling_record(self) -> dict:
        """The sampling parameters exactly as sent, plus the engine and model, as stored with a sample."""
        return {**self.sampling.to_dict(), "engine": self.engine, "model": self.model}


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    detail: str
    latency_ms: float


class ChatEngine(Protocol):
    """What the generation app and the RLHF recipes need from an engine."""

    engine: str
    model: str

    def chat(self, conversations: Sequence[Conversation], params: SamplingParams) -> list[list[Completion]]:
        """Answer each conversation `params.n` times; result[i] holds the n answers to conversations[i]."""
        ...

    def health(self) -> HealthReport: ...

    def close(self) -> None: ...
