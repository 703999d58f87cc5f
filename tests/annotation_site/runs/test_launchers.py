"""A launch picks how the training worker starts its recipe: an allow-listed accelerate config
(shipped or an admin's) and a process count; nothing the web sends becomes a path or a command."""
from __future__ import annotations

from pathlib import Path

import pytest

from annotation_site.runs import artifacts, launchers
from annotation_site.runs.configs import ConfigInvalid
from annotation_site.runs.models import RunStatus
from annotation_site.runs.tasks import run_training
from tests.annotation_site.runs.conftest import launch

# Two CPU processes on one machine (gloo): the same accelerate path the GPU configs take.
TWO_CPU_PROCESSES = """\
# Two processes on the CPU (tests and CPU-only workers).
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_CPU
num_machines: 1
num_processes: 2
machine_rank: 0
mixed_precision: 'no'
use_cpu: true
"""


@pytest.fixture
def admin_configs(settings, tmp_path):
    folder = tmp_path / "accelerate"
    folder.mkdir()
    (folder / "cpu_two_processes.yaml").write_text(TWO_CPU_PROCESSES)
    (folder / "not_a_config.yaml").write_text("just: a mapping\n")
    settings.RUN_ACCELERATE_CONFIG_DIRS = [str(folder)]
    return folder


def test_the_shipped_configs_and_an_admins_are_offered_by_file_name(admin_configs):
    configs = launchers.accelerate_configs()
    assert {"one_gpu.yaml", "ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml"} < set(configs)
    assert configs["cpu_two_processes.yaml"].distributed_type == "MULTI_CPU"
    assert configs["deepspeed_zero3.yaml"].distributed_type == "DEEPSPEED"
    assert "not_a_config.yaml" not in configs


@pytest.mark.django_db
@pytest.mark.parametrize(("choice", "field", "message"), [
    ({"accelerate_config": "/etc/passwd"}, "accelerate_config", 'No accelerate config "/etc/passwd"'),
    ({"accelerate_config": "../configs/sft.yaml"}, "accelerate_config", "No accelerate config"),
    ({"accelerate_config": "ddp.yaml", "num_processes": 3}, "num_processes", "3 processes: choose one of 1, 2, 4, 8"),
    ({"accelerate_config": "one_gpu.yaml", "num_processes": 4}, "num_processes", "one_gpu.yaml runs one process"),
    ({"num_processes": 2}, "num_processes", "needs an accelerate config"),
    ({"recipe": "ppo", "accelerate_config": "deepspeed_zero3.yaml"}, "accelerate_config", "PPO runs on one GPU or with DDP"),
    ({"recipe": "ppo", "accelerate_config": "fsdp.yaml"}, "accelerate_config", "DeepSpeed and FSDP are not supported yet"),
])  # fmt: skip
def test_a_launch_outside_the_allow_list_is_refused_naming_the_field(researcher, choice, field, message):
    with pytest.raises(ConfigInvalid, match=message) as refused:
        launch(researcher, **choice)
    assert refused.value.field == field


@pytest.mark.django_db
def test_the_api_records_the_choice_and_the_worker_starts_accelerate_with_the_listed_file(
    client, researcher, base_checkpoint, exported_batch, enqueued
):
    client.force_login(researcher)
    response = client.post(
        "/api/runs/",
        {
            "recipe": "sft", "base_checkpoint": base_checkpoint.pk, "batches": [exported_batch.week],
            "accelerate_config": "deepspeed_zero3.yaml", "num_processes": 16,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["accelerate_config"], body["num_processes"]) == ("deepspeed_zero3.yaml", 16)
    launch_config = artifacts.RunPaths(Path(body["output_dir"])).launch_config
    command = launchers.recipe_command(
        recipe="sft", launch_config=launch_config, accelerate_config=body["accelerate_config"],
        num_processes=body["num_processes"],
    )
    assert command[command.index("--config_file") + 1] == str(launchers.SHIPPED_DIR.resolve() / "deepspeed_zero3.yaml")
    assert command[command.index("--num_processes") + 1] == "16"
    assert command[-4:-2] == ["-m", "training.sft"]
    listed = client.get("/api/runs/accelerate-configs/").json()
    assert {"name": "fsdp.yaml", "distributed_type": "FSDP"}.items() <= next(c for c in listed if c["name"] == "fsdp.yaml").items()


@pytest.mark.slow
@pytest.mark.django_db
def test_an_sft_run_on_two_processes_trains_through_accelerate_launch(
    researcher, base_checkpoint, exported_batch, admin_configs
):
    run = launch(
        researcher, overrides=["per_device_batch_size=2"], base_checkpoint=base_checkpoint, batches=[exported_batch],
        accelerate_config="cpu_two_processes.yaml", num_processes=2,
    )
    assert run_training(run.pk) == RunStatus.SUCCEEDED, artifacts.log_tail(run, lines=40)
    run.refresh_from_db()
    log = artifacts.run_paths(run).log.read_text()
    assert f"launch --config_file {admin_configs / 'cpu_two_processes.yaml'} --num_processes 2 -m training.sft" in log
    assert run.checkpoint is not None and (artifacts.run_paths(run).out / "config.json").is_file()
