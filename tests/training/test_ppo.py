"""The PPO recipe, run for real on a tiny random policy with tiny reward models."""
import json

import pytest
import torch
from safetensors.torch import load_file

from training.config import ConfigError, load_config
from training.ppo import Config, main, train
from tests.training.rlhf_models import build_tiny_reward_model
from training.tiny_model import build_tiny_chat_model

TOPICS = ["bread", "weather", "python code", "a story", "history", "travel", "money", "a poem"]


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo")
    prompts = root / "prompts.jsonl"
    with prompts.open("w") as file:
        for index, topic in enumerate(TOPICS):
            file.write(json.dumps({"prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
                                   "guideline": "safety" if index % 4 == 0 else "helpfulness"}) + "\n")
    return {
        "root": root,
        "policy": tiny_model_dir,
        "prompts": prompts,
        "helpfulness": build_tiny_reward_model(tiny_model_dir, root / "rm-helpfulness", seed=1),
        "safety": build_tiny_reward_model(tiny_model_dir, root / "rm-safety", seed=2),
    }


def tiny_config(setup, out, **values) -> Config:
    """Small batches and a high learning rate so a few iterations visibly move a tiny model."""
    base = dict(model=str(setup["policy"]), data=[str(setup["prompts"])], out=str(out), iterations=3, batch_size=8,
                minibatch_size=4, micro_batch_size=2, generation_batch_size=4, forward_batch_size=4,
                max_new_tokens=8, learning_rate=1e-3, bf16=False, seed=0)
    return Config(**(base | values))


def test_ppo_with_both_reward_models_trains_and_writes_a_complete_run(setup):
    out = setup["root"] / "run"
    config = tiny_config(setup, out, helpfulness_reward_model=str(setup["helpfulness"]),
                         safety_reward_model=str(setup["safety"]))
    assert train(config) == out
    assert not out.with_name("run.tmp").exists()

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [1, 2, 3]
    for key in ("reward", "kl", "clip_fraction", "value_loss", "policy_loss", "entropy", "response_length",
                "helpfulness_score", "safety_score", "generation_s", "scoring_s", "training_s"):
        assert all(torch.isfinite(torch.tensor(row[key])) for row in rows), key
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # policy == reference before the first step
    assert rows[-1]["kl"] != pytest.approx(0.0, abs=1e-4)
    assert all(1 <= row["response_length"] <= 8 for row in rows)

    before, after = load_file(setup["policy"] / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[name], after[name]) for name in before)
    for name in ("config.json", "tokenizer.json", "config.yaml", "samples.jsonl", "eval.json", "curves.png", "train.log"):
        assert (out / name).is_file(), name
    # The output is a chat checkpoint like its parent, loadable and with its template.
    from transformers import AutoModelForCausalLM, AutoTokenizer
    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert load_config(Config, out / "config.yaml").kl_beta == 0.01


def test_kl_penalty_enters_the_reward_as_minus_beta_times_kl(setup):
    out = setup["root"] / "kl"
    train(tiny_config(setup, out, kl_beta=0.5), reward_fn=lambda prompts, responses, guidelines: torch.rand(len(responses)))
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["kl"] > 0
    assert last["non_score_reward"] == pytest.approx(-0.5 * last["kl"], rel=1e-4)


@pytest.mark.slow
def test_mean_reward_rises_on_a_toy_reward(setup):
    """Reward = how often the answer contains "the": PPO must learn to say it more (~1 min)."""
    out = setup["root"] / "toy"
    policy = build_tiny_chat_model(setup["root"] / "toy-policy", seed=0)
    config = tiny_config(setup, out, model=str(policy), iterations=24, batch_size=32, minibatch_size=8,
                         micro_batch_size=8, generation_batch_size=32, forward_batch_size=32, max_new_tokens=16,
                         kl_beta=0.0, plot_every=100)
    train(config, reward_fn=lambda prompts, responses, guidelines: torch.tensor([float(r.count("the")) for r in responses]))
    rewards = [json.loads(line)["reward"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > 2 * first + 0.5, rewards


def test_failed_run_leaves_no_complete_looking_folder(setup):
    out = setup["root"] / "broken"
    with pytest.raises(ValueError, match="one finite number per response"):
        train(tiny_config(setup, out), reward_fn=lambda prompts, responses, guidelines: torch.full((len(responses),), float("nan")))
    assert not out.exists()
    assert "one finite number" in (out.with_name("broken.failed") / "error.txt").read_text()


def test_a_reward_is_required(setup):
    with pytest.raises(ConfigError, match="needs a reward"):
        train(tiny_config(setup, setup["root"] / "no-reward"))


@pytest.mark.parametrize("values, message", [
    ({"batch_size": 10, "minibatch_size": 4}, "multiple of minibatch_size"),
    ({"helpfulness_reward_model": "rm"}, "give both"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"batch_size": 1, "minibatch_size": 1}, "whiten_rewards needs batch_size >= 2"),
])
def test_bad_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        Config(model="m", data=["d"], out="o", **values)


def test_command_line_runs_the_recipe_from_a_yaml_file(setup, tmp_path, capsys):
    config_file = tmp_path / "ppo.yaml"
    config_file.write_text(
        f"model: {setup['policy']}\ndata: [{setup['prompts']}]\nout: {tmp_path / 'cli'}\n"
        f"helpfulness_reward_model: {setup['helpfulness']}\nsafety_reward_model: {setup['safety']}\n"
        "iterations: 1\nbatch_size: 4\nminibatch_size: 4\nmax_new_tokens: 4\nbf16: false\n"
    )
    main(["--config", str(config_file), "micro_batch_size=2"])
    assert capsys.readouterr().out.strip().endswith("cli")
    assert load_config(Config, tmp_path / "cli" / "config.yaml").micro_batch_size == 2


@pytest.mark.parametrize("name", ["ppo.yaml", "ppo_smollm2.yaml"])
def test_shipped_configs_load(name):
    config = load_config(Config, f"training/configs/{name}")
    assert config.kl_beta == 0.01 and config.clip_range == 0.2


def test_accelerate_launch_on_two_processes_trains_one_checkpoint(setup, tmp_path):
    """The multi-GPU path (`accelerate launch -m training.ppo`), on two CPU processes with gloo."""
    import subprocess
    import sys

    out = tmp_path / "ppo-ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.ppo",
        f"model={setup['policy']}", f"data=[{setup['prompts']}]", f"out={out}",
        f"helpfulness_reward_model={setup['helpfulness']}", f"safety_reward_model={setup['safety']}",
        "iterations=2", "batch_size=8", "minibatch_size=4", "micro_batch_size=2", "generation_batch_size=4",
        "forward_batch_size=4", "max_new_tokens=6", "learning_rate=1e-3", "bf16=false",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [1, 2]  # one process writes the metrics
    assert all(torch.isfinite(torch.tensor(row["reward"])) for row in rows)
    before, after = load_file(setup["policy"] / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[name], after[name]) for name in before)
    assert not out.with_name("ppo-ddp.tmp").exists()
