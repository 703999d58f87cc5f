"""The recipes the site can launch, in one table: every module of the site reads it, none keeps its
own list (the run model's choices, the generation app's checkpoint kinds, config resolution, the
launch form, progress, plots, checkpoint registration, the dashboard's pages, the paper's figures).

A row names what the site needs to know about a recipe of training/; the recipe itself stays one
readable file there (`training/<value>.py`, with its `Config`, `TUNABLE_KEYS` and `main`) with its
shipped YAML under training/configs/. Adding a recipe is that file, its config and one row here
(docs/architecture.md §5); tests/annotation_site/runs/test_recipes.py fails until they fit together.

Plain Python, no Django import: the models build their choices from it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

# The reward models of eq. 3, as the launch form and the configs name them (`<guideline>_reward_model`).
BOTH_REWARD_MODELS = ("helpfulness", "safety")


class Report(enum.Enum):
    """How the run page shows the recipe's eval.json."""

    SECTIONS = "sections"  # titled key/value tables of whatever the recipe wrote
    TABLE_8 = "table_8"  # reward-model accuracy per rating level on the held-out splits (Table 8, Fig. 6)
    POLICY_EVALUATION = "policy_evaluation"  # win rates per pair and guideline (Fig. 11, Fig. 20)


@dataclass(frozen=True)
class Panel:
    """One panel of a run's live curves: metrics.jsonl keys drawn against the progress key."""

    title: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class SiteRecipe:
    # TrainingRun.recipe; the worker runs `python -m training.<value>`.
    value: str
    # The launch form's and run pages' name of it.
    label: str
    # Short name, in messages; also the label of the checkpoint kind it produces.
    name: str
    # The generation app's kind of the checkpoint it registers; None: it trains nothing (its run
    # folder holds tables and plots).
    checkpoint_kind: str | None
    # Whether that checkpoint answers prompts, so it can be deployed to generate samples (a reward
    # model only scores them).
    deployable: bool
    # metrics.jsonl's key counting progress, and the config key holding its total (a recipe that
    # knows its total only once it read its data writes it to data.json as `total_steps`; None:
    # only there).
    progress_key: str
    total_key: str | None
    # The reward models the launch form may set (the recipe's `<guideline>_reward_model` keys).
    reward_models: tuple[str, ...]
    # Whether it compares the start checkpoint with others (`against`) and may ask a judge.
    compares_checkpoints: bool
    report: Report
    # The live curves of a run in progress; the recipe's own PNGs replace them at the end unless
    # `keeps_curves` (when those PNGs do not draw the panels, e.g. GRPO plots only TRL's loss).
    panels: tuple[Panel, ...]
    keeps_curves: bool = False
    # Its start checkpoint and the ones it compares with are reward models (the reward-model
    # evaluation); else they are chat checkpoints.
    scores_reward_models: bool = False
    # It may start from a reward model and continue it (the weekly loop's "continue the last RM").
    continues_reward_models: bool = False
    # Offered by the dashboard's launch form; the reward-model evaluation is launched by the weekly
    # loop (the form's checkpoint fields list chat checkpoints only).
    on_the_form: bool = True

    @property
    def module(self) -> str:
        return f"training.{self.value}"


LEARNING_RATE = Panel("learning rate", ("learning_rate",))

