"""An alternative to PPO: TRL's GRPOTrainer with the paper's combined reward as its reward function.

    python -m training.grpo --config training/configs/grpo.yaml [key=value ...]
    accelerate launch --config_file training/accelerate/ddp.yaml -m training.grpo --config training/configs/grpo.yaml

Not in the Llama 2 paper. GRPO (Shao et al., 2024) drops PPO's critic: it samples a group of
`num_generations` answers per prompt and uses each answer's reward minus its group's mean
(divided by the group's standard deviation) as the advantage of all its tokens. That group
normalisation takes the place of eq. 4's whitening, so the reward function returns the linear
combined reward `logit(R_c)` of eq. 3 unwhitened; the KL to the reference model is TRL's `beta`,
set to the paper's PPO value. It needs one model fewer in memory than `training.ppo` and brings
TRL's vLLM generation (`use_vllm`), at the cost of `num_generations` answers per prompt.

Outputs in `out/` (written to `out.tmp/` and renamed when complete): the policy checkpoint,
`config.yaml`, `metrics.jsonl` (TRL's logs: reward, reward_std, kl, entropy, completion lengths,
clip ratios), `loss_curve.png`, `train.log`.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from training.config import ConfigError, parse_args
from training.prompts import load_prompts
from training.rewards import SAFETY_THRESHOLD
from training.run_folder import (
    MetricsFile,
    RunFolder,
    accumulation_steps,
    plot_loss_curve,
    precision_args,
    state_saving_args,
    read_metrics,
    with_resolved_precision,
)
from training.scoring import RewardFunction, RewardScorer

logger = logging.getLogger("training")


@dataclass
class Config:
    # Policy to improve (AutoModelForCausalLM with a chat template); also the frozen reference.
    model: str
    # Prompts: exported batch folders or prompt JSONL files (training/prompts.py), with guidelines.
    data: list[dict | str]
    # Folder of the finished policy checkpoint.
    out: str
    helpfulness_reward_model: str | None = None
    safety_reward_model: str | None = None
    # Eq. 3: a response whose safety probability is below this is judged by the safety model.
    safety_threshold: float = SAFETY_THRESHOLD
    # Answers per prompt (the group whose mean is the baseline).
    num_generations: int = 8
    # KL coefficient: the paper's PPO beta (0.005 for the largest models); TRL's default is 0.
    kl_beta: float = 0.01
    # The paper's PPO optimisation settings: constant lr 1e-6, AdamW (0.9, 0.95, eps 1e-5),
    # weight decay 0.1, gradient clipping 1.0, clip 0.2; 512 answers per optimizer step.
    learning_rate: float = 1e-6
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    adam_eps: float = 1e-5
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    clip_range: float = 0.2
    batch_size: int = 512
    # Answers per device per forward pass; gradient accumulation makes up `batch_size`.
    per_device_batch_size: int = 8
    max_steps: int = 200
    max_new_tokens: int = 512
    temperature: float = 1.0
    # Generate with vLLM in the training process (TRL's "colocate" mode; needs the vllm package).
    use_vllm: bool = False
    scoring_batch_size: int = 16
    gradient_checkpointing: bool = False
    # None: bf16 where the hardware supports it, else fp32.
    bf16: bool | None = None
    seed: int = 42
    logging_steps: int = 1
    # Save a resumable state (model, optimizer, scheduler, RNG, data position) every this many
    # optimizer steps into `<out>.resume/`, so a run whose worker died continues from the newest
    # (training/resume.py); 0: never. Not from the paper: a save costs about three model sizes of
    # disk writes (weights and AdamW's two moments), so every 100 steps keeps it a small share.
    save_state_every: int = 100
    overwrite: bool = False
    # Extra GRPOConfig settings, for what this file does not name.
    trainer_args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.helpfulness_reward_model is None) != (self.safety_reward_model is None):
            raise ValueError("give both helpfulness_reward_model and safety_reward_model (eq. 3 needs both)")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be at least 2 (GRPO compares answers within a group), got {self.num_generations}")


# What a researcher may override from the site (the runs app's launch form and API). Everything else
# - model, data and output paths, the reward models, use_vllm, overwrite and trainer_args - comes
# from the shipped configs and the launch form's choices: data from the web is never a command or a
# path.
TUNABLE_KEYS = frozenset({
    "safety_threshold", "num_generations", "kl_beta", "learning_rate", "adam_betas", "adam_eps",
    "weight_decay", "max_grad_norm", "clip_range", "batch_size", "per_device_batch_size",
    "max_steps", "max_new_tokens", "temperature", "scoring_batch_size", "gradient_checkpointing",
    "bf16", "seed", "logging_steps", "save_state_every",
})



class CombinedReward:
    """The combined reward of eq. 3 in the shape TRL's GRPOTrainer calls reward functions with:
    prompts, completions (conversational) and the dataset's extra columns (here `guideline`)."""

    __name__ = "combined_reward"

    def __init__(self, reward_fn: RewardFunction):
        self.reward_fn = reward_fn

    def __call__(self, prompts, completions, guideline, **kwargs) -> list[float]:
        responses = [completion[-1]["content"] if isinstance(completion, list) else completion for completion in completions]
        return [float(value) for value in self.reward_fn(prompts, responses, guideline)]


