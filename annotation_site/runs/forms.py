"""Forms of the dashboard's pages: launch a run, deploy its checkpoint, pick runs to compare."""
from __future__ import annotations

from django import forms

from annotation_site.errors import ApplicationError
from annotation_site.generation.models import TENSOR_PARALLEL_SIZES, Engine
from annotation_site.runs import selectors
from annotation_site.runs.configs import parse_overrides, shipped_configs
from annotation_site.runs.launchers import PROCESS_COUNTS, accelerate_configs
from annotation_site.runs.models import Recipe
from annotation_site.runs.recipes import USING_REWARD_MODELS, joined, recipe_values
from annotation_site.runs.services import GUIDELINES


class CheckpointChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, checkpoint):
        return f"{checkpoint.name} ({checkpoint.kind}) - {checkpoint.path}"


# The recipes that read the reward-model and comparison fields, for their help texts.
REWARD_MODELS_FOR = joined(USING_REWARD_MODELS)
COMPARING = joined(recipe_values(compares_checkpoints=True))


class LaunchForm(forms.Form):
    # The recipes the form can launch (runs/recipes.py `on_the_form`).
    recipe = forms.ChoiceField(choices=[(value, label) for value, label in Recipe.choices
                                        if value in recipe_values(on_the_form=True)])
    config_name = forms.ChoiceField(
        label="Shipped config", required=False,
        help_text="A file of training/configs/ for this recipe; empty: the recipe's defaults (the paper's settings).",
    )
    name = forms.CharField(
        max_length=200, required=False,
        help_text="Also the name of the checkpoint it registers; default <recipe>-run-<id>.",
    )
    base_checkpoint = CheckpointChoiceField(
        queryset=selectors.chat_checkpoints(), required=False, label="Start from checkpoint",
        help_text="Sets model= (and becomes the parent of the new checkpoint); empty: the config's model.",
    )
    helpfulness_reward_model = CheckpointChoiceField(
        queryset=selectors.reward_model_checkpoints(), required=False, help_text=f"{REWARD_MODELS_FOR} runs only.",
    )
    safety_reward_model = CheckpointChoiceField(
        queryset=selectors.reward_model_checkpoints(), required=False, help_text=f"{REWARD_MODELS_FOR} runs only.",
    )
    batches = forms.ModelMultipleChoiceField(
        queryset=selectors.exported_batches(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Exported weekly batches to train on; they replace the config's data list.",
    )
    guidelines = forms.MultipleChoiceField(
        choices=[(g, g) for g in GUIDELINES], required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Keep only the chosen batches' rows of these guidelines (none: all).",
    )
    compare_with = forms.ModelMultipleChoiceField(
        queryset=selectors.chat_checkpoints(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=f"{COMPARING} runs only: the checkpoints the start checkpoint is compared with (sets against=).",
    )
    judge = forms.ModelChoiceField(
        queryset=selectors.judge_deployments(), required=False, label="Judge",
        help_text=f"{COMPARING} runs only: a deployed vLLM chat model asked which answer is better (sets judge_url=, judge_model=).",
    )
    overrides = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "max_steps=20\nlearning_rate=2e-5"}), required=False,
        help_text="key=value, one per line, on top of the shipped config (values are plain YAML). Only the "
        "recipe's tunable settings (learning rate, steps, batch sizes, ...) can be set here; docs/runs.md lists them.",
    )
    accelerate_config = forms.ChoiceField(
        label="Accelerate config", required=False,
        help_text="How the training worker spreads the run over GPUs (training/accelerate/ and admins' configs); "
        "empty: one process.",
    )
    num_processes = forms.TypedChoiceField(
        choices=[("", "(the config's own)")] + [(count, count) for count in PROCESS_COUNTS], coerce=int,
        empty_value=None, required=False, label="Processes (GPUs, all machines together)",
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["accelerate_config"].choices = [("", "(none: one process)")] + [
            (config.name, f"{config.name}: {config.description}") for config in accelerate_configs().values()
        ]
        # Grouped by recipe (one <optgroup> each, labelled with the recipe's value): the page shows
        # only the chosen recipe's group.
        self.fields["config_name"].choices = [("", "(recipe defaults)")] + [
            (recipe, [(config.name, f"{config.name}: {config.description}") for config in shipped_configs(recipe)])
            for recipe in Recipe.values
        ]

    def clean_overrides(self) -> list[str]:
        return parse_overrides(self.cleaned_data.get("overrides", ""))

    def add_application_error(self, error: ApplicationError) -> None:
        """Show a service's error beside the field it names (else above the form), one line per problem."""
        field = error.extra.get("field")
        self.add_error(field if field in self.fields else None, error.extra.get("errors") or [error.message])


class DeployForm(forms.Form):
    MODES = [
        ("local", "Local transformers engine (inside the generation worker)"),
        ("vllm", "A running vLLM server at this URL"),
        ("launch", "Launch a vLLM server for it (on a serving worker's GPUs)"),
    ]
    mode = forms.ChoiceField(choices=MODES, widget=forms.RadioSelect, initial="local")
    endpoint_url = forms.CharField(max_length=500, required=False, help_text="e.g. http://127.0.0.1:8100/v1")
    served_model_name = forms.CharField(max_length=500, required=False)
    port = forms.IntegerField(min_value=1, max_value=65535, required=False, help_text="Launch only; empty: a free port.")
    enforce_eager = forms.BooleanField(required=False, help_text="Launch only: starts faster, serves ~10% slower.")
    tensor_parallel_size = forms.TypedChoiceField(
        choices=[(size, size) for size in TENSOR_PARALLEL_SIZES], coerce=int, initial=1, required=False,
        empty_value=1, label="GPUs (tensor parallel)", help_text="Launch only: GPUs the server shards the model over.",
    )
    only_this = forms.BooleanField(
        required=False, label="Disable every other deployment",
        help_text="Else the newest checkpoints share generation (GENERATION_LATEST_CHECKPOINTS).",
    )

    def deployment_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "engine": Engine.LOCAL if data["mode"] == "local" else Engine.VLLM,
            "endpoint_url": data["endpoint_url"] if data["mode"] == "vllm" else "",
            "served_model_name": data["served_model_name"],
            "launch": data["mode"] == "launch",
            "port": data["port"],
            "enforce_eager": data["enforce_eager"],
            "tensor_parallel_size": data["tensor_parallel_size"],
            "only_this": data["only_this"],
        }


class CompareForm(forms.Form):
    run = forms.ModelMultipleChoiceField(
        queryset=selectors.comparable_reward_model_runs(), widget=forms.CheckboxSelectMultiple,
        label="Reward-model runs",
    )

    def clean_run(self):
        runs = self.cleaned_data["run"]
        if len(runs) < 2:
            raise forms.ValidationError("Pick at least two reward-model runs to compare.")
        return runs
