"""The site's recipe table (runs/recipes.py) and what each row promises: a shipped config, a
training module with a Config, TUNABLE_KEYS and a main, a checkpoint kind the registry knows, and
live-curve panels whose keys the recipe writes to metrics.jsonl. The last is checked by running
every recipe for real on the tiny models, launched from the dashboard's form, so a row added
without its wiring fails here."""
import dataclasses
import importlib

import pytest

from annotation_site.evaluation.lineage import checkpoint_lineage
from annotation_site.generation.models import CheckpointKind
from annotation_site.runs import artifacts
from annotation_site.runs.configs import CONFIG_DIR, shipped_configs
from annotation_site.runs.models import Recipe, RunStatus, TrainingRun
from annotation_site.runs.recipes import BOTH_REWARD_MODELS, RECIPES, SiteRecipe
from annotation_site.runs.tasks import run_training
from tests.annotation_site.runs.conftest import TINY
from training.config import load_config

by_value = pytest.mark.parametrize("recipe", RECIPES, ids=lambda recipe: recipe.value)


def fields(recipe: SiteRecipe) -> set[str]:
    return {field.name for field in dataclasses.fields(importlib.import_module(recipe.module).Config)}


def test_the_run_model_and_the_checkpoint_registry_take_their_choices_from_the_table():
    assert Recipe.values == [recipe.value for recipe in RECIPES]
    assert CheckpointKind.values == ["base"] + [recipe.checkpoint_kind for recipe in RECIPES if recipe.checkpoint_kind]
    longest = TrainingRun._meta.get_field("recipe").max_length
    assert all(len(recipe.value) <= longest for recipe in RECIPES)
    assert all(len(kind) <= longest for kind in CheckpointKind.values)


@by_value
def test_every_recipe_has_a_training_module_with_a_config_tunable_keys_and_a_main(recipe):
    module = importlib.import_module(recipe.module)
    assert dataclasses.is_dataclass(module.Config) and callable(module.main)
    assert module.TUNABLE_KEYS and {"model", "data", "out"} <= fields(recipe)


@by_value
def test_every_recipe_ships_a_config_that_loads_into_its_config(recipe):
    configs = shipped_configs(recipe.value)
    assert configs, f"no YAML in training/configs/ whose header launches -m {recipe.module}"
    module = importlib.import_module(recipe.module)
    for config in configs:
        load_config(module.Config, CONFIG_DIR / config.name)


@by_value
def test_every_rows_keys_are_settings_of_its_recipe(recipe):
    assert set(recipe.reward_models) <= set(BOTH_REWARD_MODELS)
    assert {f"{guideline}_reward_model" for guideline in recipe.reward_models} <= fields(recipe)
    assert recipe.total_key is None or recipe.total_key in fields(recipe)
    assert not recipe.compares_checkpoints or "against" in fields(recipe)
    assert not recipe.deployable or recipe.checkpoint_kind
    assert not recipe.keeps_curves or recipe.panels


@pytest.mark.django_db
# The rows the form offers; the reward-model evaluation is launched by the weekly loop (tests/annotation_site/loop).
@pytest.mark.parametrize("recipe", [row for row in RECIPES if row.on_the_form], ids=lambda recipe: recipe.value)
def test_every_recipe_launched_from_the_form_succeeds_registers_its_checkpoint_and_draws_its_panels(
    client, researcher, base_checkpoint, exported_batch, evaluation_checkpoints, recipe
):
    assert recipe.value in TINY, f"give the {recipe.value} recipe tiny settings in conftest.TINY"
    client.force_login(researcher)
    form = {
        "recipe": recipe.value, "name": f"{recipe.value}-w48", "base_checkpoint": base_checkpoint.pk,
        "batches": [exported_batch.pk], "overrides": "\n".join(TINY[recipe.value]),
    }
    for guideline in recipe.reward_models:
        form[f"{guideline}_reward_model"] = evaluation_checkpoints[guideline].pk
    if recipe.compares_checkpoints:
        form["compare_with"] = [evaluation_checkpoints["new"].pk]
    response = client.post("/runs/launch/", form)
    assert response.status_code == 302, response.context["form"].errors
    run = TrainingRun.objects.get(name=f"{recipe.value}-w48")

    assert run_training(run.pk) == RunStatus.SUCCEEDED, TrainingRun.objects.get(pk=run.pk).error

    run.refresh_from_db()
    assert run.total_steps and run.step == run.total_steps and run.progress == 1.0
    if recipe.checkpoint_kind is None:
        assert run.checkpoint is None
    else:
        checkpoint = run.checkpoint
        assert (checkpoint.name, checkpoint.kind, checkpoint.parent) == (run.name, recipe.checkpoint_kind, base_checkpoint)
        lineage = checkpoint_lineage(checkpoint_id=checkpoint.pk)
        assert lineage.parents == [base_checkpoint] and lineage.run == run and lineage.recipe == recipe.value
        assert lineage.reward_models == {guideline: evaluation_checkpoints[guideline] for guideline in recipe.reward_models}
        assert [source.batch for source in lineage.sources] == [exported_batch]

    written = set().union(*artifacts.read_metrics(artifacts.run_paths(run).out))
    for panel in recipe.panels:
        assert set(panel.keys) <= written, f"{panel.title}: {recipe.value} writes no {set(panel.keys) - written}"
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert ("Deploy " in html) == recipe.deployable
    if recipe.panels:
        curves = client.get(f"/runs/{run.pk}/curves.png")
        assert curves.status_code == 200 and curves.content.startswith(b"\x89PNG")
    if recipe.keeps_curves:
        assert 'id="run-curves"' in html and artifacts.plot_names(run)
