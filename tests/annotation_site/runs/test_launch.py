"""Launching checks the config in the web process (training.config.load_config) and only
enqueues: form and API errors name what was wrong; a good launch stores the resolved config."""
import pytest
import yaml
from rest_framework.test import APIClient

from annotation_site.batches.models import Batch, BatchState
from annotation_site.generation.models import Checkpoint
from annotation_site.runs.configs import ConfigInvalid, shipped_configs, stored_run_problems
from annotation_site.runs.models import RunStatus, TrainingRun
from tests.annotation_site.runs.conftest import TINY_SFT, launch

pytestmark = pytest.mark.django_db


def post_launch(client, researcher, **data):
    client.force_login(researcher)
    return client.post("/runs/launch/", {"recipe": "sft", **data})


def test_every_shipped_config_is_listed_under_the_recipe_its_launch_command_runs(researcher):
    configs = {config.name: config.recipe for config in shipped_configs()}
    assert configs["sft_smollm2_cpu.yaml"] == "sft"
    assert configs["reward_model_helpfulness.yaml"] == configs["reward_model_smollm2_cpu.yaml"] == "reward_model"
    assert configs["ppo.yaml"] == "ppo" and configs["rejection_sampling.yaml"] == "rejection_sampling"
    assert configs["grpo.yaml"] == "grpo"
    api = APIClient()
    api.force_authenticate(researcher)
    listed = api.get("/api/runs/configs/?recipe=ppo").json()
    assert {config["name"] for config in listed} == {"ppo.yaml", "ppo_smollm2.yaml"}
    assert api.get("/api/runs/configs/?recipe=dpo").status_code == 400


@pytest.mark.parametrize(
    "overrides, message",
    [
        ("learning_rat=2e-5", "learning_rat: unknown key for the sft recipe"),
        ("epochs=many", "epochs must be float, got 'many'"),
        ("max_steps", 'is not of the form key=value'),
        ("out=/tmp/elsewhere", "Do not set out="),
        ("data=[{path: x, guidelines: [kindness]}]", "data cannot be set from the site"),
    ],
)
def test_a_config_that_does_not_load_is_a_form_error_on_the_overrides(client, researcher, overrides, message):
    response = post_launch(client, researcher, config_name="sft_smollm2_cpu.yaml", overrides=overrides)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors["overrides"])
    assert not TrainingRun.objects.exists()


def test_a_config_of_another_recipe_is_refused(client, researcher):
    response = post_launch(client, researcher, config_name="ppo.yaml")
    assert "ppo.yaml is a config of the ppo recipe, not of sft" in " ".join(response.context["form"].errors["config_name"])


def test_checkpoints_and_batches_must_fit_the_recipe(client, researcher, base_checkpoint, settings):
    reward_model = Checkpoint.objects.create(name="rm", path="/ckpt/rm", kind="reward_model")
    as_base = post_launch(client, researcher, base_checkpoint=reward_model.pk, overrides="data=[x]")
    assert "is not one of the available choices" in str(as_base.context["form"].errors["base_checkpoint"])
    with_rm = post_launch(client, researcher, base_checkpoint=base_checkpoint.pk, helpfulness_reward_model=reward_model.pk, overrides="data=[x]")
    assert "Only rejection_sampling, ppo, grpo and evaluate_policy runs use reward models" in str(with_rm.context["form"].errors["helpfulness_reward_model"])
    closed = Batch.objects.create(week="2026-W47", state=BatchState.CLOSED)
    unexported = post_launch(client, researcher, base_checkpoint=base_checkpoint.pk, batches=[closed.pk])
    assert "is not one of the available choices" in str(unexported.context["form"].errors["batches"])
    api = APIClient()
    api.force_authenticate(researcher)
    refused = api.post("/api/runs/", {"recipe": "sft", "batches": ["2026-W47"], "base_checkpoint": base_checkpoint.pk}, format="json")
    assert refused.status_code == 400 and "Batch 2026-W47 has no finished export" in refused.json()["message"]
    assert refused.json()["field"] == "batches"
    assert not TrainingRun.objects.exists()


