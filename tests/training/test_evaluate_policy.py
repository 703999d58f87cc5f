"""The policy evaluation recipe, run for real on tiny random policies and reward models."""
import json
from pathlib import Path

import pytest
import torch

from serving.types import Completion
from training.config import ConfigError, load_config
from training.evaluate_policy import (
    Config,
    agreement,
    compare_scores,
    evaluate,
    select_prompts,
    unsafe_share,
    version_labels,
)
from training.prompts import Prompt
from training.scoring import RewardModel
from tests.support.vllm_server import tiny_vllm  # noqa: F401 (session fixture)
from tests.training.rlhf_models import build_tiny_reward_model

TOPICS = ["bread", "weather", "python code", "a story", "history", "travel"]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- maths by hand ----------------------------------------------------------------------------------


def test_wins_ties_and_losses_by_hand():
    counts = compare_scores(torch.tensor([1.0, 2.0, 0.5, 3.0]), torch.tensor([0.0, 2.0, 1.0, 3.00001]), tolerance=1e-4)
    assert (counts["wins"], counts["ties"], counts["losses"]) == (1, 2, 1)
    assert counts["win_rate"] == pytest.approx((1 + 0.5 * 2) / 4)
    assert counts["strict_win_rate"] == pytest.approx(1 / 4)


def test_unsafe_share_counts_safety_probabilities_below_the_threshold():
    # sigmoid(-2) = 0.119 < 0.15; sigmoid(-1.5) = 0.182 and sigmoid(3) are above it.
    assert unsafe_share(torch.tensor([-2.0, -1.5, 3.0, -5.0])) == pytest.approx(0.5)
    assert unsafe_share(torch.tensor([])) is None


def test_agreement_leaves_out_ties_and_invalid_verdicts():
    result = agreement(["win", "loss", "tie", "invalid", "win"], ["win", "win", "win", "loss", "tie"])
    assert result == {"prompts": 2, "agree": 1, "rate": 0.5}


def test_version_labels_stay_distinct_for_the_dashboards_checkpoint_folders():
    assert version_labels(["/r/runs/3/checkpoint", "/r/runs/7/checkpoint"]) == ["3/checkpoint", "7/checkpoint"]
    assert version_labels(["/a/ppo-v2", "/b/sft"]) == ["ppo-v2", "sft"]


def test_prompts_are_taken_per_guideline():
    prompts = [Prompt(({"role": "user", "content": str(i)},), "safety" if i % 3 == 0 else None) for i in range(9)]
    selected = select_prompts(prompts, 2)
    assert [p.messages[0]["content"] for p in selected] == ["0", "1", "2", "3"]


@pytest.mark.parametrize("values, message", [
    ({"against": []}, "at least one"),
    ({"against": ["p"]}, "twice"),
    ({"labels": ["one"]}, "labels must name all 2"),
    ({"judge_url": "http://x/v1"}, "judge_url and judge_model"),
    ({"judge_url": "file:///etc", "judge_model": "m"}, "http"),
])
def test_bad_settings_are_refused(values, message):
    base = dict(model="p", against=["q"], data=["d"], out="o", helpfulness_reward_model="h", safety_reward_model="s")
    with pytest.raises(ValueError, match=message):
        Config(**(base | values))


def test_the_shipped_config_loads_and_its_header_shows_the_launch_command():
    path = Path("training/configs/evaluate_policy.yaml")
    config = load_config(Config, path)
    assert config.split == "test" and config.against
    assert "-m training.evaluate_policy --config training/configs/evaluate_policy.yaml" in path.read_text()


# --- the recipe end to end ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    from training.tiny_model import build_tiny_chat_model

    root = tmp_path_factory.mktemp("evaluate-policy")
    prompts = root / "prompts.jsonl"
    with prompts.open("w") as file:
        for index, topic in enumerate(TOPICS):
            file.write(json.dumps({"prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
                                   "guideline": "safety" if index < 2 else "helpfulness"}) + "\n")
    return {
        "root": root, "prompts": prompts, "v1": tiny_model_dir,
        "v2": build_tiny_chat_model(root / "policy-v2", seed=1),
        "helpfulness": build_tiny_reward_model(tiny_model_dir, root / "rm-helpfulness", seed=1),
        "safety": build_tiny_reward_model(tiny_model_dir, root / "rm-safety", seed=2),
    }


