"""What starts an iteration (a batch's export, once per loop; a schedule; run now) and how its
outcome is told (the log, the pages, email when a mail server is configured)."""
from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from annotation_site.loop.models import IterationState, LoopIteration, Trigger
from annotation_site.loop.services.iterations import iteration_cancel, iteration_start, loops_tick
from annotation_site.loop.tasks import loop_start_scheduled
from tests.annotation_site.loop.conftest import exported, make_user

pytestmark = pytest.mark.django_db


def test_an_exported_batch_starts_one_iteration_of_each_loop_it_triggers(make_loop, deployed, settings, enqueued):
    weekly = make_loop(name="weekly", trigger=Trigger.BATCH_EXPORTED)
    make_loop(name="by-hand", trigger=Trigger.MANUAL)
    batch = exported(settings, "2026-W48")
    batch.exported_at = timezone.now()
    batch.save()

    first = loops_tick()
    again = loops_tick()

    iteration = LoopIteration.objects.get()
    assert first["started"] == [iteration.pk] and again["started"] == []
    assert (iteration.definition, iteration.batch, iteration.trigger) == (weekly, batch, Trigger.BATCH_EXPORTED)
    # The tick also advanced it: its first step's run is queued for the training worker.
    assert iteration.steps.get(position=0).run.status == "queued"


def test_a_batch_exported_before_the_loop_existed_starts_nothing(make_loop, deployed, settings):
    batch = exported(settings, "2026-W48")
    batch.exported_at = timezone.now() - dt.timedelta(days=1)
    batch.save()
    make_loop(trigger=Trigger.BATCH_EXPORTED)
    assert loops_tick()["started"] == [] and not LoopIteration.objects.exists()


def test_the_scheduled_task_starts_an_iteration_unless_one_is_running(make_loop, deployed, batch, caplog):
    loop = make_loop(trigger=Trigger.SCHEDULE)
    first = loop_start_scheduled(loop.pk)
    assert LoopIteration.objects.get(pk=first).trigger == Trigger.SCHEDULE
    with caplog.at_level(logging.WARNING):
        assert loop_start_scheduled(loop.pk) is None
    assert "is still running" in caplog.text and LoopIteration.objects.count() == 1


def test_the_outcome_is_logged_and_mailed_to_researchers_and_admins_when_a_mail_server_is_set(
    make_loop, researcher, deployed, batch, settings, mailoutbox, caplog, django_capture_on_commit_callbacks
):
    settings.EMAIL_HOST = "mail.example.org"
    researcher.email = "researcher@example.org"
    researcher.save()
    make_user("annotator", "ann").__class__.objects.filter(username="ann").update(email="ann@example.org")
    iteration = iteration_start(definition=make_loop(), trigger=Trigger.MANUAL, started_by=researcher)

    with caplog.at_level(logging.INFO, logger="annotation_site.loop"), django_capture_on_commit_callbacks(execute=True):
        iteration_cancel(iteration=iteration, actor=researcher)

    assert LoopIteration.objects.get().state == IterationState.CANCELLED
    [mail] = mailoutbox
    assert mail.to == ["researcher@example.org"] and "weekly iteration 1: Cancelled" in mail.subject
    assert "cancelled by researcher-user" in mail.body and f"/loop/iterations/{iteration.pk}/" in mail.body
    assert "loop weekly iteration 1 cancelled" in caplog.text


def test_no_mail_without_a_mail_server(make_loop, researcher, deployed, batch, settings, mailoutbox,
                                       django_capture_on_commit_callbacks):
    settings.EMAIL_HOST = ""
    researcher.email = "researcher@example.org"
    researcher.save()
    iteration = iteration_start(definition=make_loop(), trigger=Trigger.MANUAL, started_by=researcher)
    with django_capture_on_commit_callbacks(execute=True):
        iteration_cancel(iteration=iteration, actor=researcher)
    assert mailoutbox == []
