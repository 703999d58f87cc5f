"""An iteration's outcome: in the log always, by email to researchers and admins when the site has
a mail server (EMAIL_HOST), and on the dashboard (selectors.latest_outcomes reads it there)."""
from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from annotation_site.accounts.models import Role
from annotation_site.loop.models import IterationState, LoopIteration

logger = logging.getLogger("annotation_site.loop")


def iteration_finished(*, iteration_id: int) -> None:
    iteration = LoopIteration.objects.select_related("definition").filter(pk=iteration_id).first()
    if iteration is None:
        return
    level = logging.INFO if iteration.state == IterationState.PROMOTED else logging.WARNING
    logger.log(level, "loop %s iteration %s %s: %s", iteration.definition.name, iteration.number, iteration.state,
               iteration.outcome)
    if not settings.EMAIL_HOST:
        return
    recipients = list(get_user_model().objects.filter(groups__name__in=[Role.RESEARCHER, Role.ADMIN], is_active=True)
                      .exclude(email="").values_list("email", flat=True).distinct())
    if not recipients:
        return
    try:
        send_mail(
            subject=f"[RLHF loop] {iteration.definition.name} iteration {iteration.number}: {iteration.get_state_display()}",
            message=f"{iteration.outcome}\n\nThe iteration page: /loop/iterations/{iteration.pk}/ on the site.\n",
            from_email=None, recipient_list=recipients,
        )
    except OSError:  # the mail server is down: the outcome is on the dashboard and in the log anyway
        logger.exception("could not email the outcome of loop iteration %s", iteration_id)
