"""The batches API: one view per operation; services do the work."""
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_site.batches import selectors, services
from annotation_site.batches.permissions import CanManageBatches, CanReadBatches
from annotation_site.batches.serializers import BatchCloseInput, BatchOutput


class BatchListApi(APIView):
    permission_classes = [CanReadBatches]

    @extend_schema(responses=BatchOutput(many=True))
    def get(self, request):
        return Response(BatchOutput(selectors.batch_list(), many=True).data)


class BatchDetailApi(APIView):
    permission_classes = [CanReadBatches]

    @extend_schema(responses=BatchOutput)
    def get(self, request, batch_id: int):
        return Response(BatchOutput(selectors.batch_get(batch_id)).data)


class BatchCloseApi(APIView):
    permission_classes = [CanManageBatches]

    @extend_schema(request=BatchCloseInput, responses={201: BatchOutput, 200: BatchOutput})
    def post(self, request):
        data = BatchCloseInput(data=request.data)
        data.is_valid(raise_exception=True)
        batch, created = services.batch_close(week=data.validated_data.get("week") or None, actor=request.user)
        return Response(BatchOutput(batch).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class BatchReexportApi(APIView):
    permission_classes = [CanManageBatches]

    @extend_schema(request=None, responses={202: BatchOutput})
    def post(self, request, batch_id: int):
        batch = services.batch_reexport(batch=selectors.batch_get(batch_id), actor=request.user)
        return Response(BatchOutput(batch).data, status=status.HTTP_202_ACCEPTED)
