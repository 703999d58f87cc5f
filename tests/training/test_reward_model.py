"""The reward-model recipe, run for real on a tiny random Llama with a locally trained tokenizer."""
import json
import math

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, set_seed

from training.synthetic_batch import write_exported_batch
from training import reward_model
from training.config import load_config
from training.data import DataError, load_preferences, parse_sources
from training.evaluation import score_pairs
from training.export_format import rating_margin
from training.losses import ranking_loss

TINY_RUN = {
    "batch_size": 8,
    "per_device_batch_size": 8,
    "learning_rate": 3e-3,
    "warmup_min_steps": 1,
    "bf16": False,
    "eval_batch_size": 8,
}


def run_config(tmp_path, tiny_model_dir, folder, **overrides):
    values = {"model": str(tiny_model_dir), "data": [str(folder)], "out": str(tmp_path / "rm"), **TINY_RUN, **overrides}
    return load_config(reward_model.Config, None, [f"{key}={json.dumps(value)}" for key, value in values.items()])


def metrics_of(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_recipe_trains_from_a_yaml_config_and_writes_a_complete_reloadable_checkpoint(tmp_path, tiny_model_dir, capsys):
    folder = write_exported_batch(tmp_path / "w48", n_train=64, n_test=16, unsafe_chosen=4)
    config_file = tmp_path / "rm.yaml"
    config_file.write_text(yaml.safe_dump({"model": str(tiny_model_dir), "data": [{"path": str(folder)}], **TINY_RUN, "epochs": 2}))

    assert reward_model.main(["--config", str(config_file), f"out={tmp_path / 'rm'}"]) == 0

    out = tmp_path / "rm"
    assert not (tmp_path / "rm.tmp").exists() and not (tmp_path / "rm.failed").exists()
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "data.json", "loss_curve.png", "reward_distribution.png", "train.log"):
        assert (out / name).is_file(), name
    # loss finite and falling over 16 steps
    losses = [row["loss"] for row in metrics_of(out) if "loss" in row]
    assert len(losses) == 16 and all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    assert all(row["tokens_per_s"] > 0 for row in metrics_of(out) if "loss" in row)
    # a reward model with a scalar head whose backbone moved away from the chat checkpoint
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(model.model.layers[0].self_attn.q_proj.weight, start.model.layers[0].self_attn.q_proj.weight)
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert load_config(reward_model.Config, out / "config.yaml").epochs == 2
    # evaluated on the held-out split of every guideline, with the unsafe-chosen pairs left out of training
    evaluation = json.loads((out / "eval.json").read_text())
    assert set(evaluation["splits"]) == {"2026-W48/helpfulness", "2026-W48/safety"}
    assert evaluation["splits"]["2026-W48/helpfulness"]["pairs"] == 8
    assert evaluation["data"]["dropped_chosen_unsafe_other_safe"] == {"2026-W48": 4}
    assert evaluation["data"]["train_pairs"] == 64
    assert evaluation["reward_distribution"]["safe"]["count"] + evaluation["reward_distribution"]["unsafe"]["count"] == 16
    printed = capsys.readouterr().out
    assert "layout of Table 7" in printed and "Negligibly Better / Unsure" in printed


@pytest.mark.parametrize("margin_table", ["large", "none"])
def test_the_trainer_loss_is_eq2_with_the_tables_margin(tmp_path, tiny_model_dir, margin_table):
    """The first logged loss (before any update) equals eq. 2 on the same pairs, margins and initial model."""
    folder = write_exported_batch(tmp_path / "w48", n_train=8, n_test=4)
    config = run_config(tmp_path, tiny_model_dir, folder, margin_table=margin_table, max_steps=1, seed=7)

    out = reward_model.train(config)

    logged = metrics_of(out)[0]["loss"]
    rows, _ = load_preferences(parse_sources([str(folder)]), seed=7)
    set_seed(7)  # as RewardTrainer does before it adds the random scalar head
    initial = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    initial.config.pad_token_id = tokenizer.pad_token_id
    chosen, rejected = score_pairs(initial, tokenizer, rows)
    margins = torch.tensor([rating_margin(row["rating"], margin_table) for row in rows])
    expected = ranking_loss(torch.tensor(chosen), torch.tensor(rejected), margins).item()
    without_margin = ranking_loss(torch.tensor(chosen), torch.tensor(rejected)).item()
    assert logged == pytest.approx(expected, rel=1e-4)
    if margin_table == "large":
        assert logged > without_margin + 0.1


def test_pairs_longer_than_max_length_are_dropped_and_counted(tmp_path, tiny_model_dir):
    folder = write_exported_batch(tmp_path / "w48", n_train=16, n_test=4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows, _ = load_preferences(parse_sources([str(folder)]))
    length = lambda messages: len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])  # noqa: E731
    lengths = sorted(max(length(row["prompt"] + row["chosen"]), length(row["prompt"] + row["rejected"])) for row in rows)
    max_length = lengths[len(lengths) // 2]
    expected_dropped = sum(value > max_length for value in lengths)
    assert 0 < expected_dropped < len(rows)

    out = reward_model.train(run_config(tmp_path, tiny_model_dir, folder, max_length=max_length, max_steps=1))

    data = json.loads((out / "data.json").read_text())
    assert data["train_pairs_dropped_too_long"] == expected_dropped
    assert data["train_pairs"] == len(rows) - expected_dropped and data["train_pairs_before_length_filter"] == len(rows)
    assert metrics_of(out)[0]["train_pairs_dropped_too_long"] == expected_dropped


def pair_length(tokenizer, row) -> int:
    length = lambda messages: len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])  # noqa: E731
    return max(length(row["prompt"] + row["chosen"]), length(row["prompt"] + row["rejected"]))


