"""End to end on the real model: a batch folder in the exported format trains a SmolLM2-135M reward model."""
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from training.synthetic_batch import write_exported_batch
from training import reward_model
from training.config import load_config


@pytest.mark.slow
def test_an_exported_batch_trains_and_evaluates_a_smollm2_reward_model(tmp_path, smollm2_dir, capsys):
    folder = write_exported_batch(tmp_path / "2026-W48", n_train=12, n_test=4, unsafe_chosen=2)
    config = load_config(
        reward_model.Config,
        None,
        [
            f"model={smollm2_dir}",
            f"data=[{{path: {folder}}}]",
            f"out={tmp_path / 'rm-smollm2'}",
            "batch_size=2",
            "per_device_batch_size=2",
            "max_steps=3",
            "learning_rate=2e-5",
            "warmup_min_steps=1",
            "max_length=512",
            "gradient_checkpointing=true",
        ],
    )

    out = reward_model.train(config)

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in metrics if "loss" in row]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    start = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert model.config.num_labels == 1
    assert not torch.equal(model.model.layers[-1].mlp.down_proj.weight, start.model.layers[-1].mlp.down_proj.weight)
    evaluation = json.loads((out / "eval.json").read_text())
    assert {name: split["pairs"] for name, split in evaluation["splits"].items()} == {
        "2026-W48/helpfulness": 2,
        "2026-W48/safety": 2,
    }
    assert all(0.0 <= split["accuracy"] <= 1.0 for split in evaluation["splits"].values())
    assert evaluation["data"]["dropped_chosen_unsafe_other_safe"] == {"2026-W48": 2}
    assert "layout of Table 8" in capsys.readouterr().out
