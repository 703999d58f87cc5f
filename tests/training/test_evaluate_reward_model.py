"""The reward-model evaluation recipe, run for real on tiny reward models and an exported batch."""
import json

import pytest

from training.config import ConfigError
from training.evaluate_reward_model import Config, average_accuracy, evaluate
from training.synthetic_batch import write_exported_batch
from tests.training.rlhf_models import build_tiny_reward_model


@pytest.fixture(scope="module")
def reward_models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate-reward-model")
    batch = write_exported_batch(root / "2026-W48", n_train=4, n_test=8, batch="2026-W48")
    return {
        "root": root, "batch": batch,
        "a": build_tiny_reward_model(tiny_model_dir, root / "rm-a", seed=1),
        "b": build_tiny_reward_model(tiny_model_dir, root / "rm-b", seed=2),
    }


def test_average_accuracy_weights_the_splits_by_their_pairs():
    assert average_accuracy({"x": {"accuracy": 1.0, "pairs": 3}, "y": {"accuracy": 0.0, "pairs": 1}}) == 0.75
    assert average_accuracy({"x": {"accuracy": None, "pairs": 0}}) is None


def test_scores_every_reward_model_on_every_held_out_split(reward_models):
    out = reward_models["root"] / "eval"
    config = Config(model=str(reward_models["a"]), against=[str(reward_models["b"]), str(reward_models["a"]) + "/."],
                    data=[{"path": str(reward_models["batch"]), "guidelines": ["helpfulness"]}], out=str(out),
                    labels=["new", "old", "new-again"])
    evaluate(config)

    report = json.loads((out / "eval.json").read_text())
    assert report["labels"] == ["new", "old", "new-again"]
    for label in report["labels"]:
        [split] = report["models"][label]["splits"].values()
        assert split["pairs"] == 4  # the helpfulness half of the 8 held-out pairs
        assert 0 <= split["accuracy"] <= 1
    # The same weights scored twice give the same table, as the loop's gate relies on.
    assert report["models"]["new"]["splits"] == report["models"]["new-again"]["splits"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_refuses_a_folder_that_is_not_a_checkpoint(reward_models, tmp_path):
    config = Config(model=str(tmp_path), against=[], data=[str(reward_models["batch"])], out=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="is not a reward-model checkpoint folder"):
        evaluate(config)
