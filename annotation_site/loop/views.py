"""The loop's pages (researchers and admins): definitions and their versions, iterations with
their steps, gates, decision, retry, cancel, and promoting or rolling back a running canary by hand."""
from __future__ import annotations

from django.contrib import messages
from django.forms.models import model_to_dict
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import role_required
from annotation_site.errors import ApplicationError, NotFound
from annotation_site.generation.canary import PROMOTE, ROLLBACK
from annotation_site.loop import selectors
from annotation_site.loop.forms import LoopVersionForm
from annotation_site.loop.models import Trigger
from annotation_site.loop.services import definitions, iterations

LOOP_ROLES = (Role.RESEARCHER, Role.ADMIN)


def _found(select, object_id: int):
    try:
        return select(object_id)
    except NotFound as error:
        raise Http404(error.message) from None


@role_required(*LOOP_ROLES)
def loop_list(request):
    return render(request, "loop/list.html", {
        "definitions": selectors.definition_list(), "iterations": selectors.iteration_list()[:100],
    })


@role_required(*LOOP_ROLES)
def definition_new(request):
    form = LoopVersionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = definitions.loop_version_save(name=form.cleaned_data["name"], values=form.version_values(), actor=request.user)
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, f"Saved {version}.")
            return redirect("loop:definition", definition_id=version.definition_id)
    return render(request, "loop/definition_form.html", {"form": form}, status=400 if form.errors else 200)


@role_required(*LOOP_ROLES)
def definition_detail(request, definition_id: int):
    definition = _found(selectors.definition_get, definition_id)
    version = definition.current_version
    initial = model_to_dict(version, exclude=["id", "definition", "number", "created_by", "created_at"]) if version else None
    form = LoopVersionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = definitions.loop_version_save(definition=definition, values=form.version_values(), actor=request.user)
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, f"Saved {version}; the next iteration runs it.")
            return redirect("loop:definition", definition_id=definition.pk)
    return render(request, "loop/definition.html", {
        "definition": definition, "version": version, "form": form,
        "plan": selectors.planned_steps(version) if version else [],
        "versions": selectors.version_list(definition), "iterations": definition.iterations.all()[:50],
    }, status=400 if form.errors else 200)


@role_required(*LOOP_ROLES)
@require_POST
def run_now(request, definition_id: int):
    definition = _found(selectors.definition_get, definition_id)
    try:
        iteration = iterations.iteration_start(definition=definition, trigger=Trigger.MANUAL, started_by=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("loop:definition", definition_id=definition.pk)
    messages.success(request, f"Iteration {iteration.number} started.")
    return redirect("loop:iteration", iteration_id=iteration.pk)


@role_required(*LOOP_ROLES)
def iteration_detail(request, iteration_id: int):
    iteration = _found(selectors.iteration_get, iteration_id)
    return render(request, "loop/iteration.html", {"iteration": iteration, "steps": selectors.iteration_steps(iteration)})


@role_required(*LOOP_ROLES)
@require_POST
def iteration_retry(request, iteration_id: int):
    return _act(request, iteration_id, iterations.iteration_retry, "retried from its failed step")


@role_required(*LOOP_ROLES)
@require_POST
def iteration_cancel(request, iteration_id: int):
    return _act(request, iteration_id, iterations.iteration_cancel, "cancelled")


@role_required(*LOOP_ROLES)
@require_POST
def canary_promote(request, iteration_id: int):
    return _act(request, iteration_id, iterations.iteration_canary_decide, "ended: its canary was promoted by hand",
                decision=PROMOTE, reason=request.POST.get("reason", ""))


@role_required(*LOOP_ROLES)
@require_POST
def canary_rollback(request, iteration_id: int):
    return _act(request, iteration_id, iterations.iteration_canary_decide, "ended: its canary was rolled back by hand",
                decision=ROLLBACK, reason=request.POST.get("reason", ""))


def _act(request, iteration_id: int, service, done: str, **arguments):
    iteration = _found(selectors.iteration_get, iteration_id)
    try:
        service(iteration=iteration, actor=request.user, **arguments)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Iteration {iteration.number} {done}.")
    return redirect("loop:iteration", iteration_id=iteration_id)
