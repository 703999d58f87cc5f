"""The annotation REST API: one view per operation, each validating input and calling one service."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_site.accounts.permissions import CanAnnotate, CanQueuePrompts
from annotation_site.annotation import selectors, services
from annotation_site.annotation.models import Assignment
from annotation_site.annotation.serializers import (
    AssignmentOutputSerializer,
    ComparisonAmendInputSerializer,
    ComparisonInputSerializer,
    ComparisonOutputSerializer,
    ContinueInputSerializer,
    DemonstrationInputSerializer,
    DemonstrationOutputSerializer,
    NextItemInputSerializer,
    NextItemOutputSerializer,
    ProgressOutputSerializer,
    PromptInputSerializer,
    QueuedItemOutputSerializer,
    QueuePromptsInputSerializer,
    QueuePromptsOutputSerializer,
    QueueStatusSerializer,
    SkipInputSerializer,
    SkipOutputSerializer,
    assignment_data,
    comparison_data,
    comparison_input,
)
from annotation_site.errors import NotFound
from annotation_site.parsers import JSONParser


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _own_assignment(request, assignment_id: int):
    assignment = selectors.assignment_get_for(assignment_id=assignment_id, annotator=request.user)
    if assignment is None:
        # The same answer whether it does not exist or belongs to someone else.
        raise NotFound("No such assignment of yours.")
    return assignment


def _assignment_ref(assignment_id: int) -> Assignment:
    """The assignment named in the URL, unloaded: write services lock it and check it is the
    annotator's own (404 otherwise), so reading it here first would only cost a query."""
    return Assignment(pk=assignment_id)


def next_item_payload(*, annotator, guideline_kind=None, task_kind=None) -> dict:
    """Claim the annotator's next item (shared with the page).

    The queue status comes with it only when there is no item: it is what a waiting page shows, and
    counting the queue on every claim would cost more than the claim itself.
    """
    assignment = services.assignment_claim_next(annotator=annotator, guideline_kind=guideline_kind, task_kind=task_kind)
    if assignment is not None:
        return {"assignment": assignment_data(assignment), "queue": None}
    queue = selectors.queue_status(annotator=annotator, guideline_kind=guideline_kind)
    return {"assignment": None, "queue": QueueStatusSerializer(queue).data}


def _answer_with_next(request, claim_next: dict | None, answer: dict) -> dict:
    """The answer to a submit or skip, with the annotator's next item when the client asked for it.

    Claimed in the same request (in its own transaction, after the answer is committed), so that a
    steady-state annotation cycle is one request: authentication, the role check and the round
    trip are paid once per item instead of twice.
    """
    if claim_next is not None:
        answer = {**answer, "next": next_item_payload(annotator=request.user, **claim_next)}
    return answer


class HotPathApi(APIView):
    # The endpoints every rated item goes through: JSON in and out only, so no browsable-API
    # renderer or form parsers are negotiated on each request (they cost CPU on the hot path). A
    # comment, not a docstring: the API docs show docstrings to clients.

    permission_classes = [CanAnnotate]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]


class NextItemApi(HotPathApi):
    @extend_schema(
        request=NextItemInputSerializer, responses=NextItemOutputSerializer, summary="Claim your next item",
        description="Your live claim if you have one (a reload shows the same item), else the most urgent item "
        "you never had. `assignment` is null when nothing is ready; `queue` then says what is being generated.",
    )
    def post(self, request):
        data = _valid(NextItemInputSerializer, request.data)
        return Response(next_item_payload(annotator=request.user, **data))


class AssignmentDetailApi(APIView):
    permission_classes = [CanAnnotate]

    @extend_schema(responses=AssignmentOutputSerializer, summary="One of your assignments")
    def get(self, request, assignment_id: int):
        return Response(AssignmentOutputSerializer(_own_assignment(request, assignment_id)).data)


class ComparisonSubmitApi(HotPathApi):
    @extend_schema(
        request=ComparisonInputSerializer, responses={201: ComparisonOutputSerializer}, summary="Submit your comparison",
        description="Sending the same answer again returns the stored comparison (201). A different answer for an "
        "item you already answered is refused with 409 and the stored answer in `stored`; change it with "
        "`POST /api/comparisons/{id}/amend/`. Give `next` to get your next item in the same response.",
    )
    def post(self, request, assignment_id: int):
        data = comparison_input(request.data)
        claim_next = data.pop("next")
        comparison = services.comparison_submit(
            assignment=_assignment_ref(assignment_id), annotator=request.user, **data
        )
        return Response(_answer_with_next(request, claim_next, comparison_data(comparison)), status=201)


