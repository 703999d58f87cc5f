"""Supervised fine-tuning recipe (Llama 2 paper, §3.1) on the annotators' demonstrations.

    python -m training.sft --config training/configs/sft.yaml [key=value ...]
    accelerate launch --config_file training/accelerate/ddp.yaml -m training.sft --config ...

Data: the `sft.jsonl` of exported batch folders and any JSONL file of `messages` rows (user and
assistant turns ending with the ideal answer). Each conversation becomes a conversational
prompt/completion pair: everything before the last assistant turn is the prompt, the last turn
the completion. TRL's SFTTrainer with `completion_only_loss` then sets the labels of every prompt
token to -100, which is the paper's "we zero-out the loss on tokens from the user prompt"; it
works for any chat template, unlike `assistant_only_loss`, which needs `{% generation %}` markers
in the template, and it does not train on earlier assistant turns that an annotator did not write.

Outputs in `out/` (written to `out.tmp/` and renamed when complete): the checkpoint
(`AutoModelForCausalLM` with tokenizer and chat template), `config.yaml`, `metrics.jsonl`,
`eval.json` (loss, perplexity and token accuracy on held-out demonstrations), `loss_curve.png`,
`train.log`.
"""
from __future__ import annotations

import logging
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from training.config import parse_args
from training.data import DataError, load_sft, parse_sources
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
    # Checkpoint (AutoModelForCausalLM folder with a chat template) to fine-tune.
    model: str
    # Exported batch folders (their sft.jsonl) and JSONL files of `messages` rows, with weights.
    data: list[dict | str]
    # Folder of the finished checkpoint.
    out: str
    # "We fine-tune the model for 2 epochs."
    epochs: float = 2.0
    # "We use a cosine learning rate schedule, with an initial learning rate of 2e-5."
    learning_rate: float = 2e-5
    # The paper's cosine goes to 0; set e.g. 0.1 to stop at 10% of the initial rate.
    min_lr_ratio: float = 0.0
    # Not given in §3.1; none by default.
    warmup_ratio: float = 0.0
    warmup_min_steps: int = 0
    # "A weight decay of 0.1."
    weight_decay: float = 0.1
    # "A batch size of 64."
    batch_size: int = 64
    per_device_batch_size: int = 4
    # "A sequence length of 4096 tokens." Longer conversations are truncated by TRL (and counted).
    max_length: int = 4096
    # The paper concatenates all prompts and answers to fill the sequence; TRL's packing needs a
    # padding-free attention kernel (flash-attention) to keep examples apart, so it is opt-in.
    packing: bool = False
    # Fraction of the demonstrations held out for eval.json (the paper holds none out).
    eval_fraction: float = 0.02
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
    # Replace an existing `out` folder instead of refusing to.
    overwrite: bool = False
    # Extra SFTConfig (transformers TrainingArguments) settings, for what this file does not name.
    trainer_args: dict = field(default_factory=dict)


# What a researcher may override from the site (the runs app's launch form and API). Everything else
# - model, data and output paths, overwrite and trainer_args - comes from the shipped configs and
# the launch form's choices: data from the web is never a command or a path.
TUNABLE_KEYS = frozenset({
    "epochs", "learning_rate", "min_lr_ratio", "warmup_ratio", "warmup_min_steps", "weight_decay",
    "batch_size", "per_device_batch_size", "max_length", "packing", "eval_fraction",
    "gradient_checkpointing", "bf16", "seed", "max_steps", "logging_steps", "save_state_every",
})



def to_prompt_completion(row: dict) -> dict:
    """A `messages` demonstration as a conversational prompt/completion pair (the last turn is the completion)."""
    return {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}


