"""PPO with the combined safety/helpfulness reward (Llama 2 paper, §3.2.3, eq. 3-4).

    python -m training.ppo --config training/configs/ppo.yaml [key=value ...]
    accelerate launch --config_file training/accelerate/ddp.yaml -m training.ppo --config training/configs/ppo.yaml

TRL 1.x ships no PPO, so the loop is written out here, one iteration reading top to bottom:

1. generation: each process samples its share of `batch_size` prompts and answers them with the
   policy (HF `generate`, sampling, batched);
2. scoring: both reward models score every answer; the combined reward `logit(R_c)` of eq. 3 is
   whitened over the whole batch (eq. 4);
3. rollout forward: log-probabilities of the answers under the policy and the frozen reference
   (the same checkpoint, loaded twice) and the critic's values; per-token reward
   `-beta * KL(pi || pi_0)` with the whitened score added on the last token; GAE advantages;
4. training: minibatches of `minibatch_size`, one gradient step each (`ppo_epochs` passes), on
   the clipped surrogate plus the clipped value loss; AdamW (0.9, 0.95, eps 1e-5), weight decay
   0.1, gradient norm clipped to 1.0, constant learning rate 1e-6.

Value function: a separate critic, an `AutoModelForSequenceClassification` initialised from the
helpfulness reward model (as InstructGPT does; the policy checkpoint when no reward model is given),
whose scalar head is applied at every position. A separate critic keeps the value loss's
gradients out of the policy (with a shared trunk the two losses pull on the same weights and need
a tuned coefficient) and starts from a model that already judges answers; the cost is one more
model in memory. The policy and the critic sit in one module so `accelerate` (DDP) sees a single
forward and averages both gradients across processes.

Outputs in `out/` (written to `out.tmp/` and renamed when complete, `out.failed/` with the
traceback on error): the policy checkpoint (`AutoModelForCausalLM` with tokenizer and chat
template, registrable as a `ppo` checkpoint), `config.yaml`, `metrics.jsonl` (one row per
iteration), `samples.jsonl` (a few answers per iteration), `eval.json` (reward and KL at the
start and end), `curves.png` (reward, KL, entropy, response length), `train.log`.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from training.config import ConfigError, parse_args

# Accelerate backends PPO refuses (one GPU and DDP work): with sharded parameters (ZeRO-3, FSDP)
# its `generate` is not synchronised across ranks and hangs, and the reference and reward models
# are whole unsharded copies; under DeepSpeed (any stage) the optimizer steps after every
# micro-batch instead of once per minibatch. docs/training-distributed.md has the full analysis.
UNSUPPORTED_DISTRIBUTED_TYPES = ("DEEPSPEED", "FSDP")
UNSUPPORTED_REASON = (
    "PPO runs on one GPU or with DDP (training/accelerate/ddp.yaml); DeepSpeed and FSDP are not "
    "supported yet (docs/training-distributed.md)"
)
from training.ppo_math import (
    clipped_surrogate_loss,
    clipped_value_loss,
    generalized_advantage_estimation,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
    response_mask,
)
from training.prompts import Prompt, load_prompts
from training.resume import rng_state, save_state, set_rng_state
from training.rewards import SAFETY_THRESHOLD, whiten
from training.run_folder import RunFolder, with_resolved_precision
from training.scoring import RewardFunction, RewardScorer

logger = logging.getLogger("training")


@dataclass
class Config:
    # Policy to improve (AutoModelForCausalLM with a chat template): the SFT or latest
    # rejection-sampling checkpoint. The frozen reference pi_0 of eq. 4 is loaded from it too.
    model: str
    # Prompts: exported batch folders or prompt JSONL files (training/prompts.py); the guideline of
    # each prompt decides whether it is a safety prompt (eq. 3).
    data: list[dict | str]
    # Folder of the finished policy checkpoint.
    out: str
    # Reward models (AutoModelForSequenceClassification, one output); both are required unless a
    # reward function is passed to `train` directly.
    helpfulness_reward_model: str | None = None
    safety_reward_model: str | None = None
    # Eq. 3: a response whose safety probability is below this is judged by the safety model.
    safety_threshold: float = SAFETY_THRESHOLD
    # Eq. 4: whiten the combined reward over the batch "to increase stability and balance properly
    # with the KL penalty term".
    whiten_rewards: bool = True
    # Eq. 4: beta of the KL penalty, 0.01 (0.005 for the 34B and 70B models).
    kl_beta: float = 0.01
    # Critic initialisation (None: the helpfulness reward model, else the policy checkpoint).
    value_model: str | None = None
    # "Between 200 and 400 iterations for all our models."
    iterations: int = 200
    # "Batch size of 512" prompts per iteration, "a mini-batch size of 64, and take one gradient
    # step per mini-batch" (8 steps per iteration).
    batch_size: int = 512
    minibatch_size: int = 64
    ppo_epochs: int = 1
    # "Constant learning rate of 10^-6."
    learning_rate: float = 1e-6
    # Learning rate of the critic (None: the policy's); not given in the paper.
    value_learning_rate: float | None = None
    # "AdamW with beta1 = 0.9, beta2 = 0.95, eps = 10^-5", "weight decay of 0.1, gradient clipping of 1.0".
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    adam_eps: float = 1e-5
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    # "PPO clip threshold of 0.2"; the same clip on the change of the values.
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    # GAE discount and lambda; not given in the paper. gamma 1 (no discount within one answer) and
    # lambda 0.95 are InstructGPT's and TRL's PPO defaults.
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    # Generation: the paper's models have a 4096-token context; the prompt keeps its end.
    max_prompt_length: int = 1024
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    # Batch sizes per process of the generation, the rollout forward passes, the gradient passes
    # (gradients accumulate over a minibatch: still one optimizer step per minibatch) and scoring.
    generation_batch_size: int = 64
    forward_batch_size: int = 16
    micro_batch_size: int = 8
    scoring_batch_size: int = 16
    # Trades ~40% more time for much less activation memory.
    gradient_checkpointing: bool = False
    # None: bf16 where the hardware supports it (GPU with bf16, CPU with avx512_bf16/AMX), else fp32.
    bf16: bool | None = None
    seed: int = 42
    # Redraw curves.png every this many iterations (and at the end).
    plot_every: int = 10
    # Answers per iteration written to samples.jsonl, to read what the policy is learning.
    samples_per_iteration: int = 4
    # Save a resumable state (policy, critic, optimizer, RNG of every process, iteration, history)
    # every this many iterations into `<out>.resume/`, so a run whose worker died continues from
    # the newest (training/resume.py); 0: never. Not from the paper: an iteration takes minutes and
    # a state is two models and AdamW's moments, so every 10 risks little work for little disk time.
    save_state_every: int = 10
    # Replace an existing `out` folder instead of refusing to.
    overwrite: bool = False

    def __post_init__(self) -> None:
        positive = ("iterations", "batch_size", "minibatch_size", "ppo_epochs", "max_new_tokens",
                    "max_prompt_length", "generation_batch_size", "forward_batch_size", "micro_batch_size",
                    "scoring_batch_size", "plot_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.whiten_rewards and self.batch_size < 2:
            raise ValueError("whiten_rewards needs batch_size >= 2 (whitening divides by the batch's standard deviation)")
        if self.batch_size % self.minibatch_size:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of minibatch_size {self.minibatch_size}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (PPO samples from the policy), got {self.temperature}")
        if len(self.adam_betas) != 2:
            raise ValueError(f"adam_betas must be two numbers, got {self.adam_betas}")
        if (self.helpfulness_reward_model is None) != (self.safety_reward_model is None):
            raise ValueError("give both helpfulness_reward_model and safety_reward_model (eq. 3 needs both)")


# What a researcher may override from the site (the runs app's launch form and API). Everything else
# - model, data and output paths, the reward models, value_model and overwrite - comes from the
# shipped configs and the launch form's choices: data from the web is never a command or a path.
TUNABLE_KEYS = frozenset({
    "safety_threshold", "whiten_rewards", "kl_beta", "iterations", "batch_size", "minibatch_size",
    "ppo_epochs", "learning_rate", "value_learning_rate", "adam_betas", "adam_eps", "weight_decay",
    "max_grad_norm", "clip_range", "value_clip_range", "gamma", "lam", "whiten_advantages",
    "max_prompt_length", "max_new_tokens", "temperature", "top_p", "generation_batch_size",
    "forward_batch_size", "micro_batch_size", "scoring_batch_size", "gradient_checkpointing",
    "bf16", "seed", "plot_every", "samples_per_iteration", "save_state_every",
})



class PolicyAndCritic(torch.nn.Module):
    """The two trained models under one module, so DDP sees one forward and syncs both gradients."""

    def __init__(self, policy, critic):
        super().__init__()
        self.policy = policy
        self.critic = critic

    def forward(self, input_ids, attention_mask, position_ids, response_length: int):
        """Logits predicting each response token `(B, R, V)` and the critic's value before each `(B, R)`."""
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        # The last R + 1 positions predict the R response tokens (and one token past the end).
        logits = self.policy(**inputs, logits_to_keep=response_length + 1).logits[:, :-1]
        trunk = getattr(self.critic, self.critic.base_model_prefix)
        hidden = trunk(**inputs).last_hidden_state[:, -response_length - 1 : -1]
        values = self.critic.score(hidden).squeeze(-1)
        return logits, values.float()


