"""Reward-model recipe (Llama 2 paper, §3.2.2): a chat checkpoint with a scalar head, trained on
exported comparison batches with the binary ranking loss with rating margin (eq. 2).

    python -m training.reward_model --config training/configs/reward_model_helpfulness.yaml [key=value ...]
    accelerate launch --config_file training/accelerate/ddp.yaml -m training.reward_model --config ...

Training runs on TRL's RewardTrainer: its loss with a `margin` column is exactly eq. 2
(`-logsigmoid(r_c - r_r - margin)`, see training/losses.py and its test against the trainer), it
swaps the LM head for a scalar one, and it brings accelerate (DDP, DeepSpeed, FSDP) for free.
What it does not do, and this file adds: the rating -> margin tables of Table 27, the paper's
data mixes, warm-up of 3% with at least 5 steps, counting the pairs it drops for being longer
than `max_length`, and the per-rating / per-source evaluation of Tables 7 and 8.

Outputs in `out/` (written to `out.tmp/` and renamed when complete): the checkpoint
(`AutoModelForSequenceClassification`, num_labels=1, with its tokenizer and chat template),
`config.yaml`, `metrics.jsonl`, `eval.json`, `loss_curve.png`, `reward_distribution.png`, `train.log`.
"""
from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from training.config import parse_args
from training.data import DataError, load_eval_splits, load_preferences, parse_sources
from training.export_format import NO_MARGIN, rating_margin
from training.run_folder import (
    MetricsFile,
    RunFolder,
    accumulation_steps,
    plot_loss_curve,
    precision_args,
    state_saving_args,
    read_metrics,
    train_summary,
    warmup_steps,
    with_resolved_precision,
)

logger = logging.getLogger("training")


@dataclass
class Config:
    # Chat checkpoint (AutoModelForCausalLM folder with a chat template) to start from: "we initialize
    # our reward models from pretrained chat model checkpoints" with the LM head replaced by a scalar head.
    model: str
    # Exported batch folders and source datasets, with guideline filters and mixing weights (training/data.py).
    data: list[dict | str]
    # Folder of the finished checkpoint.
    out: str
    # Margin m(r) of eq. 2 by rating: Table 27's "small" or "large" table, or "none" (eq. 1).
    margin_table: Literal["small", "large", "none"] = "small"
    # "We train for one epoch over the training data ... training longer can lead to over-fitting."
    epochs: float = 1.0
    # Maximum learning rate: 1e-5 (5e-6 for the 70B model).
    learning_rate: float = 1e-5
    # "The learning rate is decreased on a cosine learning rate schedule, down to 10% of the maximum."
    min_lr_ratio: float = 0.1
    # "The warm-up is of 3% of the total number of steps, with a minimum of 5."
    warmup_ratio: float = 0.03
    warmup_min_steps: int = 5
    # "The effective batch size is kept fixed at 512 pairs, or 1024 rows per batch."
    batch_size: int = 512
    # Pairs per device per forward pass; gradient accumulation makes up `batch_size`.
    per_device_batch_size: int = 8
    # Pairs whose chosen or rejected conversation is longer are dropped by TRL (and counted here).
    # The paper's models have a 4096-token context.
    max_length: int = 4096
    # Longest held-out conversation scored in the evaluation; None scores every pair at full length
    # (scoring needs no gradients, so it fits where training would not). Pairs over it are left out
    # of Tables 7/8 and the count is printed beside them.
    eval_max_length: int | None = None
    # Not given for the reward models in the paper; AdamW's usual 0.
    weight_decay: float = 0.0
    # Trades ~40% more time for much less activation memory.
    gradient_checkpointing: bool = False
    # None: bf16 where the hardware supports it (GPU with bf16, CPU with avx512_bf16/AMX), else fp32.
    bf16: bool | None = None
    seed: int = 42
    # Stop after this many optimizer steps (-1: run the epochs); for smoke runs and benchmarks.
    max_steps: int = -1
    logging_steps: int = 1
    # Save a resumable state (model, optimizer, scheduler, RNG, data position) every this many
    # optimizer steps into `<out>.resume/`, so a run whose worker died continues from the newest
    # (training/resume.py); 0: never. Not from the paper: a save costs about three model sizes of
    # disk writes (weights and AdamW's two moments), so every 100 steps keeps it a small share.
    save_state_every: int = 100
    eval_batch_size: int = 16
    # Replace an existing `out` folder instead of refusing to.
    overwrite: bool = False
    # Extra RewardConfig (transformers TrainingArguments) settings, for what this file does not name.
    trainer_args: dict = field(default_factory=dict)


# What a researcher may override from the site (the runs app's launch form and API). Everything else
# - model, data and output paths, overwrite and trainer_args - comes from the shipped configs and
# the launch form's choices: data from the web is never a command or a path.
TUNABLE_KEYS = frozenset({
    "margin_table", "epochs", "learning_rate", "min_lr_ratio", "warmup_ratio", "warmup_min_steps",
    "batch_size", "per_device_batch_size", "max_length", "weight_decay", "gradient_checkpointing",
    "bf16", "seed", "max_steps", "logging_steps", "save_state_every", "eval_batch_size",
})



