"""The loop's API (researchers and admins): one view per operation."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import HasRole
from annotation_site.generation.canary import PROMOTE, ROLLBACK
from annotation_site.loop import selectors
from annotation_site.loop.models import Trigger
from annotation_site.loop.serializers import CanaryDecisionInputSerializer, LoopIterationOutputSerializer
from annotation_site.loop.services import iterations


class CanRunTheLoop(HasRole):
    roles = (Role.RESEARCHER, Role.ADMIN)
    message = "Only researchers and admins run the weekly loop."


class IterationListApi(APIView):
    permission_classes = [CanRunTheLoop]

    @extend_schema(responses=LoopIterationOutputSerializer(many=True), summary="Iterations of every loop, newest first")
    def get(self, request):
        found = selectors.iteration_list().prefetch_related("steps")[:200]
        return Response(LoopIterationOutputSerializer(found, many=True).data)


class IterationDetailApi(APIView):
    permission_classes = [CanRunTheLoop]

    @extend_schema(responses=LoopIterationOutputSerializer, summary="One iteration with its steps, gates and decision")
    def get(self, request, iteration_id: int):
        return Response(LoopIterationOutputSerializer(selectors.iteration_get(iteration_id)).data)


class RunNowApi(APIView):
    permission_classes = [CanRunTheLoop]

    @extend_schema(request=None, responses=LoopIterationOutputSerializer, summary='Start an iteration of a loop now ("run now")')
    def post(self, request, definition_id: int):
        iteration = iterations.iteration_start(definition=selectors.definition_get(definition_id), trigger=Trigger.MANUAL,
                                               started_by=request.user)
        return Response(LoopIterationOutputSerializer(iteration).data, status=201)


class IterationRetryApi(APIView):
    permission_classes = [CanRunTheLoop]

    @extend_schema(request=None, responses=LoopIterationOutputSerializer, summary="Retry a failed iteration from its failed step")
    def post(self, request, iteration_id: int):
        iteration = iterations.iteration_retry(iteration=selectors.iteration_get(iteration_id), actor=request.user)
        return Response(LoopIterationOutputSerializer(iteration).data, status=202)


class IterationCancelApi(APIView):
    permission_classes = [CanRunTheLoop]

    @extend_schema(request=None, responses=LoopIterationOutputSerializer, summary="Cancel an iteration and its running step")
    def post(self, request, iteration_id: int):
        iteration = iterations.iteration_cancel(iteration=selectors.iteration_get(iteration_id), actor=request.user)
        return Response(LoopIterationOutputSerializer(iteration).data, status=202)


class CanaryPromoteApi(APIView):
    permission_classes = [CanRunTheLoop]

    @extend_schema(request=CanaryDecisionInputSerializer, responses=LoopIterationOutputSerializer,
                   summary="Promote the iteration's running canary now, by hand, with a reason")
    def post(self, request, iteration_id: int):
        return _canary_decide(request, iteration_id, PROMOTE)


class CanaryRollbackApi(APIView):
    permission_classes = [CanRunTheLoop]

    @extend_schema(request=CanaryDecisionInputSerializer, responses=LoopIterationOutputSerializer,
                   summary="Roll the iteration's running canary back now, by hand, with a reason")
    def post(self, request, iteration_id: int):
        return _canary_decide(request, iteration_id, ROLLBACK)


def _canary_decide(request, iteration_id: int, decision: str) -> Response:
    iteration = selectors.iteration_get(iteration_id)
    data = CanaryDecisionInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    iteration = iterations.iteration_canary_decide(iteration=iteration, decision=decision, reason=data.validated_data["reason"],
                                                   actor=request.user)
    return Response(LoopIterationOutputSerializer(iteration).data)
