"""The SFT recipe, run for real on a tiny random Llama with a locally trained tokenizer."""
import json
import math

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from training.synthetic_batch import write_exported_batch
from training import sft
from training.config import load_config
from training.run_folder import RunFolder


def sft_config(tmp_path, tiny_model_dir, data, **overrides):
    values = {
        "model": str(tiny_model_dir),
        "data": data,
        "out": str(tmp_path / "sft"),
        "batch_size": 8,
        "per_device_batch_size": 4,
        "learning_rate": 3e-3,
        "bf16": False,
        **overrides,
    }
    return load_config(sft.Config, None, [f"{key}={json.dumps(value)}" for key, value in values.items()])


def test_prompt_tokens_get_label_minus_100_and_only_the_answer_is_learned(tmp_path, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    demonstration = {
        "messages": [
            {"role": "user", "content": "Please explain travel to me."},
            {"role": "assistant", "content": "Sure here are the steps."},
            {"role": "user", "content": "And what about money?"},
            {"role": "assistant", "content": "Here is a good answer thank you."},
        ]
    }
    config = sft_config(tmp_path, tiny_model_dir, ["unused"])
    trainer = sft.build_trainer(config, tokenizer, Dataset.from_list([sft.to_prompt_completion(demonstration)]), run=RunFolder(tmp_path / "sft"))

    example = trainer.train_dataset[0]
    learned = [token for token, label in zip(example["input_ids"], example["labels"]) if label != -100]
    masked = [token for token, label in zip(example["input_ids"], example["labels"]) if label == -100]
    assert tokenizer.decode(learned).startswith("Here is a good answer thank you.<|im_end|>")
    assert tokenizer.decode(masked) == tokenizer.apply_chat_template(demonstration["messages"][:-1], tokenize=False, add_generation_prompt=True)
    # the earlier assistant turn, not written by the annotator, is context only
    assert "Sure here are the steps" in tokenizer.decode(masked)


def test_recipe_trains_and_writes_a_complete_reloadable_checkpoint(tmp_path, tiny_model_dir):
    folder = write_exported_batch(tmp_path / "w48", n_train=40)
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"messages": [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hello, how can I help?"}]}) + "\n")

    out = sft.train(sft_config(tmp_path, tiny_model_dir, [str(folder), {"path": str(extra), "weight": 2.0}], epochs=3, eval_fraction=0.1))

    assert not (tmp_path / "sft.tmp").exists()
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "data.json", "loss_curve.png", "train.log"):
        assert (out / name).is_file(), name
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in metrics if "loss" in row]
    assert len(losses) == 15 and all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert all("lr" in row and row["tokens_per_s"] > 0 for row in metrics if "loss" in row)
    model = AutoModelForCausalLM.from_pretrained(out)
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(model.model.layers[1].mlp.up_proj.weight, start.model.layers[1].mlp.up_proj.weight)
    assert AutoTokenizer.from_pretrained(out).chat_template
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["data"]["rows_per_source"] == {"2026-W48": 40, "extra": 2}
    assert evaluation["data"]["eval_demonstrations"] == 4
    assert math.isfinite(evaluation["held_out"]["eval_loss"]) and evaluation["held_out"]["eval_perplexity"] > 1


def test_the_saved_config_says_which_precision_auto_resolved_to(tmp_path, tiny_model_dir):
    import yaml

    from training.run_folder import precision_args

    folder = write_exported_batch(tmp_path / "w48", n_train=8)
    out = sft.train(sft_config(tmp_path, tiny_model_dir, [str(folder)], bf16=None, max_steps=1))

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["bf16"] is precision_args(None)["bf16"] and isinstance(saved["bf16"], bool)
