"""An exported batch is training data as it stands: datasets loads it and TRL's RewardTrainer trains on it."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from annotation_site.batches import services
from tests.annotation_site.batches.factories import make_mixed_week

pytestmark = pytest.mark.django_db


def test_the_exported_train_file_trains_trl_reward_trainer_with_its_margins(settings, tmp_path, tiny_model_dir):
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.BATCH_TEST_SIZE = 0.2
    make_mixed_week(annotators=3, per_annotator=6)
    batch, _ = services.batch_close()
    folder = Path(services.batch_export(batch_id=batch.id).export_path)

    train = load_dataset("json", data_files=str(folder / "preferences.train.jsonl"), split="train")
    assert len(train) >= 8 and {"prompt", "chosen", "rejected", "margin"} <= set(train.column_names)
    assert sorted(set(train["margin"])) == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(
        output_dir=str(tmp_path / "rm"),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        max_length=256,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    before = [p.detach().clone() for p in model.parameters()]

    # The margin column reaches the loss: -log sigmoid(r_c - r_r - m) (Llama 2, eq. 2).
    inputs = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(4)]))
    assert torch.equal(inputs["margin"], torch.tensor(train["margin"][:4], dtype=torch.float))
    with torch.no_grad():
        with_margin = trainer.compute_loss(model, dict(inputs))
        without_margin = trainer.compute_loss(model, {k: v for k, v in inputs.items() if k != "margin"})
    assert any(m != 0 for m in train["margin"][:4])
    assert not torch.isclose(with_margin, without_margin)

    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