RECIPES: tuple[SiteRecipe, ...] = (
    SiteRecipe(
        value="reward_model", label="Reward model (§3.2.2)", name="Reward model",
        checkpoint_kind="reward_model", deployable=False, progress_key="step", total_key="max_steps",
        reward_models=(), compares_checkpoints=False, report=Report.TABLE_8, continues_reward_models=True,
        panels=(Panel("loss (eq. 2)", ("loss",)), Panel("pair accuracy (train batch)", ("accuracy",)),
                Panel("reward margin chosen - rejected", ("margin",)), LEARNING_RATE),
    ),
    SiteRecipe(
        value="sft", label="Supervised fine-tuning (§3.1)", name="Supervised fine-tuning",
        checkpoint_kind="sft", deployable=True, progress_key="step", total_key="max_steps",
        reward_models=(), compares_checkpoints=False, report=Report.SECTIONS,
        panels=(Panel("loss on answer tokens", ("loss", "eval_loss")),
                Panel("token accuracy", ("mean_token_accuracy", "eval_mean_token_accuracy")), LEARNING_RATE),
    ),
    SiteRecipe(
        value="rejection_sampling", label="Rejection-sampling fine-tuning (§3.2.3)", name="Rejection-sampling fine-tuning",
        checkpoint_kind="rejection_sampling", deployable=True, progress_key="iteration", total_key="iterations",
        reward_models=BOTH_REWARD_MODELS, compares_checkpoints=False, report=Report.SECTIONS,
        panels=(Panel("reward: best of K vs one sample", ("mean_best_reward", "mean_single_reward")),
                Panel("gap best - single", ("best_minus_single",)), Panel("pool size", ("pool_size",))),
    ),
    SiteRecipe(
        value="ppo", label="PPO (§3.2.3)", name="PPO",
        checkpoint_kind="ppo", deployable=True, progress_key="iteration", total_key="iterations",
        reward_models=BOTH_REWARD_MODELS, compares_checkpoints=False, report=Report.SECTIONS,
        panels=(Panel("reward", ("reward", "helpfulness_score", "safety_score")), Panel("KL to the reference", ("kl",)),
                Panel("policy and value loss", ("policy_loss", "value_loss")), Panel("response length", ("response_length",))),
    ),
    SiteRecipe(
        value="grpo", label="GRPO, an alternative to PPO (not in the paper; Shao et al., 2024)", name="GRPO",
        checkpoint_kind="grpo", deployable=True, progress_key="step", total_key="max_steps",
        reward_models=BOTH_REWARD_MODELS, compares_checkpoints=False, report=Report.SECTIONS,
        panels=(Panel("reward (eq. 3) and its spread in a group", ("reward", "reward_std")),
                Panel("KL to the reference", ("kl",)), Panel("policy entropy", ("entropy",)),
                Panel("response length", ("completions/mean_length",))),
        keeps_curves=True,
    ),
    SiteRecipe(
        value="evaluate_policy", label="Policy evaluation: is the new checkpoint better? (§3.4)", name="Policy evaluation",
        checkpoint_kind=None, deployable=False, progress_key="step", total_key=None,
        reward_models=BOTH_REWARD_MODELS, compares_checkpoints=True, report=Report.POLICY_EVALUATION,
        panels=(),
    ),
    SiteRecipe(
        value="evaluate_reward_model", label="Reward-model evaluation: is the new reward model better? (§3.2.2)",
        name="Reward-model evaluation", checkpoint_kind=None, deployable=False, progress_key="step", total_key=None,
        reward_models=(), compares_checkpoints=True, report=Report.SECTIONS, panels=(), scores_reward_models=True,
        on_the_form=False,
    ),
)

BY_VALUE = {recipe.value: recipe for recipe in RECIPES}


def site_recipe(value: str) -> SiteRecipe:
    """The row of a recipe value (a KeyError for a value the table does not name)."""
    return BY_VALUE[value]


def recipe_values(**matching) -> list[str]:
    """The values of the recipes whose fields equal `matching`, e.g. recipe_values(report=Report.TABLE_8)."""
    return [recipe.value for recipe in RECIPES if all(getattr(recipe, key) == value for key, value in matching.items())]


def joined(values, last: str = "and") -> str:
    """"ppo, grpo and evaluate_policy": recipe values for a message."""
    values = list(values)
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} {last} {values[-1]}"


# The recipes the launch form's reward-model fields are for.
USING_REWARD_MODELS = tuple(recipe.value for recipe in RECIPES if recipe.reward_models)