def train(config: Config, reward_fn: RewardFunction | None = None) -> Path:
    """Run PPO as `config` says; returns the finished policy checkpoint folder.

    `reward_fn` replaces the two reward models (same call shape as `RewardScorer`): the tests
    pass a toy reward through the same loop.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.trainer.utils import disable_dropout_in_model, entropy_from_logits, selective_log_softmax

    if reward_fn is None and config.helpfulness_reward_model is None:
        raise ConfigError("set helpfulness_reward_model and safety_reward_model: PPO needs a reward")
    config = with_resolved_precision(config)
    bf16 = config.bf16
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no")
    if accelerator.distributed_type in UNSUPPORTED_DISTRIBUTED_TYPES:
        raise ConfigError(f"{UNSUPPORTED_REASON}: this launch uses {accelerator.distributed_type}")
    processes, rank = accelerator.num_processes, accelerator.process_index
    for name in ("batch_size", "minibatch_size"):
        if getattr(config, name) % processes:
            raise ConfigError(f"{name} {getattr(config, name)} must be divisible by the {processes} processes")
    local_batch, local_minibatch = config.batch_size // processes, config.minibatch_size // processes
    prompts = load_prompts(config.data, seed=config.seed)
    set_seed(config.seed, device_specific=True)

    with RunFolder(config.out, overwrite=config.overwrite, is_main_process=accelerator.is_main_process, config=config) as run:
        run.save_config(config)
        logger.info("PPO on %d prompts, %d processes, %d iterations of %d", len(prompts), processes,
                    config.iterations, config.batch_size)

        # Models: policy and critic (trained), frozen reference, reward models.
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        if tokenizer.chat_template is None:
            raise ConfigError(f"{config.model} has no chat template; PPO starts from a chat (SFT) checkpoint")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        policy = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
        reference = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
        critic_path = config.value_model or config.helpfulness_reward_model or config.model
        critic = AutoModelForSequenceClassification.from_pretrained(critic_path, num_labels=1, dtype=torch.float32)
        if critic.config.vocab_size != policy.config.vocab_size or not hasattr(critic, "score"):
            raise ConfigError(
                f"value model {critic_path} must be a sequence classifier with a `score` head that shares the "
                f"policy's tokenizer (vocab {critic.config.vocab_size} vs {policy.config.vocab_size})"
            )
        for model in (policy, critic):
            disable_dropout_in_model(model)
            if config.gradient_checkpointing:
                model.gradient_checkpointing_enable()
        reference.requires_grad_(False)
        reference.eval().to(accelerator.device)
        if reward_fn is None:
            reward_fn = RewardScorer(
                config.helpfulness_reward_model, config.safety_reward_model, safety_threshold=config.safety_threshold,
                batch_size=config.scoring_batch_size, max_length=config.max_prompt_length + config.max_new_tokens,
                device=accelerator.device,
            )
        model = PolicyAndCritic(policy, critic)
        optimizer = torch.optim.AdamW(
            [
                {"params": list(policy.parameters()), "lr": config.learning_rate},
                {"params": list(critic.parameters()), "lr": config.value_learning_rate or config.learning_rate},
            ],
            betas=tuple(config.adam_betas), eps=config.adam_eps, weight_decay=config.weight_decay,
        )
        model, optimizer = accelerator.prepare(model, optimizer)
        unwrapped = accelerator.unwrap_model(model)
        eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id

        metrics_path, samples_path = run.tmp / "metrics.jsonl", run.tmp / "samples.jsonl"
        history: list[dict] = []
        prompt_stream = _prompt_batches(prompts, config.batch_size, seed=config.seed)
        done = 0
        if run.resumed is not None:
            done, history = _load_state(run.resumed.path, unwrapped, optimizer, rank)
            for _ in range(done):  # the prompt batches the iterations done already took
                next(prompt_stream)
        progress = tqdm(range(done + 1, config.iterations + 1), desc="PPO", unit="it", disable=not accelerator.is_main_process,
                        initial=done, total=config.iterations)
        for iteration in progress:
            started = time.perf_counter()
            batch_prompts = next(prompt_stream)[rank * local_batch : (rank + 1) * local_batch]

            # 1. Generation.
            model.eval()
            queries = [_encode_prompt(tokenizer, prompt, config.max_prompt_length) for prompt in batch_prompts]
            responses: list[list[int]] = []
            with torch.no_grad(), accelerator.autocast():
                for start in range(0, local_batch, config.generation_batch_size):
                    responses += _generate(unwrapped.policy, queries[start : start + config.generation_batch_size],
                                           config, eos_id=eos_id, pad_id=pad_id, device=accelerator.device)
            texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
            generated = time.perf_counter()

            # 2. Scoring: the combined reward, whitened over the whole batch (all processes).
            chats, guidelines = [p.chat for p in batch_prompts], [p.guideline for p in batch_prompts]
            if isinstance(reward_fn, RewardScorer):
                scored = reward_fn.score(chats, texts, guidelines)
                score, parts = scored.reward, {"helpfulness_score": scored.helpfulness, "safety_score": scored.safety}
            else:
                score, parts = reward_fn(chats, texts, guidelines), {}
            score = torch.as_tensor(score, dtype=torch.float32).to(accelerator.device)
            if score.shape != (local_batch,) or not torch.isfinite(score).all():
                raise ValueError(f"the reward must be one finite number per response, got {score.tolist()}")
            all_scores = accelerator.gather(score)
            if config.whiten_rewards:
                train_score = whiten(all_scores)[rank * local_batch : (rank + 1) * local_batch]
            else:
                train_score = score
            scored_at = time.perf_counter()

            # 3. Rollout forward: old and reference log-probabilities, values, rewards, advantages.
            length = max(len(r) for r in responses)
            old_logprobs = torch.zeros(local_batch, length, device=accelerator.device)
            ref_logprobs, values, mask = torch.zeros_like(old_logprobs), torch.zeros_like(old_logprobs), torch.zeros_like(old_logprobs)
            with torch.no_grad(), accelerator.autocast():
                for start in range(0, local_batch, config.forward_batch_size):
                    rows = slice(start, start + config.forward_batch_size)
                    batch = _pack(queries[rows], responses[rows], pad_id=pad_id, device=accelerator.device)
                    width = batch["response_ids"].shape[1]
                    logits, batch_values = model(batch["input_ids"], batch["attention_mask"], batch["position_ids"], width)
                    old_logprobs[rows, :width] = selective_log_softmax(logits.float() / config.temperature, batch["response_ids"])
                    ref_logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                           position_ids=batch["position_ids"], use_cache=False,
                                           logits_to_keep=width + 1).logits[:, :-1]
                    ref_logprobs[rows, :width] = selective_log_softmax(ref_logits.float() / config.temperature, batch["response_ids"])
                    values[rows, :width] = batch_values
                    mask[rows, :width] = batch["response_mask"]
            rewards, kl = kl_penalized_rewards(old_logprobs, ref_logprobs, train_score, mask, beta=config.kl_beta)
            advantages, returns = generalized_advantage_estimation(rewards, values, mask, gamma=config.gamma, lam=config.lam)
            if config.whiten_advantages:
                advantages = masked_whiten(advantages, mask)
            forwarded = time.perf_counter()

            # 4. Training: one gradient step per minibatch, gradients accumulated over micro-batches.
            model.train()
            stats = {key: torch.zeros((), device=accelerator.device)
                     for key in ("policy_loss", "value_loss", "clip_fraction", "value_clip_fraction", "entropy", "approx_kl")}
            tokens_seen = torch.zeros((), device=accelerator.device)
            for _ in range(config.ppo_epochs):
                order = torch.randperm(local_batch).tolist()
                for start in range(0, local_batch, local_minibatch):
                    minibatch = order[start : start + local_minibatch]
                    minibatch_tokens = mask[minibatch].sum()
                    for micro_start in range(0, len(minibatch), config.micro_batch_size):
                        rows = minibatch[micro_start : micro_start + config.micro_batch_size]
                        batch = _pack([queries[i] for i in rows], [responses[i] for i in rows], pad_id=pad_id,
                                      device=accelerator.device)
                        width = batch["response_ids"].shape[1]
                        with accelerator.autocast():
                            logits, new_values = model(batch["input_ids"], batch["attention_mask"], batch["position_ids"], width)
                        logits = logits.float() / config.temperature
                        new_logprobs = selective_log_softmax(logits, batch["response_ids"])
                        micro_mask = mask[rows, :width]
                        policy_loss, clip_fraction = clipped_surrogate_loss(
                            new_logprobs, old_logprobs[rows, :width], advantages[rows, :width], micro_mask, clip=config.clip_range
                        )
                        value_loss, value_clip_fraction = clipped_value_loss(
                            new_values, values[rows, :width], returns[rows, :width], micro_mask, clip=config.value_clip_range
                        )
                        # Weighted by tokens, so the minibatch loss is a mean over all its tokens.
                        share = micro_mask.sum() / minibatch_tokens.clamp(min=1.0)
                        accelerator.backward((policy_loss + value_loss) * share)
                        with torch.no_grad():
                            weight = micro_mask.sum()
                            log_ratio = new_logprobs - old_logprobs[rows, :width]
                            for key, value in (
                                ("policy_loss", policy_loss), ("value_loss", value_loss), ("clip_fraction", clip_fraction),
                                ("value_clip_fraction", value_clip_fraction),
                                ("entropy", masked_mean(entropy_from_logits(logits), micro_mask)),
                                ("approx_kl", masked_mean(0.5 * log_ratio**2, micro_mask)),
                            ):
                                stats[key] += value.detach() * weight
                            tokens_seen += weight
                    accelerator.clip_grad_norm_(unwrapped.policy.parameters(), config.max_grad_norm)
                    accelerator.clip_grad_norm_(unwrapped.critic.parameters(), config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            trained = time.perf_counter()

            # Metrics: means over the whole batch (all processes).
            local = {key: value / tokens_seen.clamp(min=1.0) for key, value in stats.items()}
            local |= {
                "reward": score.mean(),
                "kl": kl.sum(dim=1).mean(),
                "non_score_reward": (-config.kl_beta * kl.sum(dim=1)).mean(),
                "response_length": mask.sum(dim=1).mean(),
                "ended_with_eos": torch.tensor([bool(r) and r[-1] == eos_id for r in responses], dtype=torch.float32,
                                               device=accelerator.device).mean(),
            }
            local |= {key: value.to(accelerator.device).mean() for key, value in parts.items()}
            means = {key: accelerator.reduce(value.float(), reduction="mean").item() for key, value in local.items()}
            row = {"iteration": iteration, **means, "reward_std": all_scores.std().item() if all_scores.numel() > 1 else 0.0,
                   "generation_s": generated - started, "scoring_s": scored_at - generated,
                   "rollout_forward_s": forwarded - scored_at, "training_s": trained - forwarded,
                   "iteration_s": trained - started, "learning_rate": config.learning_rate}
            bad = [key for key, value in row.items() if isinstance(value, float) and not math.isfinite(value)]
            if bad:
                raise FloatingPointError(f"iteration {iteration}: non-finite {', '.join(bad)}; lower the learning rate")
            history.append(row)
            if accelerator.is_main_process:
                with metrics_path.open("a") as file:
                    file.write(json.dumps(row) + "\n")
                with samples_path.open("a") as file:
                    for prompt, text, value in list(zip(batch_prompts, texts, score.tolist()))[: config.samples_per_iteration]:
                        file.write(json.dumps({"iteration": iteration, "prompt": prompt.chat, "guideline": prompt.guideline,
                                               "response": text, "reward": value}) + "\n")
                if iteration % config.plot_every == 0 or iteration == config.iterations:
                    plot_curves(history, run.tmp / "curves.png")
                logger.debug("metrics %s", row)
            progress.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.3f}", len=f"{row['response_length']:.0f}")
            if config.save_state_every and iteration % config.save_state_every == 0 and iteration < config.iterations:
                _save_state(config.out, iteration, history, unwrapped, optimizer, accelerator)

        # The finished policy, saved like any chat checkpoint so it can be registered and served.
        accelerator.wait_for_everyone()
        unwrapped.policy.save_pretrained(run.tmp, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
        if accelerator.is_main_process:
            tokenizer.save_pretrained(run.tmp)
        run.write_json("eval.json", summarize(history))
        logger.info("PPO done: reward %.3f -> %.3f, KL %.3f", history[0]["reward"], history[-1]["reward"], history[-1]["kl"])
        return run.finish()


def _save_state(out: str, iteration: int, history: list[dict], unwrapped: PolicyAndCritic, optimizer, accelerator) -> None:
    """Everything the next iterations depend on, written atomically (training/resume.py): both
    models, the optimizer's moments, every process's RNG states (generation samples from them), the
    iteration and the metrics so far; the prompt stream is replayed from its seed."""
    from accelerate.utils import gather_object

    rng_states = gather_object([rng_state()])  # one per process, in rank order
    if accelerator.is_main_process:
        def write(folder: Path) -> None:
            torch.save({"model": unwrapped.state_dict(), "optimizer": optimizer.state_dict()}, folder / "model.pt")
            torch.save({"iteration": iteration, "history": history, "rng": rng_states}, folder / "progress.pt")

        save_state(out, iteration, write)
    accelerator.wait_for_everyone()


def _load_state(folder: Path, unwrapped: PolicyAndCritic, optimizer, rank: int) -> tuple[int, list[dict]]:
    """Put a saved state back (into the prepared models and optimizer); returns (iteration, history)."""
    weights = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    unwrapped.load_state_dict(weights["model"])
    optimizer.load_state_dict(weights["optimizer"])
    progress = torch.load(folder / "progress.pt", weights_only=False)  # our own file: RNG states are tuples
    set_rng_state(progress["rng"][rank])
    return progress["iteration"], progress["history"]


def summarize(history: list[dict]) -> dict:
    """Mean reward and KL over the first and the last tenth of the iterations (at least one each)."""
    window = max(1, len(history) // 10)

    def mean(rows: list[dict], key: str) -> float:
        return sum(row[key] for row in rows) / len(rows)

    first, last = history[:window], history[-window:]
    return {
        "iterations": len(history),
        "window": window,
        "reward_first": mean(first, "reward"),
        "reward_last": mean(last, "reward"),
        "kl_last": mean(last, "kl"),
        "response_length_last": mean(last, "response_length"),
        "seconds_per_iteration": mean(history, "iteration_s"),
    }


def plot_curves(history: list[dict], path: Path) -> Path:
    """Reward, KL to the reference, entropy and response length against the iteration, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("reward", "mean reward (logit R_c, before whitening)"), ("kl", "KL(pi || pi_0) per answer"),
              ("entropy", "entropy per token"), ("response_length", "response length (tokens)")]
    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    iterations = [row["iteration"] for row in history]
    for axis, (key, title) in zip(axes.flat, panels):
        axis.plot(iterations, [row[key] for row in history], marker="o" if len(history) < 30 else None)
        axis.set_title(title)
        axis.set_xlabel("iteration")
    figure.suptitle("PPO")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _prompt_batches(prompts: list[Prompt], batch_size: int, *, seed: int) -> Iterator[list[Prompt]]:
    """Endless batches of prompts, reshuffled on every pass; the same on every process (same seed)."""
    import random

    rng = random.Random(seed)
    pool: list[Prompt] = []
    while True:
        while len(pool) < batch_size:
            shuffled = list(prompts)
            rng.shuffle(shuffled)
            pool += shuffled
        yield pool[:batch_size]
        pool = pool[batch_size:]


