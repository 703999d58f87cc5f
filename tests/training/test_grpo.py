"""The GRPO alternative recipe (TRL's GRPOTrainer with the combined reward), on tiny models."""
import json

import pytest
import torch
from safetensors.torch import load_file

from training.grpo import CombinedReward, Config, train
from tests.training.rlhf_models import build_tiny_reward_model


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("grpo") / "prompts.jsonl"
    path.write_text("".join(
        json.dumps({"prompt": [{"role": "user", "content": f"Tell me about {topic}."}], "guideline": guideline}) + "\n"
        for topic, guideline in [("bread", "helpfulness"), ("locks", "safety"), ("rain", "helpfulness"), ("fire", "safety")]
    ))
    return path


def test_grpo_trains_the_policy_on_the_combined_reward(tiny_model_dir, prompts, tmp_path):
    helpfulness = build_tiny_reward_model(tiny_model_dir, tmp_path / "rm-h", seed=1)
    safety = build_tiny_reward_model(tiny_model_dir, tmp_path / "rm-s", seed=2)
    out = tmp_path / "run"
    config = Config(model=str(tiny_model_dir), data=[str(prompts)], out=str(out), helpfulness_reward_model=str(helpfulness),
                    safety_reward_model=str(safety), num_generations=4, batch_size=8, per_device_batch_size=8,
                    max_steps=3, max_new_tokens=8, learning_rate=1e-3, bf16=False, seed=0)
    assert train(config) == out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [row for row in rows if "loss" in row]
    assert len(logged) == 3
    for row in logged:
        for key in ("loss", "reward", "reward_std", "kl"):
            assert torch.isfinite(torch.tensor(row[key])), key
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[name], after[name]) for name in before)
    assert (out / "config.yaml").is_file()


def test_combined_reward_passes_each_answer_and_its_guideline():
    seen = {}

    def reward_fn(prompts, responses, guidelines):
        seen.update(prompts=prompts, responses=responses, guidelines=guidelines)
        return torch.tensor([1.0, -2.0])

    prompts = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
    completions = [[{"role": "assistant", "content": "x"}], [{"role": "assistant", "content": "y"}]]
    assert CombinedReward(reward_fn)(prompts, completions, guideline=["safety", "helpfulness"], trainer_state=None) == [1.0, -2.0]
    assert seen == {"prompts": prompts, "responses": ["x", "y"], "guidelines": ["safety", "helpfulness"]}


def test_a_group_needs_two_answers():
    with pytest.raises(ValueError, match="num_generations must be at least 2"):
        Config(model="m", data=["d"], out="o", num_generations=1)


def test_shipped_config_loads():
    from training.config import load_config

    assert load_config(Config, "training/configs/grpo.yaml").kl_beta == 0.01
