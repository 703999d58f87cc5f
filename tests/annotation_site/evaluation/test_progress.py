"""The progress figures (Fig. 6, 20, 11 layouts) from the runs' own result files."""
import json

import pytest

from annotation_site.accounts.services import user_create
from annotation_site.batches.models import Batch, BatchState
from annotation_site.evaluation import progress
from annotation_site.generation.models import Checkpoint, CheckpointKind
from annotation_site.runs.models import Recipe, RunStatus, TrainingRun


def finished_run(tmp_path, recipe, eval_json, *, name="", base=None, batches=(), plots=()):
    run = TrainingRun.objects.create(name=name, recipe=recipe, config_text="{}", status=RunStatus.SUCCEEDED, base_checkpoint=base)
    folder = tmp_path / "runs" / str(run.pk) / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(json.dumps(eval_json))
    for plot in plots:
        (folder / plot).write_bytes(b"\x89PNG\r\n\x1a\n")
    run.output_dir = str(folder.parent)
    run.save()
    run.batches.set(batches)
    return run


def split(accuracy, pairs):
    return {"accuracy": accuracy, "pairs": pairs}


def pair(a, b, combined, judge=None):
    row = {"a": a, "b": b, "guideline": "all", "combined": {"win_rate": combined, "prompts": 10}}
    if judge is not None:
        row["judge"] = {"win_rate": judge}
    return row


@pytest.fixture
def runs(db, tmp_path):
    weeks = [Batch.objects.create(week=f"2026-W{n}", state=BatchState.EXPORTED) for n in (47, 48)]
    base = Checkpoint.objects.create(name="smollm2", path="/ckpt/base", kind=CheckpointKind.BASE)
    finished_run(tmp_path, Recipe.REWARD_MODEL, {"splits": {"2026-W47/helpfulness": split(0.6, 10)}}, base=base, batches=weeks[:1])
    finished_run(tmp_path, Recipe.REWARD_MODEL, {"splits": {
        "2026-W47/helpfulness": split(0.7, 10), "2026-W48/helpfulness": split(0.8, 30), "2026-W48/safety": split(0.9, 5)}},
        base=base, batches=weeks)
    versions = lambda *labels: [{"label": l, "path": f"/ckpt/{l}", "role": "candidate" if i == 0 else "baseline"}
                                for i, l in enumerate(labels)]
    first = finished_run(tmp_path, Recipe.EVALUATE_POLICY, {"versions": versions("ppo-v1", "sft"),
                                                            "pairs": [pair("ppo-v1", "sft", 0.6, 0.55)]})
    latest = finished_run(tmp_path, Recipe.EVALUATE_POLICY, {"versions": versions("ppo-v2", "ppo-v1", "sft"), "pairs": [
        pair("ppo-v2", "ppo-v1", 0.58), pair("ppo-v2", "sft", 0.7), pair("ppo-v1", "sft", 0.62)]},
        name="week-49", plots=["reward_distribution.png"])
    return {"first": first, "latest": latest}


def test_reward_model_accuracy_is_drawn_against_the_batches_trained_on(runs):
    points = sorted((p.line, p.batches, round(p.accuracy, 4), p.pairs) for p in progress.reward_model_accuracy_points())
    # The second run: helpfulness over its two splits, weighted by pairs: (0.7 * 10 + 0.8 * 30) / 40.
    assert points == [("smollm2 / helpfulness", 1, 0.6, 10), ("smollm2 / helpfulness", 2, 0.775, 40),
                      ("smollm2 / safety", 2, 0.9, 5)]


def test_win_rates_against_the_reference_are_read_from_either_side_of_a_pair(runs):
    evaluations = progress.evaluation_runs()
    assert progress.default_reference(evaluations) == "/ckpt/sft"
    points = [(p.version, p.run_id, p.reward_model, p.judge) for p in progress.win_rates_against("/ckpt/sft", evaluations)]
    assert points == [("ppo-v1", runs["first"].pk, 0.6, 0.55), ("ppo-v2", runs["latest"].pk, 0.7, None),
                      ("ppo-v1", runs["latest"].pk, 0.62, None)]
    against_v1 = progress.win_rates_against("/ckpt/ppo-v1", evaluations)
    # ppo-v1 was the first of the pairs (ppo-v1, sft): sft's win rate against it is 1 - 0.6.
    assert [(p.version, p.reward_model) for p in against_v1] == [("sft", pytest.approx(0.4)), ("ppo-v2", 0.58),
                                                                 ("sft", pytest.approx(0.38))]


def test_the_progress_page_shows_the_three_figures(runs, client):
    client.force_login(user_create(username="res", role="researcher", password="pw-123456"))
    html = client.get("/progress/").content.decode()
    assert "/progress/reward-model-accuracy.png" in html and "/progress/win-rate.png?reference=/ckpt/sft" in html
    assert f"/runs/{runs['latest'].pk}/plots/reward_distribution.png" in html and "week-49" in html
    for url in ("/progress/reward-model-accuracy.png", "/progress/win-rate.png?reference=/ckpt/ppo-v1"):
        image = client.get(url)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get("/progress/win-rate.png?reference=/ckpt/unknown").status_code == 404
    assert client.get("/progress/nothing.png").status_code == 404


@pytest.mark.django_db
def test_an_empty_platform_says_what_to_do_and_annotators_are_refused(client):
    client.force_login(user_create(username="res", role="researcher", password="pw-123456"))
    html = client.get("/progress/").content.decode()
    assert "No succeeded policy evaluation yet" in html and "No succeeded reward-model run" in html
    client.force_login(user_create(username="ann", role="annotator", password="pw-123456"))
    assert client.get("/progress/").status_code == 403
