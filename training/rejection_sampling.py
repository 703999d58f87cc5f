"""Rejection-sampling fine-tuning with the combined safety/helpfulness reward (Llama 2 §3.2.3).

    python -m training.rejection_sampling --config training/configs/rejection_sampling.yaml [key=value ...]

Each iteration:
1. sampling: K answers per prompt from the current policy, through the serving layer: a vLLM
   server launched for the checkpoint (`serving.launcher`) where vLLM is installed, the local
   transformers engine otherwise (`engine`);
2. scoring: both reward models score every answer; the answer with the highest combined reward
   `logit(R_c)` of eq. 3 is kept (whitening is monotonic, so it cannot change the argmax);
3. pooling: the kept answers join those of every earlier iteration, and of earlier runs listed in
   `previous_pools` ("we modified our strategy to incorporate top-performing samples from all prior
   iterations": using only the last iteration's samples caused regressions);
4. fine-tuning: the SFT recipe (`training.sft`) trains on the whole pool, from the initial model
   (`finetune_from: initial`) or from the latest policy.

It reports per iteration the paper's Fig. 7 gap: the mean reward of the best of K answers against
the mean reward of a single answer, and the whole best-of-N curve for N = 1..K.

Outputs in `out/` (written to `out.tmp/` and renamed when complete, `out.failed/` on error): the
final policy checkpoint (`AutoModelForCausalLM` with tokenizer and chat template, registrable as a
`rejection_sampling` checkpoint), `pool.jsonl` + `pool.parquet` (the pooled best answers as SFT
rows with their scores, K, temperature and iteration), `samples.jsonl` (every answer and its
scores), `metrics.jsonl` (one row per iteration), `best_of_n.png` (Fig. 7), `eval.json`,
`config.yaml`, `train.log`, and `iterations/<i>/` (each iteration's SFT run and checkpoint).
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from training import sft
from training.config import ConfigError, build_config, parse_args, save_config
from training.data import read_sft_file
from training.prompts import Prompt, load_prompts
from training.rewards import SAFETY_THRESHOLD
from training.resume import rng_state, save_state, set_rng_state
from training.run_folder import RunFolder
from training.scoring import RewardFunction, RewardScorer

logger = logging.getLogger("training")


@dataclass
class Config:
    # The SFT checkpoint (AutoModelForCausalLM with a chat template): the first iteration samples from it.
    model: str
    # Prompts: exported batch folders or prompt JSONL files (training/prompts.py), with guidelines.
    data: list[dict | str]
    # Folder of the final policy checkpoint.
    out: str
    # Reward models (AutoModelForSequenceClassification, one output); both are required unless a
    # reward function is passed to `train` directly.
    helpfulness_reward_model: str | None = None
    safety_reward_model: str | None = None
    # Eq. 3: a response whose safety probability is below this is judged by the safety model.
    safety_threshold: float = SAFETY_THRESHOLD
    # Sample -> select -> fine-tune rounds in this run (the paper's RLHF-V1 to V4 are four).
    iterations: int = 1
    # K: answers sampled per prompt. Fig. 7 follows the best-of-N reward up to N = 100; the gain
    # over a single sample grows with K, at K times the sampling cost.
    samples_per_prompt: int = 10
    # "The optimal temperature is not constant during the iterative model updates" (Fig. 8): for
    # Llama 2-Chat-RLHF it is 1.2-1.3 when sampling 10 to 100 answers; lower for earlier models.
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    # Prompts sampled per iteration (None: all of them).
    prompts_per_iteration: int | None = None
    # pool.jsonl files of earlier rejection-sampling runs, pooled with this run's kept answers.
    previous_pools: list[str] = field(default_factory=list)
    # Fine-tune the initial model on the pool each iteration (the pool grows, the start stays), or
    # the latest policy.
    finetune_from: Literal["initial", "latest"] = "initial"
    # Settings of the SFT recipe (training/sft.py Config) for the fine-tuning, e.g. {epochs: 2}.
    sft: dict = field(default_factory=dict)
    # Command that launches the SFT recipe in its own processes, e.g. [accelerate, launch,
    # --config_file, training/accelerate/ddp.yaml]; empty: fine-tune in this process.
    sft_launcher: list[str] = field(default_factory=list)
    # "vllm" launches a vLLM server for each iteration's policy; "local" uses transformers
    # generate in this process; "auto" picks vLLM where it is installed.
    engine: Literal["auto", "vllm", "local"] = "auto"
    # serving.launcher.ServerConfig settings for the vLLM server (e.g. {enforce_eager: true,
    # tensor_parallel_size: 8, cpu_omp_threads_bind: "0-1"}).
    vllm: dict = field(default_factory=dict)
    # Batch size of the local engine; prompts per progress step.
    generation_batch_size: int = 32
    scoring_batch_size: int = 16
    seed: int = 42
    # Save a resumable state (the pool, the iteration, the policy it reached, RNG states) every this
    # many iterations into `<out>.resume/`, so a run whose worker died continues after the last
    # saved iteration (an interrupted iteration is done again); 0: never. An iteration is long and
    # its checkpoint is in the run folder already, so the state is small: every iteration.
    save_state_every: int = 1
    # Replace an existing `out` folder instead of refusing to.
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("iterations", "samples_per_prompt", "max_new_tokens", "generation_batch_size", "scoring_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.prompts_per_iteration is not None and self.prompts_per_iteration < 1:
            raise ValueError(f"prompts_per_iteration must be at least 1 or null, got {self.prompts_per_iteration}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (K answers at temperature 0 are K copies), got {self.temperature}")
        if (self.helpfulness_reward_model is None) != (self.safety_reward_model is None):
            raise ValueError("give both helpfulness_reward_model and safety_reward_model (eq. 3 needs both)")
        for key in ("out", "overwrite"):
            if key in self.sft:
                raise ValueError(f"sft.{key} is set by the rejection-sampling recipe; leave it out")


# What a researcher may override from the site (the runs app's launch form and API). Everything else
# - model, data and output paths, the reward models, previous pools, sft_launcher, vllm and
# overwrite - comes from the shipped configs and the launch form's choices: data from the web is
# never a command or a path.
# The fine-tuning's settings are the SFT recipe's tunable keys, as sft={epochs: 2, ...}.
TUNABLE_KEYS = frozenset({
    "safety_threshold", "iterations", "samples_per_prompt", "temperature", "top_p",
    "max_new_tokens", "prompts_per_iteration", "finetune_from", "engine", "generation_batch_size",
    "scoring_batch_size", "seed", "save_state_every",
    *(f"sft.{key}" for key in sft.TUNABLE_KEYS),
})



def select_best(scores: torch.Tensor) -> torch.Tensor:
    """Index of the best answer of each prompt. Shapes: `(prompts, K)` -> `(prompts,)`."""
    return scores.argmax(dim=1)


def best_of_n_curve(scores: torch.Tensor) -> list[float]:
    """Mean over prompts of the best reward among the first N answers, for N = 1..K (Fig. 7).

    N = 1 is the reward of a single sample; N = K the reward of what rejection sampling keeps.
    Shapes: `(prompts, K)` -> K floats.
    """
    return scores.cummax(dim=1).values.mean(dim=0).tolist()


def train(config: Config, reward_fn: RewardFunction | None = None) -> Path:
    """Run rejection sampling as `config` says; returns the final policy checkpoint folder.

    `reward_fn` replaces the two reward models (same call shape as `RewardScorer`).
    """
    from serving.types import SamplingParams

    if reward_fn is None and config.helpfulness_reward_model is None:
        raise ConfigError("set helpfulness_reward_model and safety_reward_model: rejection sampling ranks with them")
    # Fail on a bad SFT setting now, not after the first round of sampling.
    build_config(sft.Config, {"model": config.model, "data": ["pool.jsonl"], "out": "x", **config.sft}, origin="sft")
    prompts = load_prompts(config.data, seed=config.seed)
    engine = _pick_engine(config.engine)
    params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens,
                            n=config.samples_per_prompt, seed=config.seed)

    with RunFolder(config.out, overwrite=config.overwrite, config=config) as run:
        run.save_config(config)
        pool_path, samples_path, metrics_path = run.tmp / "pool.jsonl", run.tmp / "samples.jsonl", run.tmp / "metrics.jsonl"
        pool = [row for path in config.previous_pools for row in read_sft_file(Path(path), default_source=Path(path).parent.name)]
        logger.info("rejection sampling: %d prompts, K=%d, T=%.2f, %s engine, %d pooled answers from earlier runs",
                    len(prompts), config.samples_per_prompt, config.temperature, engine, len(pool))
        policy = Path(config.model)
        history: list[dict] = []
        done = 0
        if run.resumed is not None:
            done, pool, history, policy = _load_state(run.resumed.path, run.tmp)

        def final_path(path: Path) -> str:
            """Where a checkpoint written during the run will be once the run folder is renamed."""
            return str(path).replace(str(run.tmp), str(run.out), 1)

        per_iteration = config.prompts_per_iteration or len(prompts)
        for iteration in range(done + 1, config.iterations + 1):
            started = time.perf_counter()
            offset = (iteration - 1) * per_iteration
            batch = [prompts[(offset + i) % len(prompts)] for i in range(min(per_iteration, len(prompts)))]

            # 1. K answers per prompt from the current policy.
            completions = _sample(policy, batch, params, engine, config, run.tmp / f"vllm-{iteration}.log",
                                  desc=f"iteration {iteration}/{config.iterations}: sampling")
            sampled = time.perf_counter()

            # 2. Score every answer; keep the argmax of each prompt.
            flat_prompts = [prompt.chat for prompt in batch for _ in range(config.samples_per_prompt)]
            flat_texts = [completion.text for answers in completions for completion in answers]
            flat_guidelines = [prompt.guideline for prompt in batch for _ in range(config.samples_per_prompt)]
            parts: dict[str, torch.Tensor] = {}
            if reward_fn is None:
                scorer = RewardScorer(config.helpfulness_reward_model, config.safety_reward_model,
                                      safety_threshold=config.safety_threshold, batch_size=config.scoring_batch_size,
                                      device="cuda" if torch.cuda.is_available() else "cpu")
                scored = scorer.score(flat_prompts, flat_texts, flat_guidelines)
                flat_scores, parts = scored.reward, {"helpfulness": scored.helpfulness, "safety": scored.safety}
                del scorer  # free its memory for the fine-tuning
            else:
                flat_scores = torch.as_tensor(reward_fn(flat_prompts, flat_texts, flat_guidelines), dtype=torch.float32)
            if flat_scores.shape != (len(flat_texts),) or not torch.isfinite(flat_scores).all():
                raise ValueError(f"the reward must be one finite number per answer, got {flat_scores.tolist()}")
            scores = flat_scores.view(len(batch), config.samples_per_prompt)
            parts = {key: value.view_as(scores) for key, value in parts.items()}
            best = select_best(scores).tolist()
            curve = best_of_n_curve(scores)
            scored_at = time.perf_counter()

            # 3. Pool the kept answers with every earlier iteration's.
            kept = [
                {
                    "messages": prompt.chat + [{"role": "assistant", "content": completions[p][b].text}],
                    "guideline": prompt.guideline,
                    "score": scores[p, b].item(),
                    **{f"{key}_score": value[p, b].item() for key, value in parts.items()},
                    "mean_sample_score": scores[p].mean().item(),
                    "k": config.samples_per_prompt,
                    "temperature": config.temperature,
                    "iteration": iteration,
                    "model": final_path(policy),
                    "source": "rejection_sampling",
                    "batch": None,
                }
                for p, (prompt, b) in enumerate(zip(batch, best))
            ]
            pool += kept
            with samples_path.open("a") as file:
                for p, prompt in enumerate(batch):
                    for k, completion in enumerate(completions[p]):
                        file.write(json.dumps({
                            "iteration": iteration, "prompt": prompt.chat, "guideline": prompt.guideline,
                            "response": completion.text, "finish_reason": completion.finish_reason,
                            "cleaned_chars": completion.cleaned_chars,
                            "score": scores[p, k].item(), "kept": k == best[p],
                            **{f"{key}_score": value[p, k].item() for key, value in parts.items()},
                        }) + "\n")
            iteration_dir = run.tmp / "iterations" / str(iteration)
            iteration_dir.mkdir(parents=True)
            snapshot = iteration_dir / "pool.jsonl"
            _write_jsonl(snapshot, pool)
            _write_jsonl(pool_path, pool)

            # 4. Fine-tune on the whole pool with the SFT recipe.
            sampled_from = final_path(policy)
            start_from = config.model if config.finetune_from == "initial" else str(policy)
            sft_config = build_config(sft.Config, {**config.sft, "model": start_from, "data": [str(snapshot)],
                                                   "out": str(iteration_dir / "checkpoint")}, origin="sft")
            logger.info("iteration %d: fine-tuning %s on %d pooled answers", iteration, start_from, len(pool))
            policy = _finetune(sft_config, config.sft_launcher, iteration_dir)
            finetuned = time.perf_counter()

            row = {
                "iteration": iteration,
                "prompts": len(batch),
                "k": config.samples_per_prompt,
                "temperature": config.temperature,
                "mean_best_reward": curve[-1],
                "mean_single_reward": curve[0],
                "best_minus_single": curve[-1] - curve[0],
                "best_of_n": curve,
                **{f"mean_best_{key}_score": value.gather(1, torch.tensor(best).unsqueeze(1)).mean().item()
                   for key, value in parts.items()},
                "response_length": sum(c.completion_tokens for answers in completions for c in answers) / len(flat_texts),
                "truncated_fraction": sum(c.finish_reason == "length" for answers in completions for c in answers) / len(flat_texts),
                "pool_size": len(pool),
                "sampled_from": sampled_from,
                "checkpoint": final_path(policy),
                "sampling_s": sampled - started,
                "scoring_s": scored_at - sampled,
                "finetune_s": finetuned - scored_at,
            }
            history.append(row)
            with metrics_path.open("a") as file:
                file.write(json.dumps(row) + "\n")
            plot_best_of_n(history, run.tmp / "best_of_n.png")
            logger.info("iteration %d: best of %d %.3f vs single sample %.3f (gap %.3f), pool %d",
                        iteration, config.samples_per_prompt, row["mean_best_reward"], row["mean_single_reward"],
                        row["best_minus_single"], len(pool))
            if config.save_state_every and iteration % config.save_state_every == 0 and iteration < config.iterations:
                _save_state(config.out, iteration, pool, history, policy.relative_to(run.tmp))

        # The last iteration's policy becomes the run's checkpoint, beside the pool it was trained on.
        _copy_checkpoint(policy, run.tmp)
        _write_parquet(pool, run.tmp / "pool.parquet")
        run.write_json("eval.json", {"iterations": [{key: row[key] for key in (
            "iteration", "mean_best_reward", "mean_single_reward", "best_minus_single", "pool_size")} for row in history]})
        return run.finish()


def _save_state(out: str, iteration: int, pool: list[dict], history: list[dict], policy: Path) -> None:
    """The pool of best answers, the metrics so far, the policy reached (its folder inside the run
    folder, which a resumed run keeps) and the RNG states, written atomically (training/resume.py)."""
    def write(folder: Path) -> None:
        _write_jsonl(folder / "pool.jsonl", pool)
        (folder / "progress.json").write_text(json.dumps({"iteration": iteration, "history": history, "policy": str(policy)}))
        torch.save(rng_state(), folder / "rng.pt")

    save_state(out, iteration, write)


def _load_state(folder: Path, run_folder: Path) -> tuple[int, list[dict], list[dict], Path]:
    """(iterations done, pool, history, policy) of a saved state; the iterations after it, which
    its run left half done, are cleared to be done again."""
    progress = json.loads((folder / "progress.json").read_text())
    policy = run_folder / progress["policy"]
    if not policy.is_dir():
        raise FileNotFoundError(f"the saved state {folder} continues from {policy}, which is gone; delete {folder.parent} "
                                "to start the run over")
    for iteration_dir in (run_folder / "iterations").glob("*"):
        if iteration_dir.name.isdigit() and int(iteration_dir.name) > progress["iteration"]:
            shutil.rmtree(iteration_dir)
    set_rng_state(torch.load(folder / "rng.pt", weights_only=False))  # our own file: RNG states are tuples
    pool = [json.loads(line) for line in (folder / "pool.jsonl").read_text().splitlines()]
    return progress["iteration"], pool, progress["history"], policy


def plot_best_of_n(history: list[dict], path: Path) -> Path:
    """The paper's Fig. 7: mean reward of the best of N answers against N, one line per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for row in history:
        curve = row["best_of_n"]
        axis.plot(range(1, len(curve) + 1), curve, marker="o" if len(curve) < 30 else None, label=f"iteration {row['iteration']}")
    axis.set_xlabel("N answers sampled per prompt")
    axis.set_ylabel("mean reward of the best (logit R_c)")
    axis.set_title("Rejection sampling: best of N vs a single sample")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _pick_engine(engine: str) -> str:
    if engine != "auto":
        return engine
    from serving.launcher import find_vllm_python

    return "vllm" if find_vllm_python() is not None else "local"


