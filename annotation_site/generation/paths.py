"""Which checkpoint paths the site accepts: folders inside the configured checkpoint roots, or hub
ids where the operator allows them.

A path typed into the site is resolved the way a worker would load it (relative to the project
folder, symlinks followed, `Path.resolve(strict=True)`) and must land inside CHECKPOINT_ROOT or
one of CHECKPOINT_ROOTS. Missing paths, paths outside the roots and paths that are not folders
all get the same message, so the answer never tells whether something exists on the server.
"""
from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from annotation_site.errors import ApplicationError

# A Hugging Face hub id: "name" or "owner/name", letters, digits, "-", "_", "." (not starting with one).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


class CheckpointPathRefused(ApplicationError):
    def __init__(self, *, field: str = "path"):
        hubs = " or a hub id such as owner/model" if settings.CHECKPOINT_HUB_IDS else ""
        super().__init__(
            f"Not an available checkpoint: give a checkpoint folder inside the checkpoint roots "
            f"(CHECKPOINT_ROOT, CHECKPOINT_ROOTS){hubs}.",
            extra={"field": field},
        )


def checkpoint_roots() -> list[Path]:
    """CHECKPOINT_ROOT and CHECKPOINT_ROOTS as resolved folders (relative ones from the project folder)."""
    roots = [settings.CHECKPOINT_ROOT, *settings.CHECKPOINT_ROOTS]
    return [(Path(settings.BASE_DIR) / root).resolve() for root in roots]


def checkpoint_path(path: str, *, field: str = "path") -> str:
    """The path a checkpoint may be registered or trained from: the resolved folder inside a
    checkpoint root, or the hub id itself where CHECKPOINT_HUB_IDS allows hub ids.

    Raises `CheckpointPathRefused` (one message for every refusal, naming `field`) otherwise."""
    text = (path or "").strip()
    if not text or "\x00" in text or len(text) > 1000:
        raise CheckpointPathRefused(field=field)
    local = Path(settings.BASE_DIR) / text  # an absolute `text` replaces BASE_DIR
    if settings.CHECKPOINT_HUB_IDS and HUB_ID.fullmatch(text) and not _exists(local):
        # Loaders try a local folder of that name first, so only a name that is no folder here is a hub id.
        return text
    try:
        resolved = local.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a name too long, no permission
        raise CheckpointPathRefused(field=field) from None
    if not resolved.is_dir() or not any(resolved.is_relative_to(root) for root in checkpoint_roots()):
        raise CheckpointPathRefused(field=field)
    return str(resolved)


def is_checkpoint_path(path) -> bool:
    if not isinstance(path, str):
        return False
    try:
        checkpoint_path(path)
    except CheckpointPathRefused:
        return False
    return True


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False
