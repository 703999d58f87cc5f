from auditlog.middleware import AuditlogMiddleware
from django.utils.functional import SimpleLazyObject


class AuditlogActorMiddleware(AuditlogMiddleware):
    """auditlog's middleware, with the actor read when the first entry of the request is written.

    auditlog reads `request.user` when the request comes in; a request authenticated by an API
    token is still anonymous then (DRF authenticates inside the view, and then sets `request.user`
    on the Django request). Read lazily, the token's user is the actor too.
    """

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: request.user if request.user.is_authenticated else None)