def train(config: Config, reward_fn: RewardFunction | None = None, callbacks: Sequence = ()) -> Path:
    """Run GRPO as `config` says; returns the finished policy checkpoint folder.

    `callbacks`: more TrainerCallbacks (the tests stop a run midway with one, to resume it).
    """
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    if reward_fn is None and config.helpfulness_reward_model is None:
        raise ConfigError("set helpfulness_reward_model and safety_reward_model: GRPO needs a reward")
    state = PartialState()
    accumulation = accumulation_steps(config.batch_size, config.per_device_batch_size)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
    if (config.per_device_batch_size * accumulation * world_size) % config.num_generations:
        raise ConfigError(f"batch_size {config.batch_size} must hold whole groups of num_generations {config.num_generations}")
    prompts = load_prompts(config.data, seed=config.seed)
    config = with_resolved_precision(config)

    with RunFolder(config.out, overwrite=config.overwrite, is_main_process=state.is_main_process, config=config) as run:
        run.save_config(config)
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        if tokenizer.chat_template is None:
            raise ConfigError(f"{config.model} has no chat template; GRPO starts from a chat (SFT) checkpoint")
        if reward_fn is None:
            reward_fn = RewardScorer(
                config.helpfulness_reward_model, config.safety_reward_model, safety_threshold=config.safety_threshold,
                batch_size=config.scoring_batch_size, device=state.device,
            )
        dataset = Dataset.from_list([{"prompt": prompt.chat, "guideline": prompt.guideline or "helpfulness"} for prompt in prompts])
        args = GRPOConfig(
            max_steps=config.max_steps,
            learning_rate=config.learning_rate,
            lr_scheduler_type="constant",
            adam_beta1=config.adam_betas[0],
            adam_beta2=config.adam_betas[1],
            adam_epsilon=config.adam_eps,
            weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm,
            epsilon=config.clip_range,
            beta=config.kl_beta,
            num_generations=config.num_generations,
            per_device_train_batch_size=config.per_device_batch_size,
            gradient_accumulation_steps=accumulation,
            max_completion_length=config.max_new_tokens,
            temperature=config.temperature,
            use_vllm=config.use_vllm,
            vllm_mode="colocate",
            activation_checkpointing=config.gradient_checkpointing,
            seed=config.seed,
            data_seed=config.seed,
            logging_steps=config.logging_steps,
            **state_saving_args(run, config.save_state_every),
            report_to="none",
            **precision_args(config.bf16),
            **config.trainer_args,
        )
        metrics_path = run.tmp / "metrics.jsonl"
        trainer = GRPOTrainer(
            model=config.model,
            reward_funcs=CombinedReward(reward_fn),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[MetricsFile(metrics_path), *callbacks],
        )
        logger.info("GRPO on %d prompts, %d answers per prompt, %d steps", len(prompts), config.num_generations, config.max_steps)
        trainer.train(resume_from_checkpoint=run.resume_checkpoint)
        trainer.save_model(str(run.tmp))
        if state.is_main_process:
            plot_loss_curve(read_metrics(metrics_path), run.tmp / "loss_curve.png", "GRPO")
        state.wait_for_everyone()
        return run.finish()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(Config, argv, description="GRPO with the combined safety/helpfulness reward (an alternative to PPO)")
    print(train(config))


if __name__ == "__main__":
    main(sys.argv[1:])