def _encode_prompt(tokenizer, prompt: Prompt, max_length: int) -> list[int]:
    """Token ids of the chat template with the assistant turn opened; long prompts keep their end."""
    text = tokenizer.apply_chat_template(prompt.chat, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"][-max_length:]


def _generate(policy, queries: list[list[int]], config: Config, *, eos_id: int, pad_id: int, device) -> list[list[int]]:
    """Sample one answer per query; each answer runs up to and including its first EOS."""
    width = max(len(q) for q in queries)
    input_ids = torch.full((len(queries), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, query in enumerate(queries):  # left padding, so every answer starts at the same column
        input_ids[row, width - len(query) :] = torch.tensor(query)
        attention_mask[row, width - len(query) :] = 1
    output = policy.generate(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), do_sample=True,
        temperature=config.temperature, top_p=config.top_p, top_k=0, max_new_tokens=config.max_new_tokens,
        eos_token_id=eos_id, pad_token_id=pad_id,
    )
    answers = output[:, width:].cpu()
    lengths = response_mask(answers, eos_id).sum(dim=1).long().tolist()
    return [answer[:length].tolist() for answer, length in zip(answers, lengths)]


def _pack(queries: list[list[int]], responses: list[list[int]], *, pad_id: int, device) -> dict[str, torch.Tensor]:
    """Queries left-padded and responses right-padded into one batch, with matching positions."""
    query_width, response_width = max(len(q) for q in queries), max(len(r) for r in responses)
    input_ids = torch.full((len(queries), query_width + response_width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, (query, response) in enumerate(zip(queries, responses)):
        input_ids[row, query_width - len(query) : query_width + len(response)] = torch.tensor(query + response)
        attention_mask[row, query_width - len(query) : query_width + len(response)] = 1
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention_mask.to(device),
        "position_ids": position_ids.to(device),
        "response_ids": input_ids[:, query_width:].to(device),
        "response_mask": attention_mask[:, query_width:].float().to(device),
    }


def main(argv: list[str] | None = None) -> None:
    config = parse_args(Config, argv, description="PPO with the combined safety/helpfulness reward (Llama 2 §3.2.3)")
    print(train(config))


if __name__ == "__main__":
    main(sys.argv[1:])
