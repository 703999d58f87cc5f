"""Client for a vLLM server's OpenAI-compatible chat API (any OpenAI-compatible server works).

One request per conversation, with `n` answers each, sent concurrently so the server's continuous
batching sees them together. The `openai` package does the HTTP, the timeouts and the bounded
retries with exponential backoff (connection errors, timeouts, 408/409/429/5xx); this class checks
that each answer is well formed and turns the result into `Completion`s, which clean their text
(`serving.text`); a body that is not UTF-8 is repaired first (`_Utf8RepairingTransport`).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Sequence

import httpx2
import openai

from serving.types import (
    Completion,
    Conversation,
    EngineTimeout,
    EngineUnavailable,
    HealthReport,
    MalformedResponse,
    RequestRejected,
    SamplingParams,
    ServingError,
    check_conversation,
)

logger = logging.getLogger(__name__)


class VLLMClient:
    engine = "vllm"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        max_concurrency: int = 16,
        api_key: str = "EMPTY",
    ):
        """`base_url` ends in /v1 (e.g. http://127.0.0.1:8100/v1); `model` is the served model name."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL ending in /v1, got {base_url!r}")
        if max_retries < 0 or max_concurrency < 1 or timeout_s <= 0:
            raise ValueError("max_retries must be >= 0, max_concurrency >= 1 and timeout_s > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self._openai = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key,
            timeout=openai.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            max_retries=max_retries,
            http_client=openai.DefaultHttpxClient(
                transport=_Utf8RepairingTransport(httpx2.HTTPTransport(limits=openai.DEFAULT_CONNECTION_LIMITS))
            ),
            # Refuse bodies that do not match the schema instead of handing back half-parsed objects.
            _strict_response_validation=True,
        )

    def chat(self, conversations: Sequence[Conversation], params: SamplingParams) -> list[list[Completion]]:
        """Answer each conversation `params.n` times. Raises a `ServingError` subclass if any request
        fails, after the client's own retries; no partial result is returned."""
        if not conversations:
            return []
        for conversation in conversations:
            check_conversation(conversation)
        if len(conversations) == 1:
            return [self._chat_one(conversations[0], params)]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(conversations))) as pool:
            futures = [pool.submit(self._chat_one, conversation, params) for conversation in conversations]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in done:
                if future.exception() is not None:
                    raise future.exception()
            return [future.result() for future in futures]

    def _chat_one(self, conversation: Conversation, params: SamplingParams) -> list[Completion]:
        started = time.perf_counter()
        try:
            response = self._openai.chat.completions.create(
                model=self.model,
                messages=list(conversation),
                n=params.n,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                seed=params.seed,
                stop=list(params.stop) or None,
                # vLLM extension: per-answer token ids, so each answer gets its own token count.
                extra_body={"return_token_ids": True},
            )
        except openai.APITimeoutError as error:
            raise EngineTimeout(f"{self.base_url} did not answer within {self.timeout_s:g} s") from error
        except openai.APIConnectionError as error:
            raise EngineUnavailable(f"cannot reach {self.base_url}: {error.__cause__ or error}") from error
        except (openai.APIResponseValidationError, ValueError) as error:  # ValueError: a body that is not JSON
            raise MalformedResponse(f"{self.base_url} sent a response that is not a chat completion: {error}") from error
        except openai.APIStatusError as error:
            message = f"{self.base_url} answered HTTP {error.status_code}: {_error_text(error)}"
            if 400 <= error.status_code < 500 and error.status_code not in (408, 429):
                raise RequestRejected(message) from error
            raise EngineUnavailable(message) from error
        latency_ms = (time.perf_counter() - started) * 1000
        return self._completions(response, params, latency_ms)

    def _completions(self, response, params: SamplingParams, latency_ms: float) -> list[Completion]:
        if not isinstance(response, openai.types.chat.ChatCompletion):
            raise MalformedResponse(f"{self.base_url} sent {type(response).__name__}, not a chat completion")
        choices = sorted(response.choices or [], key=lambda choice: choice.index)
        if len(choices) != params.n:
            raise MalformedResponse(f"{self.base_url} sent {len(choices)} answers where {params.n} were asked for")
        usage = response.usage
        if usage is None:
            raise MalformedResponse(f"{self.base_url} sent no token usage")
        completions = []
        for choice in choices:
            text = choice.message.content if choice.message is not None else None
            if text is None or not choice.finish_reason:
                raise MalformedResponse(f"{self.base_url} sent an answer without text or finish reason")
            token_ids = getattr(choice, "token_ids", None)
            # Servers without vLLM's per-answer token ids only report a total; share it out evenly.
            completion_tokens = len(token_ids) if token_ids is not None else round(usage.completion_tokens / params.n)
            completions.append(
                Completion(
                    text=text,
                    finish_reason=choice.finish_reason,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=completion_tokens,
                    latency_ms=latency_ms,
                    model=self.model,
                    engine=self.engine,
                    sampling=params,
                )
            )
        return completions

    def health(self) -> HealthReport:
        """Healthy when the server answers its model list, quickly, and serves this client's model."""
        started = time.perf_counter()
        try:
            models = self._openai.with_options(timeout=10.0, max_retries=0).models.list()
            served = [model.id for model in models.data]
        except (openai.OpenAIError, ServingError) as error:
            return HealthReport(False, f"{self.base_url}: {type(error).__name__}: {error}", _ms_since(started))
        if self.model not in served:
            return HealthReport(
                False, f"{self.base_url} serves {served}, not {self.model!r}", _ms_since(started)
            )
        return HealthReport(True, f"{self.base_url} serves {self.model}", _ms_since(started))

    def close(self) -> None:
        self._openai.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Utf8RepairingTransport(httpx2.BaseTransport):
    """Lets an answer that holds bytes which are not UTF-8 reach the text cleaning, counted.

    JSON is UTF-8, but a broken server or proxy can send other bytes inside an answer, and the
    JSON decoder would refuse the whole response. Each such byte becomes a lone surrogate
    (PEP 383's "surrogateescape"), written back with "surrogatepass", which is how Python's JSON
    decoder reads bytes: the answer's text then holds one lone surrogate per bad byte, and
    `clean_generated_text` replaces each with U+FFFD and counts it like any other lone surrogate.
    Reads the whole body, which suits this client: it never streams.
    """

    def __init__(self, inner: httpx2.BaseTransport):
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        body = response.read()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            repaired = body.decode("utf-8", "surrogateescape").encode("utf-8", "surrogatepass")
            # The body is now decoded and of another length: drop the headers that described it.
            headers = [
                (name, value) for name, value in response.headers.raw
                if name.lower() not in (b"content-length", b"content-encoding")
            ]
            return httpx2.Response(
                response.status_code, headers=headers, content=repaired, request=request,
                extensions=response.extensions,
            )
        return response

    def close(self) -> None:
        self._inner.close()


def _error_text(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:500]
    return str(error.message)[:500]


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
