"""Tiny reward models for the RLHF tests: the tiny Llama with its LM head replaced by a random
scalar head (as the paper builds reward models from the chat model), saved with its tokenizer."""
from __future__ import annotations

from pathlib import Path


def build_tiny_reward_model(policy_dir: Path, out_dir: Path, *, seed: int, num_labels: int = 1) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        policy_dir, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id
    )
    # A larger head than the default init, so different responses get clearly different scores.
    torch.nn.init.normal_(model.score.weight, std=0.5)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