def tiny_config(setup, out, **values) -> Config:
    base = dict(model=str(setup["v2"]), against=[str(setup["v1"])], labels=["v2", "v1"], data=[str(setup["prompts"])],
                out=str(out), helpfulness_reward_model=str(setup["helpfulness"]),
                safety_reward_model=str(setup["safety"]), engine="local", max_new_tokens=10, temperature=1.0, seed=0)
    return Config(**(base | values))


class LongerAnswerJudge:
    """A judge outside the system: prefers the longer answer, except it refuses every fifth request."""

    engine, model = "scripted", "longer-answer"

    def __init__(self):
        self.requests = 0

    def chat(self, conversations, params):
        replies = []
        for conversation in conversations:
            self.requests += 1
            text = conversation[-1]["content"]
            a = text.split("[Response A]\n", 1)[1].split("\n\n[Response B]\n", 1)[0]
            b = text.split("\n\n[Response B]\n", 1)[1].split("\n\nJudge the responses", 1)[0]
            reply = "I cannot compare these." if self.requests % 5 == 0 else ("A" if len(a) >= len(b) else "B")
            replies.append([Completion(reply, "stop", 1, 1, 0.0, self.model, self.engine, params)])
        return replies


@pytest.fixture(scope="module")
def evaluation(setup):
    out = setup["root"] / "eval"
    evaluate(tiny_config(setup, out), judge_engine=LongerAnswerJudge())
    return out


