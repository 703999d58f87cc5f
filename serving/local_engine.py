"""A local engine on Hugging Face transformers `generate`, for machines without vLLM.

Same interface and result shape as `VLLMClient`. It batches: conversations (each repeated n
times) are sorted by prompt length and generated `batch_size` at a time with left padding, which
on this CPU is ~6x faster than one sequence at a time (docs/machine.md: 16 vs ~100 tokens/s at 8).
Hand-written because transformers has no batched chat-completion front end that reports the
finish reason and token counts per answer; the sampling itself is transformers' own.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Sequence

from serving.types import Completion, Conversation, HealthReport, SamplingParams, ServingError, check_conversation

logger = logging.getLogger(__name__)


class LocalEngine:
    engine = "local"

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        model_name: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        dtype: str = "float32",
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        path = Path(checkpoint)
        if not (path / "config.json").is_file():
            raise ServingError(f"{checkpoint} is not a checkpoint folder (no config.json)")
        if threads:
            torch.set_num_threads(threads)
        self.checkpoint = str(path)
        self.model = model_name or self.checkpoint
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # Left padding keeps every prompt's last token next to its first generated one.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.tokenizer.chat_template is None:
            raise ServingError(f"{checkpoint} has no chat template; the local engine serves chat models only")
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, not {dtype!r}")
        # float32 by default: bfloat16 is faster only on CPUs with bf16 instructions (and GPUs).
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        self._model.eval()
        self._torch = torch
        # End-of-turn ids: the tokenizer's eos plus the generation config's (may be a list).
        eos = self._model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        eos_ids.add(self.tokenizer.eos_token_id)
        self._eos_ids = sorted(i for i in eos_ids if i is not None)
        # generate() is not re-entrant on one model; a worker's threads take turns.
        self._lock = threading.Lock()

    def chat(self, conversations: Sequence[Conversation], params: SamplingParams) -> list[list[Completion]]:
        prompts = [self._prompt_ids(conversation) for conversation in conversations]
        # Every answer to produce: (conversation index, answer index), longest prompts together.
        jobs = sorted(
            ((index, k) for index in range(len(prompts)) for k in range(params.n)),
            key=lambda job: len(prompts[job[0]]),
        )
        answers: dict[tuple[int, int], Completion] = {}
        with self._lock:
            for start in range(0, len(jobs), self.batch_size):
                batch = jobs[start : start + self.batch_size]
                seed = None if params.seed is None else params.seed + start
                for job, completion in zip(batch, self._generate([prompts[i] for i, _ in batch], params, seed)):
                    answers[job] = completion
        return [[answers[(index, k)] for k in range(params.n)] for index in range(len(prompts))]

    def _prompt_ids(self, conversation: Conversation) -> list[int]:
        check_conversation(conversation)
        ids = self.tokenizer.apply_chat_template(list(conversation), add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def _generate(self, prompts: list[list[int]], params: SamplingParams, seed: int | None) -> list[Completion]:
        torch = self._torch
        started = time.perf_counter()
        batch = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        sampling = params.temperature > 0
        kwargs = dict(
            max_new_tokens=params.max_tokens,
            do_sample=sampling,
            eos_token_id=self._eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            output = self._model.generate(**batch, **kwargs)
        latency_ms = (time.perf_counter() - started) * 1000
        new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
        return [self._completion(prompt, tokens, params, latency_ms) for prompt, tokens in zip(prompts, new_tokens)]

    def _completion(self, prompt: list[int], tokens: list[int], params: SamplingParams, latency_ms: float) -> Completion:
        # Cut at the first end-of-turn token; what follows is padding of a finished sequence.
        ended = next((i for i, token in enumerate(tokens) if token in self._eos_ids), None)
        generated = tokens if ended is None else tokens[: ended + 1]
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        finish_reason = "stop" if ended is not None else "length"
        for stop in params.stop:
            # vLLM leaves the stop string out of the text; so does this engine.
            if stop in text:
                text, finish_reason = text[: text.index(stop)], "stop"
        return Completion(
            text=text,
            finish_reason=finish_reason,
            prompt_tokens=len(prompt),
            completion_tokens=len(generated),
            latency_ms=latency_ms,
            model=self.model,
            engine=self.engine,
            sampling=params,
        )

    def health(self) -> HealthReport:
        started = time.perf_counter()
        ok = Path(self.checkpoint, "config.json").is_file()
        detail = f"{self.checkpoint} loaded in this process" if ok else f"{self.checkpoint} is gone"
        return HealthReport(ok, detail, (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        pass


_engines: dict[tuple[str, str | None, int], LocalEngine] = {}
_engines_lock = threading.Lock()
# A worker keeps the last few checkpoints it served in memory (a 135M model is ~0.5 GB in float32).
MAX_CACHED_ENGINES = 2


def local_engine(checkpoint: str | Path, *, model_name: str | None = None, batch_size: int = 32) -> LocalEngine:
    """The process-wide engine for a checkpoint, loaded on first use and then reused."""
    key = (str(Path(checkpoint).resolve()), model_name, batch_size)
    with _engines_lock:
        engine = _engines.pop(key, None)
        if engine is None:
            logger.info("loading %s into the local engine", checkpoint)
            engine = LocalEngine(checkpoint, model_name=model_name, batch_size=batch_size)
        _engines[key] = engine  # most recently used last
        while len(_engines) > MAX_CACHED_ENGINES:
            _engines.pop(next(iter(_engines)))
        return engine