def test_held_out_pairs_longer_than_the_training_max_length_are_still_evaluated_and_what_is_left_out_is_printed(
    tmp_path, tiny_model_dir, capsys
):
    folder = write_exported_batch(tmp_path / "w48", n_train=16, n_test=16)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    held_out, _ = load_preferences(parse_sources([str(folder)]), split="test")
    lengths = sorted(pair_length(tokenizer, row) for row in held_out)
    max_length = lengths[len(lengths) // 2]
    too_long = sum(value > max_length for value in lengths)
    assert 0 < too_long < len(held_out)

    full = reward_model.train(run_config(tmp_path, tiny_model_dir, folder, out=str(tmp_path / "full"), max_length=max_length, max_steps=1))
    splits = json.loads((full / "eval.json").read_text())["splits"]
    assert sum(split["pairs"] for split in splits.values()) == len(held_out)
    assert all(split["skipped_too_long"] == 0 for split in splits.values())
    assert "Left out of the tables: nothing (every held-out pair was scored at full length)." in capsys.readouterr().out

    capped = reward_model.train(
        run_config(tmp_path, tiny_model_dir, folder, out=str(tmp_path / "capped"), max_length=max_length, eval_max_length=max_length, max_steps=1)
    )
    splits = json.loads((capped / "eval.json").read_text())["splits"]
    assert sum(split["skipped_too_long"] for split in splits.values()) == too_long
    printed = capsys.readouterr().out
    assert f"Left out of the tables: held-out pairs longer than eval_max_length={max_length} tokens:" in printed
    for name, split in splits.items():
        if split["skipped_too_long"]:
            assert f"  {name}: {split['skipped_too_long']} of {split['skipped_too_long'] + split['pairs']} pairs" in printed


def test_the_saved_config_says_which_precision_auto_resolved_to(tmp_path, tiny_model_dir):
    from training.run_folder import precision_args

    folder = write_exported_batch(tmp_path / "w48", n_train=8, n_test=2)
    out = reward_model.train(run_config(tmp_path, tiny_model_dir, folder, bf16=None, max_steps=1))

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["bf16"] is precision_args(None)["bf16"] and isinstance(saved["bf16"], bool)


def test_same_config_and_seed_give_the_same_weights(tmp_path, tiny_model_dir):
    folder = write_exported_batch(tmp_path / "w48", n_train=16, n_test=4)
    first = reward_model.train(run_config(tmp_path, tiny_model_dir, folder, out=str(tmp_path / "a"), max_steps=2))
    second = reward_model.train(run_config(tmp_path, tiny_model_dir, folder, out=str(tmp_path / "b"), max_steps=2))
    a = AutoModelForSequenceClassification.from_pretrained(first).state_dict()
    b = AutoModelForSequenceClassification.from_pretrained(second).state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_failed_run_leaves_its_error_and_logs_but_no_complete_looking_folder(tmp_path, tiny_model_dir):
    folder = write_exported_batch(tmp_path / "w48", n_train=4, n_test=2)
    with (folder / "preferences.train.jsonl").open("a") as file:
        file.write('{"prompt": "not a conversation"}\n')

    with pytest.raises(DataError, match="prompt must be a non-empty list"):
        reward_model.train(run_config(tmp_path, tiny_model_dir, folder))

    assert not (tmp_path / "rm").exists() and not (tmp_path / "rm.tmp").exists()
    failed = tmp_path / "rm.failed"
    assert "prompt must be a non-empty list" in (failed / "error.txt").read_text()
    assert (failed / "train.log").is_file() and (failed / "config.yaml").is_file()


def test_an_existing_checkpoint_is_not_overwritten_unless_asked(tmp_path, tiny_model_dir):
    folder = write_exported_batch(tmp_path / "w48", n_train=4, n_test=2)
    (tmp_path / "rm").mkdir()
    with pytest.raises(FileExistsError, match="overwrite=true"):
        reward_model.train(run_config(tmp_path, tiny_model_dir, folder))


def test_accelerate_launch_on_two_processes_trains_one_checkpoint(tmp_path, tiny_model_dir):
    """The recipe's multi-process path (what DDP/DeepSpeed/FSDP runs go through), on two CPU processes."""
    import subprocess
    import sys

    folder = write_exported_batch(tmp_path / "w48", n_train=32, n_test=8)
    out = tmp_path / "rm-ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.reward_model",
        f"model={tiny_model_dir}", f"data=[{folder}]", f"out={out}",
        "batch_size=8", "per_device_batch_size=4", "learning_rate=1e-3", "warmup_min_steps=1", "bf16=false",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "data.json").read_text())
    assert data["pairs_per_step"] == 8 and data["total_steps"] == 4
    assert len([row for row in metrics_of(out) if "loss" in row]) == 4
    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_labels == 1
    assert not (tmp_path / "rm-ddp.tmp").exists()
