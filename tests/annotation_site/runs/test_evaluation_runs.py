"""A policy evaluation launched from the dashboard: it runs like every recipe, registers no
checkpoint, and its page shows the win-rate tables and the Fig. 20 plot."""
import pytest
from rest_framework.test import APIClient

from annotation_site.generation.models import Checkpoint
from annotation_site.runs import services
from annotation_site.runs.configs import ConfigInvalid
from annotation_site.runs.models import Recipe, RunStatus
from annotation_site.runs.tasks import run_training
from tests.annotation_site.runs.conftest import TINY_EVALUATION

def launch_evaluation(researcher, checkpoints, batch, **kwargs):
    return services.run_launch(
        recipe=Recipe.EVALUATE_POLICY, launched_by=researcher, overrides=TINY_EVALUATION,
        base_checkpoint=checkpoints["new"], compare_with=[checkpoints["old"]],
        helpfulness_reward_model=checkpoints["helpfulness"], safety_reward_model=checkpoints["safety"],
        batches=[batch], **kwargs,
    )


@pytest.mark.django_db
def test_an_evaluation_run_shows_its_tables_and_plots_and_registers_no_checkpoint(
    client, researcher, evaluation_checkpoints, exported_batch
):
    run = launch_evaluation(researcher, evaluation_checkpoints, exported_batch, name="is-new-better")

    assert run_training(run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    assert run.checkpoint is None and run.error == ""
    assert run.total_steps == 3 and run.step == 3  # two checkpoints sampled, then scoring
    assert not Checkpoint.objects.filter(run=str(run.pk)).exists()
    client.force_login(researcher)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Is the new checkpoint better?" in html and "Win rate per pair and guideline" in html
    assert "policy-new vs policy-old" in html
    assert f"/runs/{run.pk}/plots/reward_distribution.png" in html and f"/runs/{run.pk}/plots/win_rates.png" in html
    assert "Deploy " not in html
    evaluation = APIClient()
    evaluation.force_authenticate(researcher)
    report = evaluation.get(f"/api/runs/{run.pk}/eval/").json()
    # The exported batch's held-out split, both guidelines, three prompts of each at most.
    assert report["split"] == "test" and set(report["prompts"]) <= {"helpfulness", "safety", "all"}
    assert 0 < report["prompts"]["all"] <= 6
    assert [version["role"] for version in report["versions"]] == ["candidate", "baseline"]


@pytest.mark.django_db
def test_the_launch_form_offers_the_checkpoints_to_compare_with(client, researcher, evaluation_checkpoints, exported_batch):
    client.force_login(researcher)
    page = client.get("/runs/launch/?recipe=evaluate_policy")
    assert "evaluate_policy.yaml" in page.content.decode() and 'name="compare_with"' in page.content.decode()
    posted = client.post("/runs/launch/", {
        "recipe": "evaluate_policy", "base_checkpoint": evaluation_checkpoints["new"].pk,
        "compare_with": [evaluation_checkpoints["old"].pk],
        "helpfulness_reward_model": evaluation_checkpoints["helpfulness"].pk,
        "safety_reward_model": evaluation_checkpoints["safety"].pk, "batches": [exported_batch.pk],
        "overrides": "\n".join(TINY_EVALUATION),
    })
    assert posted.status_code == 302
    run = researcher.training_runs.get()
    assert f"against:\n- {evaluation_checkpoints['old'].path}" in run.config_text
    assert run.base_checkpoint == evaluation_checkpoints["new"]


@pytest.mark.django_db
def test_comparing_is_for_evaluations_and_chat_checkpoints_only(researcher, evaluation_checkpoints, exported_batch):
    with pytest.raises(ConfigInvalid, match="Only evaluate_policy and evaluate_reward_model runs compare checkpoints"):
        services.run_launch(recipe=Recipe.SFT, launched_by=researcher, compare_with=[evaluation_checkpoints["old"]])
    with pytest.raises(ConfigInvalid, match="is a reward model; compare chat checkpoints"):
        services.run_launch(recipe=Recipe.EVALUATE_POLICY, launched_by=researcher,
                            base_checkpoint=evaluation_checkpoints["new"],
                            compare_with=[evaluation_checkpoints["safety"]])


@pytest.mark.django_db
def test_an_evaluation_without_checkpoints_to_compare_with_is_a_form_error(client, researcher, evaluation_checkpoints,
                                                                         exported_batch):
    client.force_login(researcher)
    posted = client.post("/runs/launch/", {
        "recipe": "evaluate_policy", "base_checkpoint": evaluation_checkpoints["new"].pk,
        "helpfulness_reward_model": evaluation_checkpoints["helpfulness"].pk,
        "safety_reward_model": evaluation_checkpoints["safety"].pk, "batches": [exported_batch.pk],
    })
    assert posted.status_code == 400
    assert "against" in posted.content.decode()  # no checkpoint to compare with: a form error naming the key


@pytest.mark.django_db
def test_a_vllm_deployment_can_be_the_judge(researcher, evaluation_checkpoints, exported_batch):
    from annotation_site.generation.models import Deployment

    judge = Deployment.objects.create(checkpoint=evaluation_checkpoints["old"], engine="vllm",
                                      endpoint_url="http://127.0.0.1:8200/v1", served_model_name="big-chat")
    run = launch_evaluation(researcher, evaluation_checkpoints, exported_batch, judge=judge)
    assert "judge_url: http://127.0.0.1:8200/v1" in run.config_text and "judge_model: big-chat" in run.config_text
    local = Deployment.objects.create(checkpoint=evaluation_checkpoints["old"], engine="local")
    with pytest.raises(ConfigInvalid, match="a judge is asked over HTTP"):
        launch_evaluation(researcher, evaluation_checkpoints, exported_batch, judge=local)
    with pytest.raises(ConfigInvalid, match="Only evaluate_policy runs ask a judge"):
        services.run_launch(recipe=Recipe.SFT, launched_by=researcher, judge=judge)
