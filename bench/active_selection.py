"""Active selection against random pairs: reward-model accuracy on a fixed held-out set per number
of labels, with a simulated annotator (docs/canary-and-selection.md).

    flock /tmp/heavy.lock .venv/bin/python bench/active_selection.py            # SmolLM2-135M-Instruct
    .venv/bin/python bench/active_selection.py --model tiny --seeds 3           # a tiny random Llama: a smoke run

What is real and what is simulated:
- prompts: the demo's prompts (annotation/demo/items.py: 24 comparison dialogues and 4 prompts to
  answer), the only real prompts the repository ships;
- candidates: K answers per prompt sampled by the platform's local engine (serving/local_engine.py)
  from SmolLM2-135M-Instruct at the queue's temperatures;
- reward models: a Bradley-Terry linear head on the frozen last-token hidden state of SmolLM2 over
  the reward-model text (training/scoring.reward_model_text): the head of the platform's reward
  models on a backbone that is not fine-tuned, so that hundreds of fits stay cheap on 2 cores;
- the oracle annotator: another such head, fitted on the demo's human-written preferences (each
  demo comparison's reply "a" over "b"), standing in for the human; it labels a pair with Bradley-
  Terry noise, P(i over j) = sigmoid(sharpness * (r_i - r_j)) on rewards of unit spread;
- selection: the platform's own choice (generation/selection.py): per queued prompt the pair of
  smallest |reward difference| under the current student, or the largest disagreement between
  the two newest students, with SELECTION_RANDOM_SHARE of the prompts kept random;
- held-out: every candidate pair of a fixed set of held-out prompts; accuracy is agreement with
  the oracle's noise-free preference.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_site.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from annotation_site.annotation.demo.items import COMPARISONS, DEMONSTRATIONS  # noqa: E402
from annotation_site.generation.selection import (  # noqa: E402
    DISAGREEMENT, RANDOM, UNCERTAINTY, choose, pair_disagreement, pair_uncertainty)
from serving.types import SamplingParams  # noqa: E402
from training.scoring import reward_model_text  # noqa: E402

STRATEGIES = (RANDOM, UNCERTAINTY, DISAGREEMENT)


def prepare_model(name: str, work: Path) -> Path:
    if name == "tiny":
        from training.tiny_model import build_tiny_chat_model

        return build_tiny_chat_model(work / "tiny")
    if name == "smollm2":
        from serving.base_model import prepare_base_model

        cache = Path(os.environ.get("RLHF_LOOP_CACHE", Path.home() / ".cache" / "rlhf-loop"))
        return prepare_base_model(cache / "smollm2-135m-instruct")
    return Path(name)


def sample_candidates(model_dir: Path, prompts: list[list[dict]], k: int, max_tokens: int, seed: int) -> list[list[str]]:
    """K answers per prompt from the local engine, one batch per temperature (as the queue fills)."""
    from serving.local_engine import LocalEngine

    engine = LocalEngine(model_dir, batch_size=32)
    temperatures = (0.7, 1.0, 1.2)
    answers: list[list[str]] = [[] for _ in prompts]
    for round_ in range(k):
        params = SamplingParams(temperature=temperatures[round_ % 3], top_p=0.9, max_tokens=max_tokens, n=1,
                                seed=seed + round_)
        for index, (completion,) in enumerate(engine.chat(prompts, params)):
            answers[index].append(completion.text)
    return answers


@torch.no_grad()
def features(model_dir: Path, prompts: list[list[dict]], answers: list[list[str]]) -> np.ndarray:
    """(prompts, K, hidden) last-token hidden states over each reward-model text, standardized."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    rows = []
    for prompt, texts in zip(prompts, answers):
        for text in texts:
            ids = tokenizer(reward_model_text(tokenizer, prompt, text), return_tensors="pt",
                            add_special_tokens=False, truncation=True, max_length=512)
            rows.append(model(**ids).last_hidden_state[0, -1].float().numpy())
    x = np.stack(rows)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x.reshape(len(prompts), -1, x.shape[-1])


