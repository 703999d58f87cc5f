"""The checkpoint page: where a checkpoint came from and what came of it."""

import pytest

from annotation_site.accounts.services import user_create
from annotation_site.batches.models import Batch, BatchState
from annotation_site.generation.models import Checkpoint, CheckpointKind, Deployment
from annotation_site.runs import services
from annotation_site.runs.models import Recipe, TrainingRun
from training.synthetic_batch import write_exported_batch
from tests.annotation_site.evaluation.test_leaderboard import vote


@pytest.fixture
def history(db, settings, tmp_path, tiny_model_dir):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.CHECKPOINT_ROOT = tmp_path / "checkpoints"
    write_exported_batch(settings.EXPORT_ROOT / "2026-W48", n_train=8, n_test=4, batch="2026-W48")
    batch = Batch.objects.create(week="2026-W48", state=BatchState.EXPORTED, export_path=str(settings.EXPORT_ROOT / "2026-W48"))
    base = Checkpoint.objects.create(name="base", path=str(tiny_model_dir), kind=CheckpointKind.BASE)
    sft = Checkpoint.objects.create(name="sft-w48", path="/ckpt/sft", kind=CheckpointKind.SFT, parent=base, training_config={
        "model": str(tiny_model_dir), "data": [{"path": str(settings.EXPORT_ROOT / "2026-W48"), "guidelines": ["helpfulness"]},
                                               "/data/anthropic-hh"]})
    rm_h = Checkpoint.objects.create(name="rm-h", path="/ckpt/rm-h", kind=CheckpointKind.REWARD_MODEL)
    ppo = Checkpoint.objects.create(name="ppo-v1", path="/ckpt/ppo", kind=CheckpointKind.PPO, parent=sft, training_config={
        "model": "/ckpt/sft", "data": [], "helpfulness_reward_model": "/ckpt/rm-h", "safety_reward_model": "/ckpt/rm-s"})
    run = TrainingRun.objects.create(recipe=Recipe.PPO, config_text="model: /ckpt/sft\n", checkpoint=ppo, base_checkpoint=sft)
    evaluation = TrainingRun.objects.create(
        name="is-ppo-better", recipe=Recipe.EVALUATE_POLICY,
        config_text="model: /ckpt/ppo\nagainst:\n- /ckpt/sft\nout: x\n")
    TrainingRun.objects.create(name="other-eval", recipe=Recipe.EVALUATE_POLICY,
                               config_text="model: /ckpt/ppo-v10\nagainst:\n- /ckpt/sft\n")
    Deployment.objects.create(checkpoint=ppo, engine="local")
    for _ in range(3):
        vote(ppo, sft)
    vote(sft, ppo)
    return {"batch": batch, "base": base, "sft": sft, "ppo": ppo, "rm_h": rm_h, "run": run, "evaluation": evaluation}


def test_the_lineage_names_parents_run_data_reward_models_evaluations_and_counts(history):
    from annotation_site.evaluation.lineage import checkpoint_lineage

    lineage = checkpoint_lineage(checkpoint_id=history["ppo"].pk)
    assert lineage.parents == [history["sft"], history["base"]]
    assert lineage.run == history["run"] and lineage.recipe == "ppo"
    assert lineage.reward_models == {"helpfulness": history["rm_h"], "safety": "/ckpt/rm-s"}
    assert lineage.evaluations == [history["evaluation"]]  # not the run of /ckpt/ppo-v10
    assert (lineage.samples, lineage.comparisons) == (4, 4)
    assert lineage.leaderboard_rank == 1 and lineage.leaderboard_size == 2
    assert [d.engine for d in lineage.deployments] == ["local"]

    sft = checkpoint_lineage(checkpoint_id=history["sft"].pk)
    assert [(s.batch, s.guidelines) for s in sft.sources] == [(history["batch"], ["helpfulness"]), (None, None)]
    assert {run.name for run in sft.evaluations} == {"is-ppo-better", "other-eval"}  # compared with, in both
    assert sft.children == [history["ppo"]]


def test_the_checkpoint_page_shows_the_lineage(history, client):
    client.force_login(user_create(username="res", role="researcher", password="pw-123456"))
    html = client.get(f"/checkpoints/{history['ppo'].pk}/").content.decode()
    assert f'href="/checkpoints/{history["sft"].pk}/">sft-w48</a>' in html and ">base</a>" in html
    assert f'href="/runs/{history["run"].pk}/"' in html and "is-ppo-better" in html
    assert "rank 1 of 2" in html and "4 generated, in 4 comparisons" in html
    sft_page = client.get(f"/checkpoints/{history['sft'].pk}/").content.decode()
    assert "batch 2026-W48 (helpfulness)" in sft_page and "/data/anthropic-hh" in sft_page
    assert client.get("/checkpoints/999999/").status_code == 404


def test_annotators_cannot_open_a_checkpoint_page(history, client):
    client.force_login(user_create(username="ann", role="annotator", password="pw-123456"))
    assert client.get(f"/checkpoints/{history['ppo'].pk}/").status_code == 403


def test_a_run_launched_with_its_configs_own_data_records_the_batches_it_reads(history, settings):
    # A config's own data list comes from a shipped file (the site never takes `data=` as an
    # override); run_launch records what `_batches_read` finds in it when no batch was picked.
    folder = settings.EXPORT_ROOT / "2026-W48"
    assert services._batches_read([{"path": str(folder)}, "/data/elsewhere"]) == [history["batch"]]
