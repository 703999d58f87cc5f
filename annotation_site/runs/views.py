"""The researchers' dashboard: run list, launch form, run detail (live progress, curves, eval,
log), cancel, deploy, and the reward-model comparison. Researchers and admins only."""
from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import role_required
from annotation_site.errors import ApplicationError, NotFound
from annotation_site.runs import artifacts, selectors, services
from annotation_site.runs.configs import tunable_keys
from annotation_site.runs.forms import CompareForm, DeployForm, LaunchForm
from annotation_site.runs.models import RunStatus
from annotation_site.runs.plots import curves_png
from annotation_site.runs.recipes import RECIPES, Report, site_recipe

RESEARCH_ROLES = (Role.RESEARCHER, Role.ADMIN)


def _run(run_id: int):
    try:
        return selectors.run_get(run_id)
    except NotFound as error:
        raise Http404(error.message) from None


@role_required(*RESEARCH_ROLES)
def dashboard(request):
    runs = list(selectors.run_list()[:200])
    return render(request, "runs/dashboard.html", {"runs": runs, "statuses": RunStatus})


@role_required(*RESEARCH_ROLES)
def launch(request):
    form = LaunchForm(request.POST or None, initial={"recipe": request.GET.get("recipe", RECIPES[0].value)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = services.run_launch(
                recipe=data["recipe"], config_name=data["config_name"], overrides=data["overrides"],
                name=data["name"], notes=data["notes"], base_checkpoint=data["base_checkpoint"],
                helpfulness_reward_model=data["helpfulness_reward_model"],
                safety_reward_model=data["safety_reward_model"],
                batches=list(data["batches"]), guidelines=data["guidelines"], launched_by=request.user,
                accelerate_config=data["accelerate_config"], num_processes=data["num_processes"],
                compare_with=list(data["compare_with"]), judge=data["judge"],
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, f"Run {run.pk} is queued for the training worker.")
            return redirect("runs:detail", run_id=run.pk)
    context = {"form": form, "tunable_keys": tunable_keys()}
    return render(request, "runs/launch.html", context, status=400 if form.errors else 200)


@role_required(*RESEARCH_ROLES)
def detail(request, run_id: int):
    run = _run(run_id)
    recipe = site_recipe(run.recipe)
    evaluation = artifacts.eval_results(run)
    comparison = policy_evaluation = None
    if recipe.report == Report.TABLE_8 and evaluation and evaluation.get("splits"):
        comparison = selectors.reward_model_comparison([run])
    if recipe.report == Report.POLICY_EVALUATION and evaluation and isinstance(evaluation.get("pairs"), list):
        policy_evaluation = evaluation
    plots = artifacts.plot_names(run)
    return render(request, "runs/detail.html", {
        "run": run,
        "evaluation": evaluation,
        "eval_sections": _eval_sections(evaluation) if evaluation and comparison is None and policy_evaluation is None else [],
        "comparison": comparison,
        "policy_evaluation": policy_evaluation,
        "plots": plots,
        "live_curves": bool(recipe.panels) and (not plots or recipe.keeps_curves),
        "log_tail": artifacts.log_tail(run),
        "deploy_form": DeployForm() if run.status == RunStatus.SUCCEEDED and run.checkpoint and recipe.deployable else None,
        "deployments": run.checkpoint.deployments.all() if run.checkpoint else [],
        "progress_url": reverse("api-run-progress", args=[run.pk]),
    })


def _eval_sections(evaluation: dict) -> list[tuple[str, list[tuple[str, object]]]]:
    """eval.json of the policy recipes as titled key/value tables (nested values flattened)."""
    sections = []
    for section, values in evaluation.items():
        if isinstance(values, dict):
            rows = [(key, value) for key, value in _flatten(values) if not isinstance(value, list)]
        elif isinstance(values, list) and all(isinstance(row, dict) for row in values):
            rows = [(f"{index + 1}. {key}", value) for index, row in enumerate(values) for key, value in _flatten(row)]
        else:
            rows = [(section, values)]
        sections.append((section, rows))
    return sections


def _flatten(values: dict, prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@role_required(*RESEARCH_ROLES)
def curves(request, run_id: int):
    run = _run(run_id)
    png = curves_png(run.recipe, artifacts.read_metrics(artifacts.run_paths(run).artifacts()))
    if png is None:
        raise Http404("No metrics logged yet.")
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response


@role_required(*RESEARCH_ROLES)
def plot(request, run_id: int, name: str):
    path = artifacts.plot_path(_run(run_id), name)
    if path is None:
        raise Http404(f"This run has no plot {name}.")
    return FileResponse(path.open("rb"), content_type="image/png")


@role_required(*RESEARCH_ROLES)
@require_POST
def cancel(request, run_id: int):
    try:
        run = services.run_cancel(run=_run(run_id), actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Run {run.pk} is {'cancelled' if run.is_finished else 'being cancelled'}.")
    return redirect("runs:detail", run_id=run_id)


@role_required(*RESEARCH_ROLES)
@require_POST
def deploy(request, run_id: int):
    run = _run(run_id)
    form = DeployForm(request.POST)
    if form.is_valid():
        try:
            deployment = services.run_deploy(run=run, **form.deployment_arguments())
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Deployed {run.checkpoint.name} ({deployment.engine}); it generates the next samples.")
    else:
        messages.error(request, "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
    return redirect("runs:detail", run_id=run_id)


@role_required(*RESEARCH_ROLES)
def compare(request):
    form = CompareForm(request.GET or None)
    comparison = selectors.reward_model_comparison(list(form.cleaned_data["run"])) if form.is_valid() else None
    return render(request, "runs/compare.html", {"form": form, "comparison": comparison})
