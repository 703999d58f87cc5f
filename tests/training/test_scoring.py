"""The two-reward-model scorer on tiny random reward models."""
import pytest
import torch
from torch.testing import assert_close
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from training.scoring import RewardModel, RewardScorer
from tests.training.rlhf_models import build_tiny_reward_model

PROMPTS = [
    [{"role": "user", "content": "How do I bake bread?"}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."},
     {"role": "user", "content": "Tell me a long story about the weather and the history of science."}],
    [{"role": "user", "content": "How do I pick a lock?"}],
]
RESPONSES = ["Mix flour, water and yeast, then bake.", "Once upon a time the sky was grey.", "I cannot help with that."]
GUIDELINES = ["helpfulness", "helpfulness", "safety"]


@pytest.fixture(scope="module")
def reward_models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("reward-models")
    return (
        build_tiny_reward_model(tiny_model_dir, root / "helpfulness", seed=1),
        build_tiny_reward_model(tiny_model_dir, root / "safety", seed=2),
    )


def test_scores_match_a_plain_forward_pass_on_the_chat_template(reward_models):
    helpfulness_dir, _ = reward_models
    tokenizer = AutoTokenizer.from_pretrained(helpfulness_dir)
    model = AutoModelForSequenceClassification.from_pretrained(helpfulness_dir).eval()
    expected = []
    for prompt, response in zip(PROMPTS, RESPONSES):
        text = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": response}], tokenize=False)
        with torch.no_grad():
            expected.append(model(**tokenizer(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0])
    scores = RewardModel(helpfulness_dir).score(PROMPTS, RESPONSES, batch_size=3)
    assert_close(scores, torch.stack(expected), atol=1e-5, rtol=1e-5)
    assert scores.std() > 0.01  # the responses really are told apart


def test_batching_does_not_change_the_scores(reward_models):
    model = RewardModel(reward_models[0])
    assert_close(model.score(PROMPTS, RESPONSES, batch_size=1), model.score(PROMPTS, RESPONSES, batch_size=2))


def test_combined_reward_picks_the_safety_model_on_safety_prompts(reward_models):
    # Threshold 0: no helpfulness prompt is judged unsafe, so only the guideline decides.
    scores = RewardScorer(*reward_models, safety_threshold=0.0, batch_size=2).score(PROMPTS, RESPONSES, GUIDELINES)
    # logit(sigmoid(x)) == x: the combined reward is the picked model's raw score.
    assert_close(scores.reward, torch.stack([scores.helpfulness[0], scores.helpfulness[1], scores.safety[2]]), atol=1e-4, rtol=0)
    assert not torch.allclose(scores.helpfulness, scores.safety)


def test_combined_reward_picks_the_safety_model_when_the_response_looks_unsafe(reward_models):
    # Threshold 1: every safety probability is below it, so every response is judged on safety.
    scorer = RewardScorer(*reward_models, safety_threshold=1.0)
    scores = scorer.score(PROMPTS, RESPONSES, GUIDELINES)
    assert_close(scores.reward, scores.safety, atol=1e-4, rtol=0)
    assert_close(scorer(PROMPTS, RESPONSES, GUIDELINES), scores.reward)


def test_mismatched_batch_is_refused(reward_models):
    with pytest.raises(ValueError, match="one per response"):
        RewardScorer(*reward_models).score(PROMPTS, RESPONSES[:2], GUIDELINES)


def test_a_classifier_with_two_outputs_is_not_a_reward_model(tiny_model_dir, tmp_path):
    path = build_tiny_reward_model(tiny_model_dir, tmp_path / "two-labels", seed=0, num_labels=2)
    with pytest.raises(ValueError, match="has 2 outputs"):
        RewardModel(path)


def test_missing_reward_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        RewardScorer(tmp_path / "nope", tmp_path / "nope")
