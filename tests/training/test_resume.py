"""Long runs resume: a run stopped after it saved a state continues from that state when it starts
again with the same config, each step once, and ends where an uninterrupted run ends."""
import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, TrainerCallback

from training import evaluate_policy, grpo, ppo, rejection_sampling, reward_model, sft
from training.config import load_config
from training.resume import find_state, resume_folder, save_state
from training.synthetic_batch import write_exported_batch


class WorkerLost(RuntimeError):
    """What the tests raise to stop a run midway, as a dead worker would."""


class StopAfterSave(TrainerCallback):
    """Stops the run right after the Trainer saved its state at `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise WorkerLost(f"stopped after the state of step {self.step} was saved")


def config_of(module, values: dict):
    return load_config(module.Config, None, [f"{key}={json.dumps(value)}" for key, value in values.items()])


def rows(path, key="step"):
    return [row[key] for row in map(json.loads, path.read_text().splitlines()) if "loss" in row or key == "iteration"]


def parameters_close(a, b) -> bool:
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a.parameters(), b.parameters(), strict=True))


# --- the state folder ----------------------------------------------------------------------------


def test_a_state_half_written_when_the_process_died_is_not_resumed(tmp_path):
    config = sft.Config(model="m", data=["d"], out=str(tmp_path / "run"))
    assert find_state(config.out, config) == (None, "")
    save_state(config.out, 2, lambda folder: (folder / "model.pt").write_text("step 2"))
    # A kill during the save of step 4: its folder never got renamed into place.
    (resume_folder(config.out) / "checkpoint-4.tmp").mkdir()
    # A Trainer checkpoint killed before it wrote trainer_state.json, its last file.
    (resume_folder(config.out) / "checkpoint-6").mkdir()

    state, message = find_state(config.out, config)

    assert state.step == 2 and (state.path / "model.pt").read_text() == "step 2"
    assert message.startswith("resumed from step 2")


def test_a_state_of_another_config_is_not_resumed_and_the_run_says_so(tmp_path):
    config = sft.Config(model="m", data=["d"], out=str(tmp_path / "run"))
    find_state(config.out, config)
    save_state(config.out, 2, lambda folder: None)

    # How often states are saved is no reason to start over; the learning rate is.
    assert find_state(config.out, sft.Config(model="m", data=["d"], out=config.out, save_state_every=7))[0].step == 2
    state, message = find_state(config.out, sft.Config(model="m", data=["d"], out=config.out, learning_rate=1.0))

    assert state is None and "belongs to another config; starting over from step 0" in message
    assert not (resume_folder(config.out) / "checkpoint-2").exists()


# --- the trainer recipes -------------------------------------------------------------------------


@pytest.fixture
def demonstrations(tmp_path):
    return write_exported_batch(tmp_path / "w48", n_train=24, n_test=8)


def sft_values(tmp_path, tiny_model_dir, data, out="sft"):
    return {"model": str(tiny_model_dir), "data": [str(data)], "out": str(tmp_path / out), "batch_size": 4,
            "per_device_batch_size": 4, "learning_rate": 3e-3, "bf16": False, "max_steps": 6, "eval_fraction": 0,
            "save_state_every": 2}


def test_an_sft_run_stopped_after_a_save_resumes_there_and_ends_like_an_uninterrupted_one(tmp_path, tiny_model_dir, demonstrations):
    values = sft_values(tmp_path, tiny_model_dir, demonstrations)
    with pytest.raises(WorkerLost):
        sft.train(config_of(sft, values), callbacks=[StopAfterSave(4)])
    assert (tmp_path / "sft.failed").is_dir() and (resume_folder(values["out"]) / "checkpoint-4").is_dir()

    out = sft.train(config_of(sft, values))

    log = (out / "train.log").read_text()
    assert "resumed from step 4" in log
    assert rows(out / "metrics.jsonl") == [1, 2, 3, 4, 5, 6]  # each step once, none lost
    assert not resume_folder(out).exists() and not (tmp_path / "sft.failed").exists()
    uninterrupted = sft.train(config_of(sft, sft_values(tmp_path, tiny_model_dir, demonstrations, out="sft-whole")))
    assert parameters_close(AutoModelForCausalLM.from_pretrained(out), AutoModelForCausalLM.from_pretrained(uninterrupted))
    losses = lambda folder: [row["loss"] for row in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert losses(out) == pytest.approx(losses(uninterrupted), rel=1e-5)


def test_a_reward_model_run_resumes_from_its_saved_step(tmp_path, tiny_model_dir):
    folder = write_exported_batch(tmp_path / "w48", n_train=32, n_test=8)
    values = {"model": str(tiny_model_dir), "data": [str(folder)], "out": str(tmp_path / "rm"), "batch_size": 4,
              "per_device_batch_size": 4, "learning_rate": 3e-3, "warmup_min_steps": 1, "bf16": False,
              "eval_batch_size": 8, "max_steps": 6, "save_state_every": 3}
    with pytest.raises(WorkerLost):
        reward_model.train(config_of(reward_model, values), callbacks=[StopAfterSave(3)])

    out = reward_model.train(config_of(reward_model, values))

    assert "resumed from step 3" in (out / "train.log").read_text()
    assert rows(out / "metrics.jsonl") == [1, 2, 3, 4, 5, 6]
    uninterrupted = reward_model.train(config_of(reward_model, {**values, "out": str(tmp_path / "rm-whole")}))
    assert parameters_close(AutoModelForSequenceClassification.from_pretrained(out),
                            AutoModelForSequenceClassification.from_pretrained(uninterrupted))


def test_a_changed_config_starts_over_from_step_0(tmp_path, tiny_model_dir, demonstrations):
    values = sft_values(tmp_path, tiny_model_dir, demonstrations)
    with pytest.raises(WorkerLost):
        sft.train(config_of(sft, values), callbacks=[StopAfterSave(4)])

    out = sft.train(config_of(sft, {**values, "learning_rate": 1e-3}))

    log = (out / "train.log").read_text()
    assert "belongs to another config; starting over from step 0" in log and "resumed from" not in log
    assert rows(out / "metrics.jsonl") == [1, 2, 3, 4, 5, 6]


# --- the hand-written loops ----------------------------------------------------------------------


def toy_reward(prompts, responses, guidelines):
    """Longer answers are better: a deterministic reward, so runs can be compared."""
    return torch.tensor([float(len(response)) for response in responses])


def stopping_reward(calls: int):
    """The toy reward, until call `calls`, where the run stops as a dead worker would stop it."""
    seen = []

    def reward(prompts, responses, guidelines):
        seen.append(1)
        if len(seen) == calls:
            raise WorkerLost(f"stopped in call {calls} of the reward")
        return toy_reward(prompts, responses, guidelines)

    return reward


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    with path.open("w") as file:
        for index, topic in enumerate(["bread", "weather", "python code", "a story", "history", "travel"]):
            file.write(json.dumps({"prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
                                   "guideline": "safety" if index == 0 else "helpfulness"}) + "\n")
    return path


def test_a_ppo_run_stopped_in_an_iteration_resumes_after_its_last_saved_iteration(tmp_path, tiny_model_dir, prompt_file):
    def config(out):
        return ppo.Config(model=str(tiny_model_dir), data=[str(prompt_file)], out=str(tmp_path / out), iterations=4,
                          batch_size=4, minibatch_size=2, micro_batch_size=2, generation_batch_size=4,
                          forward_batch_size=4, max_new_tokens=6, learning_rate=1e-3, bf16=False, seed=0,
                          save_state_every=2)

    with pytest.raises(WorkerLost):
        ppo.train(config("ppo"), reward_fn=stopping_reward(4))  # iteration 4: after the save of iteration 2
    assert [row["iteration"] for row in map(json.loads, (tmp_path / "ppo.failed" / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]

    out = ppo.train(config("ppo"), reward_fn=toy_reward)

    assert "resumed from step 2" in (out / "train.log").read_text()
    assert rows(out / "metrics.jsonl", "iteration") == [1, 2, 3, 4]
    assert sorted({row["iteration"] for row in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}) == [1, 2, 3, 4]
    assert json.loads((out / "eval.json").read_text())["iterations"] == 4
    whole = ppo.train(config("ppo-whole"), reward_fn=toy_reward)
    assert parameters_close(AutoModelForCausalLM.from_pretrained(out), AutoModelForCausalLM.from_pretrained(whole))
    assert rows(out / "metrics.jsonl", "iteration") == rows(whole / "metrics.jsonl", "iteration")
    reward = lambda folder: [row["reward"] for row in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())]
    assert reward(out) == pytest.approx(reward(whole))


def test_a_rejection_sampling_run_resumes_with_its_pool_after_its_last_finished_iteration(tmp_path, tiny_model_dir, prompt_file):
    def config(out):
        return rejection_sampling.Config(
            model=str(tiny_model_dir), data=[str(prompt_file)], out=str(tmp_path / out), engine="local", iterations=3,
            prompts_per_iteration=2, samples_per_prompt=3, max_new_tokens=8, seed=0,
            sft={"epochs": 1, "batch_size": 2, "per_device_batch_size": 2, "learning_rate": 1e-3, "max_length": 256,
                 "bf16": False, "eval_fraction": 0.0},
        )

    with pytest.raises(WorkerLost):
        rejection_sampling.train(config("rs"), reward_fn=stopping_reward(3))  # in iteration 3, after 2 saved states
    # What a worker killed while iteration 3 fine-tuned leaves: a half-trained SFT folder.
    (tmp_path / "rs.failed" / "iterations" / "3" / "checkpoint.tmp").mkdir(parents=True)

    out = rejection_sampling.train(config("rs"), reward_fn=toy_reward)

    assert "resumed from step 2" in (out / "train.log").read_text()
    assert rows(out / "metrics.jsonl", "iteration") == [1, 2, 3]
    pool = [json.loads(line) for line in (out / "pool.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in pool] == [1, 1, 2, 2, 3, 3]  # the best answers of every iteration, once
    samples = [json.loads(line)["iteration"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples == [1] * 6 + [2] * 6 + [3] * 6
    whole = rejection_sampling.train(config("rs-whole"), reward_fn=toy_reward)
    assert [row["score"] for row in pool] == pytest.approx(
        [json.loads(line)["score"] for line in (whole / "pool.jsonl").read_text().splitlines()])
    assert parameters_close(AutoModelForCausalLM.from_pretrained(out), AutoModelForCausalLM.from_pretrained(whole))


class LostJudge:
    """A judge endpoint whose worker dies on the first request."""

    engine, model = "scripted", "lost"

    def chat(self, conversations, params):
        raise WorkerLost("stopped while the judge was asked")


def test_a_policy_evaluation_resumes_without_sampling_the_checkpoints_it_had_sampled(tmp_path, tiny_model_dir, prompt_file):
    from tests.training.rlhf_models import build_tiny_reward_model
    from training.tiny_model import build_tiny_chat_model

    config = evaluate_policy.Config(
        model=str(build_tiny_chat_model(tmp_path / "v2", seed=1)), against=[str(tiny_model_dir)], labels=["v2", "v1"],
        data=[str(prompt_file)], out=str(tmp_path / "eval"), engine="local", max_new_tokens=8, temperature=1.0, seed=0,
        helpfulness_reward_model=str(build_tiny_reward_model(tiny_model_dir, tmp_path / "rm-h", seed=1)),
        safety_reward_model=str(build_tiny_reward_model(tiny_model_dir, tmp_path / "rm-s", seed=2)),
    )
    with pytest.raises(WorkerLost):
        evaluate_policy.evaluate(config, judge_engine=LostJudge())
    sampled_before = (tmp_path / "eval.failed" / "metrics.jsonl").read_text().splitlines()[:2]

    out = evaluate_policy.evaluate(config)

    assert "resumed from step 2" in (out / "train.log").read_text()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(row["step"], row["stage"]) for row in metrics] == [(1, "sampling"), (2, "sampling"), (3, "scoring")]
    assert (out / "metrics.jsonl").read_text().splitlines()[:2] == sampled_before  # not sampled again
    whole = evaluate_policy.evaluate(dataclasses.replace(config, out=str(tmp_path / "eval-whole")))
    answers = lambda folder: [(row["version"], row["response"]) for row in map(json.loads, (folder / "answers.jsonl").read_text().splitlines())]
    assert answers(out) == answers(whole)


def test_a_grpo_run_resumes_from_its_saved_step(tmp_path, tiny_model_dir, prompt_file):
    def config(out):
        return grpo.Config(model=str(tiny_model_dir), data=[str(prompt_file)], out=str(tmp_path / out), num_generations=4,
                           batch_size=8, per_device_batch_size=8, max_steps=4, max_new_tokens=6, learning_rate=1e-3,
                           bf16=False, seed=0, save_state_every=2)

    with pytest.raises(WorkerLost):
        grpo.train(config("grpo"), reward_fn=toy_reward, callbacks=[StopAfterSave(2)])

    out = grpo.train(config("grpo"), reward_fn=toy_reward)

    assert "resumed from step 2" in (out / "train.log").read_text()
    assert rows(out / "metrics.jsonl") == [1, 2, 3, 4]
    assert not resume_folder(out).exists()
