"""What a researcher types is data: only each recipe's TUNABLE_KEYS, as plain YAML, within size
caps, every bad line named at once; and the training worker refuses a stored run that breaks
these rules before it starts anything (issue 11)."""
import dataclasses
import importlib
import types
import typing

import pytest
import yaml
from rest_framework.test import APIClient

from annotation_site.runs import services
from annotation_site.runs.configs import ConfigInvalid, check_overrides, stored_run_problems
from annotation_site.runs.models import Recipe, RunStatus, TrainingRun
from tests.annotation_site.runs.conftest import TINY_SFT, launch

pytestmark = pytest.mark.django_db

# The payloads of the security probe that were accepted before, and the recipes they were sent to.
PROBES = [
    ("rejection_sampling", 'sft_launcher=[sh, -c, "id > /tmp/x"]', "sft_launcher"),
    ("rejection_sampling", "vllm={host: 0.0.0.0, extra_args: [--trust-remote-code]}", "vllm"),
    ("sft", "trainer_args={model_init_kwargs: {trust_remote_code: true}, output_dir: /etc}", "trainer_args"),
    ("reward_model", "trainer_args={model_init_kwargs: {trust_remote_code: true}, output_dir: /etc}", "trainer_args"),
]
# 264 bytes of YAML that anchors and aliases expand into 9^8 (43 million) strings.
BILLION_LAUGHS = "gamma=[&a [lol,lo,lo,lo,lo,lo,lo,lo,lo]" + "".join(
    f",&{b} [{','.join(['*' + a] * 9)}]" for a, b in zip("abcdefg", "bcdefgh")
) + "]"


def recipe_module(recipe: str):
    return importlib.import_module(f"training.{recipe}")


def refused_keys():
    """Every Config field of every recipe that is not in its TUNABLE_KEYS (a new field is refused
    until someone adds it there), and every SFT field rejection sampling may not set under sft=."""
    cases = []
    for recipe in Recipe.values:
        module = recipe_module(recipe)
        cases += [(recipe, field.name) for field in dataclasses.fields(module.Config) if field.name not in module.TUNABLE_KEYS]
    sft = recipe_module("sft")
    rejection_sampling = recipe_module("rejection_sampling")
    cases += [
        ("rejection_sampling", f"sft.{field.name}")
        for field in dataclasses.fields(sft.Config)
        if f"sft.{field.name}" not in rejection_sampling.TUNABLE_KEYS
    ]
    return cases


def override_for(key: str) -> str:
    top, _, nested = key.partition(".")
    return f"{top}={{{nested}: 1}}" if nested else f"{key}=1"


@pytest.mark.parametrize("recipe, key", refused_keys())
def test_every_key_outside_the_recipes_tunable_keys_is_refused_with_a_message_naming_it(recipe, key):
    with pytest.raises(ConfigInvalid) as refused:
        check_overrides(recipe, [override_for(key)])
    assert key in refused.value.message


@pytest.mark.parametrize("recipe", Recipe.values)
def test_no_tunable_key_takes_text_a_mapping_or_anything_that_could_be_a_path_or_a_command(recipe):
    module = recipe_module(recipe)

    def free_form(hint) -> bool:
        if typing.get_origin(hint) is typing.Literal:
            return False
        if hint in (str, dict, typing.Any) or typing.get_origin(hint) is dict:
            return True
        return any(free_form(arg) for arg in typing.get_args(hint))

    for key in module.TUNABLE_KEYS:
        config_class = module.Config
        if "." in key:
            parent, key = key.split(".")
            config_class = recipe_module(parent).Config
        hint = typing.get_type_hints(config_class)[key]
        assert not free_form(hint), f"{recipe}: {key} is {hint}"
        assert isinstance(hint, type | types.UnionType) or typing.get_origin(hint) in (typing.Literal, list, typing.Union)


def test_the_launch_page_lists_each_recipes_tunable_keys(client, researcher):
    client.force_login(researcher)
    page = client.get("/runs/launch/").content.decode()
    assert 'data-recipe="ppo">Keys you can set: adam_betas, adam_eps, batch_size' in page
    assert "sft.learning_rate" in page and "sft_launcher" not in page


