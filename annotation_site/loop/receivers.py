"""The loop listens to the runs app: when a step's run ends, its iteration moves on."""
from __future__ import annotations

from django.dispatch import receiver

from annotation_site.runs.signals import run_finished


@receiver(run_finished, dispatch_uid="loop-run-finished")
def advance_iteration_of_run(sender, run_id: int, **kwargs) -> None:
    from annotation_site.loop.models import LoopStep
    from annotation_site.loop.services.iterations import iteration_enqueue

    for iteration_id in set(LoopStep.objects.filter(run_id=run_id).values_list("iteration_id", flat=True)):
        iteration_enqueue(iteration_id=iteration_id)
