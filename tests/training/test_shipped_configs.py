"""Every shipped run config loads into its recipe's Config, and every accelerate config into accelerate's."""
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from training import reward_model, sft
from training.config import load_config
from training.data import parse_sources

# The reward-model and SFT configs; the RLHF recipes' configs live beside them and are tested with those.
CONFIGS = sorted(path for path in Path("training/configs").glob("*.yaml") if path.stem.startswith(("reward_model", "sft")))
ACCELERATE = sorted(Path("training/accelerate").glob("*.yaml"))


def test_the_expected_configs_ship():
    assert {path.stem for path in CONFIGS} >= {
        "reward_model_helpfulness", "reward_model_safety", "sft", "reward_model_smollm2_cpu", "sft_smollm2_cpu",
    }
    assert {path.stem for path in ACCELERATE} == {"one_gpu", "ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_run_config_loads_and_its_header_shows_the_launch_command(path):
    recipe = reward_model if path.stem.startswith("reward_model") else sft
    config = load_config(recipe.Config, path)
    parse_sources(config.data)
    assert f"-m training.{recipe.__name__.split('.')[-1]}" in path.read_text()
    assert f"--config {path.as_posix()}" in path.read_text()


def test_paper_scale_configs_keep_the_paper_defaults():
    for name in ("reward_model_helpfulness", "reward_model_safety"):
        config = load_config(reward_model.Config, Path(f"training/configs/{name}.yaml"))
        defaults = reward_model.Config(model="m", data=["d"], out="o")
        for key in ("epochs", "learning_rate", "min_lr_ratio", "warmup_ratio", "warmup_min_steps", "batch_size"):
            assert getattr(config, key) == getattr(defaults, key), (name, key)
    config = load_config(sft.Config, Path("training/configs/sft.yaml"))
    assert (config.epochs, config.learning_rate, config.weight_decay, config.batch_size, config.max_length) == (2, 2e-5, 0.1, 64, 4096)


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda path: path.stem)
def test_accelerate_config_is_valid(path):
    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16"