def test_a_launch_stores_the_resolved_config_and_enqueues_only_after_commit(
    client, researcher, base_checkpoint, exported_batch, settings, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_launch(
            client, researcher, config_name="sft_smollm2_cpu.yaml", name="sft-w48", base_checkpoint=base_checkpoint.pk,
            batches=[exported_batch.pk], guidelines=["helpfulness"], overrides="\n".join(["# tiny", *TINY_SFT]),
        )
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert enqueued == [run.pk] and run.enqueued_at is not None
    assert run.status == RunStatus.QUEUED and run.launched_by == researcher and run.base_checkpoint == base_checkpoint
    config = yaml.safe_load(run.config_text)
    assert config["model"] == base_checkpoint.path  # the chosen checkpoint beats the shipped config's model
    assert config["data"] == [{"path": str((settings.EXPORT_ROOT / "2026-W48").resolve()), "guidelines": ["helpfulness"]}]
    assert config["out"] == str(settings.CHECKPOINT_ROOT.resolve() / "runs" / str(run.pk) / "checkpoint")
    assert config["learning_rate"] == 3e-3 and config["max_length"] == 1024  # override, then the shipped file
    assert config["weight_decay"] == 0.1 and config["seed"] == 42
    assert run.overrides == TINY_SFT and run.config_name == "sft_smollm2_cpu.yaml"
    assert list(run.batches.all()) == [exported_batch]

    again = post_launch(client, researcher, name="sft-w48", base_checkpoint=base_checkpoint.pk, batches=[exported_batch.pk])
    assert "is taken" in " ".join(again.context["form"].errors["name"])


def test_a_broker_outage_at_launch_leaves_the_run_queued_for_the_watchdog(
    researcher, base_checkpoint, exported_batch, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation_site.runs import services
    from annotation_site.runs.tasks import run_training

    def broker_down(run_id):
        raise ConnectionRefusedError("redis is down")

    monkeypatch.setattr(run_training, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_launch(recipe="sft", launched_by=researcher, base_checkpoint=base_checkpoint, batches=[exported_batch])
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.enqueued_at is None

    sent = []
    monkeypatch.setattr(run_training, "delay", lambda run_id: sent.append(run_id))
    assert services.runs_recover() == []  # too recent: its enqueue may still be on its way
    TrainingRun.objects.filter(pk=run.pk).update(created_at=run.created_at.replace(year=2025))
    assert services.runs_recover() == [run.pk] and sent == [run.pk]


def test_a_ppo_launch_takes_its_reward_models_from_the_registry_and_the_recipes_own_checks(
    researcher, base_checkpoint, exported_batch, enqueued, tiny_model_dir
):
    # Both reward models are registered at a real checkpoint folder (the launch checks it exists).
    helpful = Checkpoint.objects.create(name="rm-helpful", path=str(tiny_model_dir), kind="reward_model")
    safe = Checkpoint.objects.create(name="rm-safe", path=str(tiny_model_dir), kind="reward_model")
    api = APIClient()
    api.force_authenticate(researcher)
    launch = {
        "recipe": "ppo", "config_name": "ppo_smollm2.yaml", "base_checkpoint": base_checkpoint.pk,
        "helpfulness_reward_model": helpful.pk, "safety_reward_model": safe.pk, "batches": ["2026-W48"],
    }
    refused = api.post("/api/runs/", {**launch, "overrides": ["iterations=0"]}, format="json")
    assert refused.status_code == 400 and "iterations must be at least 1, got 0" in refused.json()["message"]

    created = api.post("/api/runs/", launch, format="json")
    assert created.status_code == 201, created.json()
    config = yaml.safe_load(created.json()["config_text"])
    assert (config["helpfulness_reward_model"], config["safety_reward_model"]) == (str(tiny_model_dir.resolve()), str(tiny_model_dir.resolve()))
    assert config["iterations"] == 20 and config["kl_beta"] == 0.01  # the shipped file, then the paper's default
    assert created.json()["batches"] == ["2026-W48"] and created.json()["status"] == "queued"


def test_a_missing_model_is_an_error_on_the_checkpoint_field_before_anything_is_stored(
    client, researcher, exported_batch, settings, tmp_path
):
    # The shipped CPU config reads var/models/smollm2-135m-instruct, relative to where the worker
    # runs recipes; here nothing was prepared there.
    settings.BASE_DIR = tmp_path / "site"
    from_config = post_launch(client, researcher, config_name="sft_smollm2_cpu.yaml", batches=[exported_batch.pk])
    errors = from_config.context["form"].errors
    assert "does not exist where the run reads it" in " ".join(errors["base_checkpoint"]) and "overrides" not in errors
    assert not TrainingRun.objects.exists()


def config_with(**values):
    from training import sft

    return sft.Config(**{"model": "m", "data": [], "out": "runs/x", **values})


def test_a_hub_id_that_is_neither_cached_nor_on_the_hub_is_refused_on_the_checkpoint_field():
    # A shipped config may name a hub id; no such model exists in the local cache, and the hub (when
    # this machine reaches it) says 404.
    from annotation_site.runs.configs import ConfigInvalid, check_paths_exist

    with pytest.raises(ConfigInvalid, match="is not a model on the Hugging Face hub") as refused:
        check_paths_exist(config_with(model="some-org/no-such-model"), overrides=[])
    assert refused.value.field == "base_checkpoint"


def test_every_data_path_must_exist(tiny_model_dir, exported_batch):
    from annotation_site.runs.configs import ConfigInvalid, check_paths_exist

    config = config_with(model=str(tiny_model_dir), data=[exported_batch.export_path, "exports/missing"])
    with pytest.raises(ConfigInvalid, match='data: "exports/missing" does not exist where the run reads it') as refused:
        check_paths_exist(config, overrides=[])
    assert refused.value.field == "batches"


def test_a_reward_model_whose_folder_is_gone_is_refused(
    researcher, base_checkpoint, exported_batch, tiny_model_dir, tmp_path
):
    from annotation_site.runs import services
    from annotation_site.errors import ApplicationError

    (tmp_path / "rm-gone").mkdir()
    gone = Checkpoint.objects.create(name="rm-gone", path=str(tmp_path / "rm-gone"), kind="reward_model")
    (tmp_path / "rm-gone").rmdir()  # registered, then deleted on disk
    safe = Checkpoint.objects.create(name="rm-safe", path=str(tiny_model_dir), kind="reward_model")
    with pytest.raises(ApplicationError, match="Not an available checkpoint"):
        services.run_launch(
            recipe="ppo", config_name="ppo_smollm2.yaml", launched_by=researcher, base_checkpoint=base_checkpoint,
            helpfulness_reward_model=gone, safety_reward_model=safe, batches=[exported_batch],
        )


# --- What the weekly loop passes (docs/loop.md) -----------------------------------------------------


@pytest.mark.django_db
def test_a_platform_data_list_must_name_exported_folders_and_replaces_the_batches(researcher, base_checkpoint,
                                                                                   exported_batch, settings, tmp_path):
    from annotation_site.batches.services import batch_folder

    folder = str(batch_folder(exported_batch).resolve())
    run = launch(researcher, recipe="reward_model", base_checkpoint=base_checkpoint, data=[
        {"path": folder, "guidelines": ["helpfulness"]},
        {"path": folder, "name": "w48-safety", "guidelines": ["safety"], "share": 0.25, "evaluate": False}])
    assert list(run.batches.all()) == [exported_batch] and "share: 0.25" in run.config_text
    assert stored_run_problems(run) == []
    with pytest.raises(ConfigInvalid, match="is not an exported folder under EXPORT_ROOT"):
        launch(researcher, recipe="reward_model", base_checkpoint=base_checkpoint, data=[{"path": str(tmp_path)}])
    with pytest.raises(ConfigInvalid, match="is not an exported folder under EXPORT_ROOT"):
        launch(researcher, recipe="reward_model", base_checkpoint=base_checkpoint, data=[{"path": folder, "weight": "2"}])
    with pytest.raises(ConfigInvalid, match="Give batches or a data list, not both"):
        launch(researcher, recipe="reward_model", batches=[exported_batch], data=[{"path": folder}])


@pytest.mark.django_db
def test_only_rejection_sampling_pools_and_a_reward_model_may_continue_a_reward_model(researcher, base_checkpoint,
                                                                                     exported_batch, tmp_path):
    from annotation_site.generation.models import Checkpoint, CheckpointKind

    with pytest.raises(ConfigInvalid, match="Only rejection sampling pools earlier answers"):
        launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch], previous_pools=[object()])
    reward_model = Checkpoint.objects.create(name="rm-v1", path=base_checkpoint.path, kind=CheckpointKind.REWARD_MODEL)
    run = launch(researcher, recipe="reward_model", base_checkpoint=reward_model, batches=[exported_batch])
    assert run.base_checkpoint == reward_model
    with pytest.raises(ConfigInvalid, match="is a reward model; every recipe starts from a chat model"):
        launch(researcher, recipe="sft", base_checkpoint=reward_model, batches=[exported_batch])