def build_trainer(config: Config, tokenizer, train_dataset, eval_dataset=None, *, run: RunFolder, callbacks=()):
    """TRL's SFTTrainer set up with the paper's settings; prompt tokens get label -100."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=accumulation_steps(config.batch_size, config.per_device_batch_size),
        max_length=config.max_length,
        packing=config.packing,
        completion_only_loss=True,
        activation_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        **state_saving_args(run, config.save_state_every),
        eval_strategy="no",
        report_to="none",
        **precision_args(config.bf16),
        **config.trainer_args,
    )
    return SFTTrainer(
        model=config.model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def train(config: Config, callbacks: Sequence = ()) -> Path:
    """Fine-tune `config.model` on the demonstrations; returns the finished checkpoint folder.

    `callbacks`: more TrainerCallbacks (the tests stop a run midway with one, to resume it).
    """
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoTokenizer

    sources = parse_sources(config.data)
    state = PartialState()
    config = with_resolved_precision(config)
    with RunFolder(config.out, overwrite=config.overwrite, is_main_process=state.is_main_process, config=config) as run:
        run.save_config(config)

        rows, mix = load_sft(sources, seed=config.seed)
        logger.info("demonstrations per source: %s", mix.rows_per_source)
        held_out = round(config.eval_fraction * len(rows))
        if config.eval_fraction > 0 and len(rows) >= 2:
            held_out = max(1, held_out)
        random.Random(config.seed).shuffle(rows)
        eval_rows, train_rows = rows[:held_out], rows[held_out:]
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        if tokenizer.chat_template is None:
            raise DataError(f"{config.model} has no chat template; SFT formats demonstrations with it")
        train_dataset = Dataset.from_list([to_prompt_completion(row) for row in train_rows])
        eval_dataset = Dataset.from_list([to_prompt_completion(row) for row in eval_rows]) if eval_rows else None

        metrics_path = run.tmp / "metrics.jsonl"
        metrics_file = MetricsFile(metrics_path)
        trainer = build_trainer(config, tokenizer, train_dataset, eval_dataset, run=run, callbacks=[metrics_file, *callbacks])
        accumulation = trainer.args.gradient_accumulation_steps
        world_size = trainer.args.world_size
        # TRL truncates instead of dropping; a sequence at the limit lost its end (or exactly fit).
        truncated = sum(len(ids) >= config.max_length for ids in trainer.train_dataset["input_ids"]) if not config.packing else None
        if truncated:
            logger.warning("%d of %d demonstrations reach max_length=%d tokens and are truncated", truncated, len(train_dataset), config.max_length)
        # TRL drops an example whose answer lies wholly past max_length: no token left to learn from.
        fully_masked = len(train_dataset) - len(trainer.train_dataset) if not config.packing else None
        if fully_masked:
            logger.warning("%d demonstrations have no answer token within max_length and are dropped", fully_masked)
        steps_per_epoch = math.ceil(len(trainer.get_train_dataloader()) / accumulation)
        total_steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
        trainer.args.warmup_steps = warmup_steps(total_steps, ratio=config.warmup_ratio, minimum=config.warmup_min_steps)
        data_report = {
            **mix.as_dict(),
            "train_demonstrations": len(train_dataset),
            "eval_demonstrations": len(eval_rows),
            "train_demonstrations_truncated": truncated,
            "train_demonstrations_dropped_no_answer_token": fully_masked,
            "examples_per_step": config.per_device_batch_size * accumulation * world_size,
            "total_steps": total_steps,
            "warmup_steps": trainer.args.warmup_steps,
        }
        run.write_json("data.json", data_report)
        metrics_file.extra = {"train_demonstrations_truncated": truncated}
        logger.info("%d demonstrations, %d steps of %d", len(train_dataset), total_steps, data_report["examples_per_step"])

        trainer.train(resume_from_checkpoint=run.resume_checkpoint)
        evaluation = {}
        if eval_dataset is not None:
            evaluation = trainer.evaluate()
            evaluation["eval_perplexity"] = math.exp(min(evaluation["eval_loss"], 50.0))
            logger.info(
                "held-out demonstrations: loss %.4f, perplexity %.2f, token accuracy %.3f",
                evaluation["eval_loss"], evaluation["eval_perplexity"], evaluation.get("eval_mean_token_accuracy", float("nan")),
            )
        trainer.save_model(str(run.tmp))

        if state.is_main_process:
            metrics = read_metrics(metrics_path)
            run.write_json(
                "eval.json",
                {
                    "held_out": evaluation,
                    "data": data_report,
                    "train": train_summary(metrics),
                },
            )
            plot_loss_curve(metrics, run.tmp / "loss_curve.png", "SFT (loss on answer tokens)")
        state.wait_for_everyone()
        return run.finish()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(Config, argv, description="Supervised fine-tuning (Llama 2 §3.1) on annotator demonstrations.")
    out = train(config)
    print(f"SFT checkpoint written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