class DemonstrationSubmitApi(HotPathApi):
    @extend_schema(
        request=DemonstrationInputSerializer, responses={201: DemonstrationOutputSerializer},
        summary="Submit your ideal response",
        description="The same text again returns the stored response; a different text for an item you already "
        "answered is refused with 409 and the stored response in `stored`.",
    )
    def post(self, request, assignment_id: int):
        data = _valid(DemonstrationInputSerializer, request.data)
        claim_next = data.pop("next")
        demonstration = services.demonstration_submit(
            assignment=_assignment_ref(assignment_id), annotator=request.user, **data
        )
        answer = DemonstrationOutputSerializer(demonstration).data
        return Response(_answer_with_next(request, claim_next, answer), status=201)


class SkipApi(HotPathApi):
    @extend_schema(
        request=SkipInputSerializer, responses=SkipOutputSerializer, summary="Skip an item, with the reason",
        description="The item goes to someone else and is never given to you again.",
    )
    def post(self, request, assignment_id: int):
        data = _valid(SkipInputSerializer, request.data)
        skipped = services.assignment_skip(
            assignment=_assignment_ref(assignment_id), annotator=request.user, reason=data["reason"]
        )
        return Response(_answer_with_next(request, data["next"], SkipOutputSerializer(skipped).data))


class ProgressApi(APIView):
    permission_classes = [CanAnnotate]

    @extend_schema(responses=ProgressOutputSerializer, summary="Your count this ISO week against your quota")
    def get(self, request):
        return Response(ProgressOutputSerializer(selectors.annotator_progress(annotator=request.user)).data)


class QueueStatusApi(APIView):
    permission_classes = [CanAnnotate]

    @extend_schema(
        parameters=[NextItemInputSerializer], responses=QueueStatusSerializer, summary="How many items are ready for you"
    )
    def get(self, request):
        data = _valid(NextItemInputSerializer, request.query_params)
        status = selectors.queue_status(annotator=request.user, guideline_kind=data.get("guideline_kind"))
        return Response(QueueStatusSerializer(status).data)


class PromptWriteApi(APIView):
    permission_classes = [CanAnnotate]

    @extend_schema(request=PromptInputSerializer, responses=QueuedItemOutputSerializer, summary="Write a new prompt")
    def post(self, request):
        data = _valid(PromptInputSerializer, request.data)
        item = services.prompt_write(annotator=request.user, **data)
        return Response(QueuedItemOutputSerializer(item).data, status=201)


class DialogueContinueApi(APIView):
    permission_classes = [CanAnnotate]

    @extend_schema(
        request=ContinueInputSerializer, responses=QueuedItemOutputSerializer, summary="Continue a dialogue you rated"
    )
    def post(self, request, comparison_id: int):
        data = _valid(ContinueInputSerializer, request.data)
        comparison = selectors.comparison_get_for(comparison_id=comparison_id, annotator=request.user)
        if comparison is None:
            raise NotFound("No such comparison of yours.")
        item = services.dialogue_continue(comparison=comparison, annotator=request.user, message=data["message"])
        return Response(QueuedItemOutputSerializer(item).data, status=201)


class ComparisonAmendApi(APIView):
    permission_classes = [CanAnnotate]

    @extend_schema(
        request=ComparisonAmendInputSerializer,
        responses=ComparisonOutputSerializer,
        summary="Change your comparison while it is in no closed batch (the change is recorded)",
    )
    def post(self, request, comparison_id: int):
        data = _valid(ComparisonAmendInputSerializer, request.data)
        comparison = services.comparison_amend(comparison_id=comparison_id, annotator=request.user, **data)
        return Response(comparison_data(comparison))


class QueuePromptsApi(APIView):
    permission_classes = [CanQueuePrompts]

    @extend_schema(
        request=QueuePromptsInputSerializer,
        responses=QueuePromptsOutputSerializer,
        summary="Queue prompts for comparison or demonstration (admins, researchers)",
    )
    def post(self, request):
        data = _valid(QueuePromptsInputSerializer, request.data)
        items = services.prompts_queue(
            prompts=[
                services.PromptSpec(turns=[dict(t) for t in p["turns"]], guideline_kind=p["guideline_kind"])
                for p in data["prompts"]
            ],
            task_kind=data["task_kind"],
            source_name=data["source_name"],
            priority=data["priority"],
            author=request.user,
        )
        return Response(QueuePromptsOutputSerializer({"item_ids": [item.pk for item in items]}).data, status=201)