def train(config: Config, callbacks: Sequence = ()) -> Path:
    """Train a reward model as `config` says; returns the finished checkpoint folder.

    `callbacks`: more TrainerCallbacks (the tests stop a run midway with one, to resume it).
    """
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from training.evaluation import format_tables, pair_accuracy, plot_reward_distribution, reward_distribution, score_pairs

    sources = parse_sources(config.data)
    state = PartialState()
    config = with_resolved_precision(config)
    with RunFolder(config.out, overwrite=config.overwrite, is_main_process=state.is_main_process, config=config) as run:
        run.save_config(config)

        # Data: the mix to train on and the held-out split of every source.
        train_rows, mix = load_preferences(sources, split="train", seed=config.seed)
        eval_splits, _ = load_eval_splits(sources)
        logger.info("training pairs per source: %s", mix.rows_per_source)
        logger.info("dropped (chosen unsafe, other safe): %s", mix.dropped_unsafe_chosen)
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        if tokenizer.chat_template is None:
            raise DataError(f"{config.model} has no chat template; start the reward model from a chat checkpoint")
        columns = {key: [row[key] for row in train_rows] for key in ("prompt", "chosen", "rejected")}
        if config.margin_table != NO_MARGIN:
            columns["margin"] = [rating_margin(row.get("rating"), config.margin_table) for row in train_rows]
        dataset = Dataset.from_dict(columns)

        # Trainer: the paper's optimisation settings, on whatever accelerate launched us on.
        accumulation = accumulation_steps(config.batch_size, config.per_device_batch_size)
        args = RewardConfig(
            num_train_epochs=config.epochs,
            max_steps=config.max_steps,
            learning_rate=config.learning_rate,
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
            per_device_train_batch_size=config.per_device_batch_size,
            gradient_accumulation_steps=accumulation,
            weight_decay=config.weight_decay,
            max_length=config.max_length,
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
        metrics_file = MetricsFile(metrics_path)
        trainer = RewardTrainer(
            model=config.model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[metrics_file, *callbacks],
        )
        too_long = len(dataset) - len(trainer.train_dataset)
        if too_long:
            logger.warning("dropped %d of %d training pairs longer than max_length=%d tokens", too_long, len(dataset), config.max_length)
        if len(trainer.train_dataset) == 0:
            raise DataError(f"every training pair is longer than max_length={config.max_length}; raise it")
        steps_per_epoch = math.ceil(len(trainer.get_train_dataloader()) / accumulation)
        total_steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
        # Set after construction because the step count depends on how many pairs TRL kept.
        trainer.args.warmup_steps = warmup_steps(total_steps, ratio=config.warmup_ratio, minimum=config.warmup_min_steps)
        data_report = {
            **mix.as_dict(),
            # The pairs actually trained on: the mix after TRL's length filter.
            "train_pairs": len(trainer.train_dataset),
            "train_pairs_before_length_filter": len(dataset),
            "train_pairs_dropped_too_long": too_long,
            "pairs_per_step": config.per_device_batch_size * accumulation * trainer.args.world_size,
            "total_steps": total_steps,
            "warmup_steps": trainer.args.warmup_steps,
        }
        run.write_json("data.json", data_report)
        metrics_file.extra = {"train_pairs_dropped_too_long": too_long}
        logger.info(
            "%d pairs, %d steps of %d pairs (%d warm-up), margin table %s",
            len(trainer.train_dataset), total_steps, data_report["pairs_per_step"], trainer.args.warmup_steps, config.margin_table,
        )

        trainer.train(resume_from_checkpoint=run.resume_checkpoint)
        trainer.save_model(str(run.tmp))

        if state.is_main_process:
            # Evaluate the saved checkpoint, which also proves it loads back.
            on_gpu = trainer.args.device.type == "cuda"
            dtype = torch.bfloat16 if trainer.args.bf16 and on_gpu else torch.float32
            model = AutoModelForSequenceClassification.from_pretrained(run.tmp, dtype=dtype).to(trainer.args.device)
            results, all_rows, all_chosen, all_rejected = {}, [], [], []
            for name, rows in eval_splits.items():
                chosen, rejected = score_pairs(
                    model, tokenizer, rows, batch_size=config.eval_batch_size, max_length=config.eval_max_length
                )
                results[name] = pair_accuracy(rows, chosen, rejected)
                all_rows += rows
                all_chosen += chosen
                all_rejected += rejected
            distribution = reward_distribution(all_rows, all_chosen, all_rejected)
            metrics = read_metrics(metrics_path)
            run.write_json(
                "eval.json",
                {
                    "splits": results,
                    "reward_distribution": distribution,
                    "data": data_report,
                    "train": train_summary(metrics),
                },
            )
            plot_loss_curve(metrics, run.tmp / "loss_curve.png", f"reward model ({config.margin_table} margin)")
            plot_reward_distribution(distribution, run.tmp / "reward_distribution.png")
            if results:
                print(format_tables(results, Path(config.out).name, eval_max_length=config.eval_max_length), flush=True)
            else:
                logger.warning("no held-out split found (preferences.test.jsonl) in any data source")
        state.wait_for_everyone()
        return run.finish()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(Config, argv, description="Train a reward model (Llama 2 §3.2.2) from exported batches.")
    out = train(config)
    print(f"reward model written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
