from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation_site.generation.models import Checkpoint, Deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("RLHF_LOOP_CACHE", str(tmp_path))
    settings.BASE_DIR = tmp_path / "project"  # where the command links the model for the shipped configs
    return tmp_path


def test_the_base_model_is_registered_and_deployed_on_the_local_engine_once(cache, tiny_model_dir):
    call_command("setup_demo_serving", source=str(tiny_model_dir), vllm_url="")
    call_command("setup_demo_serving", source=str(tiny_model_dir), vllm_url="")
    checkpoint = Checkpoint.objects.get()
    assert (checkpoint.name, checkpoint.kind) == ("smollm2-135m-instruct", "base")
    assert checkpoint.path.startswith(str(cache))
    deployment = Deployment.objects.get()
    assert (deployment.engine, deployment.endpoint_url, deployment.enabled) == ("local", "", True)


def test_the_model_is_linked_where_the_shipped_cpu_configs_look(cache, tiny_model_dir, settings, tmp_path):
    import yaml

    call_command("setup_demo_serving", source=str(tiny_model_dir), vllm_url="")
    config = yaml.safe_load((Path(__file__).parents[3] / "training/configs/sft_smollm2_cpu.yaml").read_text())
    looked_at = settings.BASE_DIR / config["model"]
    assert looked_at.resolve() == Path(Checkpoint.objects.get().path).resolve()
    assert (looked_at / "config.json").is_file()
    call_command("setup_demo_serving", source=str(tiny_model_dir), vllm_url="")  # again: the same link
    assert looked_at.is_symlink()


def test_with_a_vllm_url_the_vllm_deployment_replaces_the_local_one(cache, tiny_model_dir):
    call_command("setup_demo_serving", source=str(tiny_model_dir), vllm_url="")
    call_command("setup_demo_serving", source=str(tiny_model_dir), vllm_url="http://127.0.0.1:8100/v1", vllm_model="smol")
    enabled = Deployment.objects.get(enabled=True)
    assert (enabled.engine, enabled.endpoint_url, enabled.served_model_name) == ("vllm", "http://127.0.0.1:8100/v1", "smol")
    assert Deployment.objects.get(enabled=False).engine == "local"
    call_command("setup_demo_serving", source=str(tiny_model_dir), vllm_url="")
    assert Deployment.objects.get(enabled=True).engine == "local"
    assert Deployment.objects.count() == 2


def test_a_bad_source_is_a_clear_command_error(cache, tmp_path):
    with pytest.raises(CommandError, match="no config.json"):
        call_command("setup_demo_serving", source=str(tmp_path), vllm_url="")
    assert not Checkpoint.objects.exists()


def test_migrations_schedule_the_fill_and_health_tasks():
    from django_celery_beat.models import PeriodicTask

    tasks = {task.task: task for task in PeriodicTask.objects.filter(task__startswith="annotation_site.generation.")}
    fill = tasks["annotation_site.generation.tasks.fill_queue"]
    assert (fill.interval.every, fill.interval.period, fill.expire_seconds) == (30, "seconds", 30)
    assert tasks["annotation_site.generation.tasks.check_deployments_health"].interval.every == 60