@pytest.mark.parametrize("recipe, override, key", PROBES)
def test_the_probes_launchers_engine_arguments_and_trainer_arguments_are_refused_by_the_api(
    researcher, base_checkpoint, exported_batch, recipe, override, key
):
    api = APIClient()
    api.force_authenticate(researcher)
    response = api.post(
        "/api/runs/", {"recipe": recipe, "base_checkpoint": base_checkpoint.pk, "batches": ["2026-W48"], "overrides": [override]},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "overrides" and f"{key} cannot be set from the site" in body["errors"][0]
    assert f"Keys you can set for {recipe}:" in body["errors"][-1]
    assert not TrainingRun.objects.exists()


def test_the_form_lists_every_bad_line_not_only_the_first(client, researcher):
    client.force_login(researcher)
    overrides = "\n".join([
        "temperature=1.2", "sft_launcher=[sh, -c, id]", "# a comment", "vllm={host: 0.0.0.0}", "samples_per_prompt",
        "seed=[unclosed", "temperatur=1.2",
    ])
    response = client.post("/runs/launch/", {"recipe": "rejection_sampling", "overrides": overrides})
    assert response.status_code == 400
    errors = [error["message"] for error in response.context["form"].errors.get_json_data()["overrides"]]
    assert [error.split(" ")[0] for error in errors[:2]] == ["sft_launcher", "vllm"]
    assert '"samples_per_prompt" is not of the form key=value' in errors[2]
    assert errors[3].startswith("seed is not valid YAML")
    assert errors[4] == "temperatur: unknown key for the rejection_sampling recipe (a typo?)."
    assert errors[5].startswith("Keys you can set for rejection_sampling: engine, finetune_from")
    assert b"<li>vllm cannot be set from the site" in response.content


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=[unclosed", "seed is not valid YAML: expected ',' or ']', but got '<stream end>' at line 1, column 10"),
        ("seed=!!python/object/apply:os.system [id]", "seed: YAML tags (tag:yaml.org,2002:python/object/apply:os.system) are not allowed"),
        ("seed=!!binary aGk=", "seed: YAML tags (tag:yaml.org,2002:binary) are not allowed"),
        ("adam_betas=[&b 0.9, *b]", "adam_betas: YAML anchors and aliases (&name, *name) are not allowed"),
        (BILLION_LAUGHS, "gamma: YAML anchors and aliases (&name, *name) are not allowed"),
        ("adam_betas=" + "[" * 30 + "]" * 30, "adam_betas: the value is nested deeper than 20 levels"),
    ],
)
def test_yaml_errors_anchors_aliases_and_tags_are_the_forms_error_and_the_apis_400(client, researcher, override, message):
    client.force_login(researcher)
    form = client.post("/runs/launch/", {"recipe": "ppo", "overrides": override})
    assert form.status_code == 400 and form.context["form"].errors["overrides"][0].startswith(message)
    api = APIClient()
    api.force_authenticate(researcher)
    response = api.post("/api/runs/", {"recipe": "ppo", "overrides": [override]}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0].startswith(message)


def test_the_billion_laughs_override_is_264_bytes():
    assert len(BILLION_LAUGHS.encode()) == 264


def test_overrides_and_the_resolved_config_are_capped_in_size(researcher, base_checkpoint, exported_batch, settings):
    with pytest.raises(ConfigInvalid, match="65 lines .* at most 64 lines"):
        check_overrides("sft", ["seed=1"] * 65)
    with pytest.raises(ConfigInvalid, match="at most 64 lines and 4096 bytes"):
        check_overrides("sft", ["adam_eps=" + "1" * 5000])
    settings.RUN_CONFIG_MAX_BYTES = 256
    with pytest.raises(ConfigInvalid, match=r"The resolved config is \d+ bytes, more than RUN_CONFIG_MAX_BYTES \(256\)"):
        launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch])
    assert not TrainingRun.objects.exists()


def test_a_launched_run_passes_the_workers_check(researcher, base_checkpoint, exported_batch, enqueued):
    run = launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch], config_name="sft_smollm2_cpu.yaml")
    assert stored_run_problems(run) == []


def _stored_run(researcher, base_checkpoint, exported_batch, **changes) -> TrainingRun:
    """A run as run_launch stores it, then changed behind the site's back (through the ORM)."""
    run = launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch])
    config = yaml.safe_load(run.config_text)
    config.update(changes.pop("config", {}))
    TrainingRun.objects.filter(pk=run.pk).update(config_text=yaml.safe_dump(config), **changes)
    run.refresh_from_db()
    return run


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"overrides": [*TINY_SFT, "trainer_args={output_dir: /etc}"]}, "trainer_args cannot be set from the site"),
        ({"config": {"trainer_args": {"model_init_kwargs": {"trust_remote_code": True}}}}, "trainer_args is not the shipped config's"),
        ({"config": {"out": "/etc/checkpoint"}}, "out is not the shipped config's"),
        ({"config": {"model": "/etc"}}, "model is not the shipped config's"),
        ({"config": {"data": [{"path": "/etc"}]}}, "data is not the shipped config's"),
        ({"output_dir": "/etc"}, "The run's folder is /etc"),
        ({"config_text_anchor": True}, "anchors and aliases"),
    ],
)
def test_the_worker_refuses_a_stored_run_with_forbidden_settings_before_anything_runs(
    researcher, base_checkpoint, exported_batch, enqueued, settings, changes, named
):
    if changes.pop("config_text_anchor", False):
        run = launch(researcher, base_checkpoint=base_checkpoint, batches=[exported_batch])
        TrainingRun.objects.filter(pk=run.pk).update(config_text=run.config_text + "x: &a [1]\ny: *a\n")
        run.refresh_from_db()
    else:
        run = _stored_run(researcher, base_checkpoint, exported_batch, **changes)
    marker = settings.CHECKPOINT_ROOT / "ran"
    settings.RUN_LAUNCHER = f"sh -c 'touch {marker}'"  # leaves a file if anything is started

    assert services.run_execute(run_id=run.pk, worker="test:1:x") == RunStatus.FAILED

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error.startswith("Refused before starting:") and named in run.error
    assert not marker.exists()
    assert not (settings.CHECKPOINT_ROOT / "runs" / str(run.pk) / "launch.yaml").exists()
