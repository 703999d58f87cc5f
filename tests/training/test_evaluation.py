import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from training.evaluation import format_tables, pair_accuracy, plot_reward_distribution, reward_distribution, score_conversations


def pair(rating, source="annotation", chosen_is_safe=None, rejected_is_safe=None):
    return {"rating": rating, "source": source, "chosen_is_safe": chosen_is_safe, "rejected_is_safe": rejected_is_safe}


# A hand-made held-out set: (row, chosen reward, rejected reward)
HAND_MADE = [
    (pair("significantly_better"), 2.0, -1.0),  # right
    (pair("significantly_better"), 1.0, 0.0),  # right
    (pair("significantly_better"), 0.0, 0.5),  # wrong
    (pair("better", source="anthropic-harmless", chosen_is_safe=True, rejected_is_safe=False), 0.3, 0.2),  # right
    (pair("better", source="anthropic-harmless", chosen_is_safe=True, rejected_is_safe=True), 0.1, 0.4),  # wrong
    (pair("slightly_better"), 0.2, 0.2),  # a tie is not right
    (pair("negligibly_better", chosen_is_safe=False, rejected_is_safe=False), 1.0, -1.0),  # right
    (pair(None, source="anthropic-harmless"), 0.5, 0.1),  # right
    (pair("better"), None, 0.0),  # too long to score
]


def hand_made_accuracy():
    rows, chosen, rejected = zip(*HAND_MADE)
    return pair_accuracy(list(rows), list(chosen), list(rejected))


def test_accuracy_overall_per_rating_level_and_per_source_on_a_hand_made_set():
    result = hand_made_accuracy()

    assert result["pairs"] == 8 and result["skipped_too_long"] == 1
    assert result["accuracy"] == pytest.approx(5 / 8)
    assert list(result["by_rating"]) == ["significantly_better", "better", "slightly_better", "negligibly_better", "unrated"]
    assert result["by_rating"]["significantly_better"] == {"accuracy": pytest.approx(2 / 3), "pairs": 3}
    assert result["by_rating"]["better"] == {"accuracy": 0.5, "pairs": 2}
    assert result["by_rating"]["slightly_better"] == {"accuracy": 0.0, "pairs": 1}
    assert result["by_rating"]["negligibly_better"] == {"accuracy": 1.0, "pairs": 1}
    assert result["by_source"] == {
        "annotation": {"accuracy": pytest.approx(3 / 5), "pairs": 5},
        "anthropic-harmless": {"accuracy": pytest.approx(2 / 3), "pairs": 3},
    }


def test_tables_are_laid_out_like_tables_7_and_8():
    results = {"2026-W48/helpfulness": hand_made_accuracy(), "anthropic-harmless": {**hand_made_accuracy(), "accuracy": 1.0}}

    text = format_tables(results, "rm-helpfulness", eval_max_length=512)

    table7, table8, left_out = text.split("\n\n")
    assert left_out.splitlines() == [
        "Left out of the tables: held-out pairs longer than eval_max_length=512 tokens:",
        "  2026-W48/helpfulness: 1 of 9 pairs",
        "  anthropic-harmless: 1 of 9 pairs",
    ]
    header, _, row = table7.splitlines()[1:]
    assert [cell.strip() for cell in header.split("|")] == ["", "2026-W48/helpfulness", "anthropic-harmless", "Avg"]
    assert [cell.strip() for cell in row.split("|")] == ["rm-helpfulness", "62.5", "100.0", "81.2"]
    lines = table8.splitlines()
    assert [cell.strip() for cell in lines[1].split("|")] == [
        "Test set", "Significantly Better", "Better", "Slightly Better", "Negligibly Better / Unsure", "Avg",
    ]
    assert [cell.strip() for cell in lines[3].split("|")] == ["2026-W48/helpfulness", "66.7", "50.0", "0.0", "100.0", "62.5"]


def test_reward_distribution_separates_safe_and_unsafe_responses(tmp_path):
    rows, chosen, rejected = zip(*HAND_MADE)

    distribution = reward_distribution(list(rows), list(chosen), list(rejected))

    assert sorted(distribution["safe"]["rewards"]) == [0.1, 0.3, 0.4]
    assert sorted(distribution["unsafe"]["rewards"]) == [-1.0, 0.2, 1.0]
    assert distribution["safe"]["mean"] == pytest.approx(0.8 / 3)
    assert distribution["unsafe"]["median"] == pytest.approx(0.2)
    assert plot_reward_distribution(distribution, tmp_path / "hist.png").stat().st_size > 1000


def test_scores_do_not_depend_on_batching_and_overlong_conversations_are_skipped(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    conversations = [
        [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hi."}],
        [{"role": "user", "content": "Please explain the weather to me in a long answer."}, {"role": "assistant", "content": "Sure " * 30}],
        [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "Because of science and history."}],
    ]
    one_by_one = score_conversations(model, tokenizer, conversations, batch_size=1)
    batched = score_conversations(model, tokenizer, conversations, batch_size=3)
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert len(set(one_by_one)) == 3

    limited = score_conversations(model, tokenizer, conversations, max_length=25)
    assert limited[1] is None and limited[0] == pytest.approx(one_by_one[0], abs=1e-5)