def _sample(policy: Path, prompts: list[Prompt], params, engine: str, config: Config, log_path: Path, *, desc: str):
    """K completions per prompt (`params.n`) from the policy, through the chosen serving engine."""
    from tqdm.auto import tqdm

    conversations = [prompt.chat for prompt in prompts]
    chunks = range(0, len(conversations), config.generation_batch_size)
    if engine == "local":
        from serving.local_engine import LocalEngine

        chat_engine = LocalEngine(policy, batch_size=config.generation_batch_size)
        return [answers for start in tqdm(chunks, desc=desc, unit="batch")
                for answers in chat_engine.chat(conversations[start : start + config.generation_batch_size], params)]
    from serving.client import VLLMClient
    from serving.launcher import ServerConfig, VLLMServer, free_port

    server_config = build_config(ServerConfig, {"model_path": str(policy), "port": free_port(), "seed": config.seed,
                                                "max_model_len": 4096, **config.vllm}, origin="vllm")
    with VLLMServer(server_config, log_path=log_path) as server:
        client = VLLMClient(server.base_url, server_config.model_name)
        return [answers for start in tqdm(chunks, desc=desc, unit="batch")
                for answers in client.chat(conversations[start : start + config.generation_batch_size], params)]


def _finetune(sft_config, launcher: list[str], iteration_dir: Path) -> Path:
    """Run the SFT recipe on the pool, in this process or through `launcher` (e.g. accelerate launch)."""

    if not launcher:
        return sft.train(sft_config)
    config_path = iteration_dir / "sft.yaml"
    save_config(sft_config, config_path)
    command = list(launcher) + ["-m", "training.sft", "--config", str(config_path)]
    logger.info("launching SFT: %s", " ".join(command))
    completed = subprocess.run(command)
    if completed.returncode != 0:
        raise RuntimeError(f"SFT exited with code {completed.returncode}; its log is in {sft_config.out}.failed/")
    return Path(sft_config.out)


def _copy_checkpoint(source: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(source).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tmp.replace(path)


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Rows pooled from earlier runs may lack some columns; pyarrow infers the schema from the first row.
    columns = list(dict.fromkeys(key for row in rows for key in row))
    pq.write_table(pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows]), path)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(Config, argv, description="Rejection-sampling fine-tuning with the combined reward (Llama 2 §3.2.3)")
    print(train(config))


if __name__ == "__main__":
    main(sys.argv[1:])
