from auditlog.middleware import AuditlogMiddleware
from django.utils.functional import SimpleLazyObject

from annotation_site.accounts.throttling import client_address


class AuditlogActorMiddleware(AuditlogMiddleware):
    """auditlog's middleware, with the actor read when the first entry of the request is written.

    auditlog reads `request.user` when the request comes in; a request authenticated by an API
    token is still anonymous then (DRF authenticates inside the view, and then sets `request.user`
    on the Django request). Read lazily, the token's user is the actor too. The address is the
    one login throttling uses (auditlog's own takes the left-most X-Forwarded-For entry, which the
    client can write).
    """

    @staticmethod
    def _get_remote_addr(request):
        return client_address(request)

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: request.user if request.user.is_authenticated else None)