def fit_head(better: np.ndarray, worse: np.ndarray, *, l2: float) -> np.ndarray:
    """Bradley-Terry linear head: argmin_w mean(-log sigmoid(w.(x_better - x_worse))) + l2 |w|^2."""
    d = torch.tensor(better - worse, dtype=torch.float64)
    w = torch.zeros(d.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = -torch.nn.functional.logsigmoid(d @ w).mean() + l2 * (w @ w)
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach().numpy()


def run_strategy(strategy: str, x: np.ndarray, oracle: np.ndarray, pool: list[int], held_out: list[tuple], *,
                 budgets: list[int], first: int, retrain_every: int, random_share: float, sharpness: float, l2: float, seed: int) -> list[float]:
    """Held-out accuracy of the student after each budget of labels chosen by `strategy`."""
    rng = random.Random(seed)
    k = x.shape[1]
    unlabelled = {p: set(combinations(range(k), 2)) for p in pool}
    better_rows, worse_rows = [], []
    heads: list[np.ndarray] = []

    def label(p: int, i: int, j: int) -> None:
        unlabelled[p].discard((i, j))
        prefers_i = rng.random() < 1 / (1 + np.exp(-sharpness * (oracle[p, i] - oracle[p, j])))
        better_rows.append(x[p, i] if prefers_i else x[p, j])
        worse_rows.append(x[p, j] if prefers_i else x[p, i])

    def accuracy(w: np.ndarray) -> float:
        right = [(x[p, i] @ w > x[p, j] @ w) == (oracle[p, i] > oracle[p, j]) for p, i, j in held_out]
        return float(np.mean(right))

    results = []
    while len(better_rows) < budgets[-1]:
        prompt = rng.choice([p for p in pool if unlabelled[p]])  # the next prompt the queue serves
        pairs = sorted(unlabelled[prompt])
        if strategy == RANDOM or not heads or rng.random() < random_share:
            i, j = rng.choice(pairs)
        else:
            rewards = x[prompt] @ heads[-1]
            if strategy == UNCERTAINTY or len(heads) < 2:
                scores, policy = pair_uncertainty(list(rewards)), UNCERTAINTY
            else:
                scores, policy = pair_disagreement(list(rewards), list(x[prompt] @ heads[-2])), DISAGREEMENT
            i, j = choose(policy, {pair: scores[pair] for pair in pairs})
        label(prompt, i, j)
        n = len(better_rows)
        if n >= first and ((n - first) % retrain_every == 0 or n in budgets):
            # The reward model retrains as labels arrive (the loop's weekly RM, here every few labels).
            heads.append(fit_head(np.stack(better_rows), np.stack(worse_rows), l2=l2))
        if n in budgets:
            results.append(accuracy(heads[-1]))
    return results


def plot(budgets: list[int], curves: dict[str, np.ndarray], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for strategy, values in curves.items():
        mean, std = values.mean(0), values.std(0)
        ax.plot(budgets, mean, marker="o", label=strategy)
        ax.fill_between(budgets, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("labels (simulated annotator)")
    ax.set_ylabel("held-out pairwise accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help='"smollm2", "tiny", or a chat checkpoint folder')
    parser.add_argument("--candidates", type=int, default=8, help="K answers per prompt")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--held-out", type=int, default=8, help="prompts kept for the held-out pairs")
    parser.add_argument("--budgets", default="10,20,40,60,80,100,120")
    parser.add_argument("--random-share", type=float, default=0.3, help="SELECTION_RANDOM_SHARE")
    parser.add_argument("--sharpness", type=float, default=3.0, help="the oracle's Bradley-Terry sharpness")
    parser.add_argument("--retrain-every", type=int, default=5, help="labels between two fits of the student")
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=20, help="repeats (label noise and queue order)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "active_selection.png"))
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    started = time.perf_counter()
    prompts = [entry["turns"] for entry in COMPARISONS + DEMONSTRATIONS]
    with tempfile.TemporaryDirectory() as work:
        model_dir = prepare_model(args.model, Path(work))
        answers = sample_candidates(model_dir, prompts, args.candidates, args.max_tokens, seed=0)
        sampled = time.perf_counter()
        # The oracle's head is fitted on the demo's own human replies (a over b), scored the same way.
        demo = features(model_dir, [e["turns"] for e in COMPARISONS], [[e["a"], e["b"]] for e in COMPARISONS])
        x = features(model_dir, prompts, answers)
        generated = time.perf_counter()
    oracle_head = fit_head(demo[:, 0], demo[:, 1], l2=args.l2)
    oracle = x @ oracle_head
    oracle = (oracle - oracle.mean()) / oracle.std()
    order = list(range(len(prompts)))
    random.Random(0).shuffle(order)
    held, pool = order[: args.held_out], order[args.held_out:]
    held_out = [(p, i, j) for p in held for i, j in combinations(range(args.candidates), 2)]
    pool_pairs = len(pool) * len(held_out) // len(held)
    if budgets[-1] > pool_pairs:
        sys.exit(f"--budgets go past the {pool_pairs} candidate pairs of the pool's prompts")

    curves = {strategy: np.array([
        run_strategy(strategy, x, oracle, pool, held_out, budgets=budgets, first=budgets[0], retrain_every=args.retrain_every,
                     random_share=args.random_share, sharpness=args.sharpness, l2=args.l2, seed=seed)
        for seed in range(args.seeds)]) for strategy in STRATEGIES}
    finished = time.perf_counter()

    print(f"model {args.model}: {len(prompts)} demo prompts x {args.candidates} candidates; "
          f"{len(pool)} pool prompts, {len(held)} held-out prompts ({len(held_out)} pairs); "
          f"random share {args.random_share}, oracle sharpness {args.sharpness}, {args.seeds} seeds")
    print(f"oracle agreement with the demo's human preferences: {float(np.mean(demo[:, 0] @ oracle_head > demo[:, 1] @ oracle_head)):.2f}")
    print("held-out accuracy, mean (std) over seeds:")
    print("labels  " + "  ".join(f"{s:>15}" for s in STRATEGIES))
    for column, budget in enumerate(budgets):
        print(f"{budget:>6}  " + "  ".join(
            f"{curves[s][:, column].mean():>8.3f} ({curves[s][:, column].std():.3f})" for s in STRATEGIES))
    # Paired by seed (the same queue order and first labels): each seed's gain averaged over the
    # budgets past the first, then its mean and standard error over seeds.
    for strategy in (UNCERTAINTY, DISAGREEMENT):
        gains = (curves[strategy] - curves[RANDOM])[:, 1:].mean(1)
        print(f"{strategy}: accuracy gain over random {gains.mean():+.3f} (standard error {gains.std(ddof=1) / np.sqrt(len(gains)):.3f} "
              f"over {len(gains)} seeds; better on {int((gains > 0).sum())}, worse on {int((gains < 0).sum())})")
    print(f"time: sampling {sampled - started:.0f} s, features {generated - sampled:.0f} s, "
          f"selection runs {finished - generated:.0f} s "
          "(on a loaded 2-core machine)")
    plot(budgets, curves, Path(args.out),
         f"{args.model}: {len(prompts)} demo prompts, K={args.candidates}, {args.seeds} seeds, random share {args.random_share}")
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