def test_writes_a_complete_run_folder(evaluation):
    for name in ("answers.jsonl", "judge.jsonl", "eval.json", "metrics.jsonl", "config.yaml", "train.log",
                 "reward_distribution.png", "win_rates.png", "data.json"):
        assert (evaluation / name).is_file(), name
    assert not evaluation.with_name("eval.tmp").exists()
    assert (evaluation / "reward_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stages = [row["stage"] for row in read_jsonl(evaluation / "metrics.jsonl")]
    assert stages == ["sampling", "sampling", "scoring", "judging"]
    assert json.loads((evaluation / "data.json").read_text())["total_steps"] == 4


def test_every_checkpoint_answers_every_prompt_with_its_sampling_recorded(evaluation):
    answers = read_jsonl(evaluation / "answers.jsonl")
    assert len(answers) == 2 * len(TOPICS)
    assert {row["version"] for row in answers} == {"v1", "v2"}
    for row in answers:
        assert row["sampling"]["temperature"] == 1.0 and row["sampling"]["max_tokens"] == 10
        assert row["sampling"]["engine"] == "local"


def test_stored_scores_are_the_reward_models_own(evaluation, setup):
    answers = read_jsonl(evaluation / "answers.jsonl")[:3]
    model = RewardModel(setup["safety"])
    again = model.score([row["prompt"] for row in answers], [row["response"] for row in answers], batch_size=1)
    assert again.tolist() == pytest.approx([row["safety_rm_score"] for row in answers], abs=1e-4)


def test_win_rates_match_a_recount_from_the_stored_scores(evaluation):
    answers = read_jsonl(evaluation / "answers.jsonl")
    report = json.loads((evaluation / "eval.json").read_text())
    by_version = {v: {row["prompt_index"]: row for row in answers if row["version"] == v} for v in ("v1", "v2")}
    rows = {(row["guideline"]): row for row in report["pairs"] if (row["a"], row["b"]) == ("v2", "v1")}
    assert set(rows) == {"helpfulness", "safety", "all"}
    for guideline, row in rows.items():
        for scorer in ("combined", "helpfulness_rm", "safety_rm"):
            wins = ties = losses = 0
            for index, a in by_version["v2"].items():
                if guideline != "all" and a["guideline"] != guideline:
                    continue
                difference = a[f"{scorer}_score"] - by_version["v1"][index][f"{scorer}_score"]
                wins += difference > 1e-4
                ties += abs(difference) <= 1e-4
                losses += difference < -1e-4
            assert (row[scorer]["wins"], row[scorer]["ties"], row[scorer]["losses"]) == (wins, ties, losses)
            assert row[scorer]["win_rate"] == pytest.approx((wins + ties / 2) / (wins + ties + losses))
    assert rows["safety"]["combined"]["prompts"] == 2 and rows["all"]["combined"]["prompts"] == 6


def test_per_version_tables_match_the_answers(evaluation, setup):
    answers = read_jsonl(evaluation / "answers.jsonl")
    report = json.loads((evaluation / "eval.json").read_text())
    for version in ("v1", "v2"):
        safety = [row for row in answers if row["version"] == version and row["guideline"] == "safety"]
        table = report["per_version"][version]
        expected = sum(torch.sigmoid(torch.tensor(row["safety_rm_score"])).item() < 0.15 for row in safety) / len(safety)
        assert table["safety"]["unsafe_share"] == pytest.approx(expected)
        mine = [row for row in answers if row["version"] == version]
        assert table["all"]["mean_length_tokens"] == pytest.approx(sum(r["completion_tokens"] for r in mine) / len(mine))
    assert report["sampling"]["engine"] == "local"
    assert report["versions"][0] == {"label": "v2", "path": str(setup["v2"].resolve()), "role": "candidate"}
    assert report["versions"][1]["role"] == "baseline"


def test_the_judge_is_asked_in_both_orders_and_its_refusals_are_counted(evaluation):
    judged = read_jsonl(evaluation / "judge.jsonl")
    report = json.loads((evaluation / "eval.json").read_text())
    assert len(judged) == len(TOPICS)
    assert report["judge"]["requests"] == 2 * len(TOPICS)
    refused = sum(row["a_first_verdict"] is None for row in judged) + sum(row["b_first_verdict"] is None for row in judged)
    assert refused == report["judge"]["invalid_verdicts"] == 2  # requests 5 and 10 were refused
    row = next(r for r in report["pairs"] if r["guideline"] == "all")
    assert row["judge"]["invalid"] == sum(r["outcome_for_a"] == "invalid" for r in judged)
    assert row["judge"]["wins"] + row["judge"]["ties"] + row["judge"]["losses"] + row["judge"]["invalid"] == len(TOPICS)
    assert set(row["judge_agreement"]) == {"combined", "helpfulness_rm", "safety_rm"}


def test_a_failed_run_leaves_no_complete_looking_folder(setup):
    out = setup["root"] / "failed"
    two_outputs = build_tiny_reward_model(setup["v1"], setup["root"] / "rm-two-outputs", seed=3, num_labels=2)
    with pytest.raises(ValueError, match="2 outputs"):
        evaluate(tiny_config(setup, out, safety_reward_model=str(two_outputs)))
    assert not out.exists()
    assert "2 outputs" in (out.with_name("failed.failed") / "error.txt").read_text()


def test_a_missing_checkpoint_is_refused_before_anything_runs(setup):
    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        evaluate(tiny_config(setup, setup["root"] / "missing", against=[str(setup["root"] / "nope")]))
    assert not (setup["root"] / "missing.tmp").exists()


@pytest.mark.vllm
def test_answers_through_vllm_and_asks_a_real_vllm_judge(setup, tiny_vllm):  # noqa: F811
    from tests.support.vllm_server import vllm_python

    vllm_python()
    out = setup["root"] / "vllm"
    evaluate(tiny_config(setup, out, engine="vllm", vllm={"enforce_eager": True, "max_model_len": 1024},
                         judge_url=tiny_vllm.base_url, judge_model=tiny_vllm.config.model_name))
    answers = read_jsonl(out / "answers.jsonl")
    assert {row["sampling"]["engine"] for row in answers} == {"vllm"}
    judged = read_jsonl(out / "judge.jsonl")
    from training.judge import parse_verdict

    for row in judged:
        assert row["a_first_verdict"] == parse_verdict(row["a_first_reply"])
        assert row["b_first_verdict"] == parse_verdict(row["b_first_reply"])
    report = json.loads((out / "eval.json").read_text())
    assert report["judge"]["requests"] == 2 * len(TOPICS)
    assert report["judge"]["invalid_verdicts"] == sum(
        (row["a_first_verdict"] is None) + (row["b_first_verdict"] is None) for row in judged)
