"""Pages of the batches app outside the admin: the zip download of an exported batch."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse

from annotation_site.audit.services import AuditEvent, audit_record
from annotation_site.batches import selectors
from annotation_site.batches.archive import zip_folder_stream
from annotation_site.batches.models import BatchState
from annotation_site.batches.permissions import can_read_batches
from annotation_site.batches.services import batch_folder
from annotation_site.errors import NotFound


@login_required
def batch_download(request, batch_id: int):
    if not can_read_batches(request.user):
        raise PermissionDenied("Only admins and researchers can download batches.")
    try:
        batch = selectors.batch_get(batch_id)
    except NotFound as error:
        raise Http404(error.message) from None
    folder = batch_folder(batch)
    if batch.state != BatchState.EXPORTED or not folder.is_dir():
        raise Http404(f"Batch {batch.week} has no finished export to download yet.")
    audit_record(event=AuditEvent.BATCH_DOWNLOAD, obj=batch, actor=request.user)
    response = StreamingHttpResponse(zip_folder_stream(folder, root=batch.week), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="batch-{batch.week}.zip"'
    return response
