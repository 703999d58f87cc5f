from functools import partial
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation_site.annotation.imports import parse_prompt, validate_source_name
from annotation_site.annotation.management.commands._importing import parse_with_progress
from annotation_site.annotation.models import DialogueSource, GuidelineKind, TaskKind
from annotation_site.annotation.services import prompts_queue
from annotation_site.errors import ApplicationError


class Command(BaseCommand):
    help = (
        'Queue prompts from a JSONL file, one per line: {"prompt": "text"} or {"prompt"|"messages": [turns ending '
        'with a user turn]}, optionally with "guideline". Comparison prompts wait for two generated responses; '
        "--task demonstration asks annotators to write the ideal response. All-or-nothing unless --skip-invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--guideline", default=GuidelineKind.HELPFULNESS, choices=GuidelineKind.values,
                            help="Guideline of lines that do not name one (default helpfulness).")
        parser.add_argument("--task", default=TaskKind.COMPARISON, choices=TaskKind.values)
        parser.add_argument("--source", default="", help="Name of the prompt set (default: the file name).")
        parser.add_argument("--priority", type=int, default=0, help="Higher is generated and served first.")
        parser.add_argument("--skip-invalid", action="store_true", help="Queue the good lines and list the bad ones.")

    def handle(self, *args, path, guideline, task, source, priority, skip_invalid, **options):
        prompts = parse_with_progress(self, path, partial(parse_prompt, guideline_kind=guideline), skip_invalid=skip_invalid)
        try:
            items = prompts_queue(
                prompts=prompts,
                source=DialogueSource.IMPORT,
                source_name=validate_source_name(source or Path(path).stem),
                task_kind=task,
                priority=priority,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        state = "ready for annotators" if task == TaskKind.DEMONSTRATION else "waiting for generated responses"
        self.stdout.write(self.style.SUCCESS(f"Queued {len(items)} {task} item(s) from {path}, {state}."))
