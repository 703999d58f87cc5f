"""The quality API: the per-annotator figures and the summary of the dashboard, for scripts."""
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_site.quality import selectors
from annotation_site.quality.permissions import CanReadQuality
from annotation_site.quality.serializers import AnnotatorQualityOutput, QualityQuery


def _report(request):
    query = QualityQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    return selectors.quality_report(guideline_kind=data.get("guideline"), since=data.get("since"), until=data.get("until"))


class AnnotatorQualityApi(APIView):
    permission_classes = [CanReadQuality]

    @extend_schema(parameters=[QualityQuery], responses=AnnotatorQualityOutput(many=True))
    def get(self, request):
        return Response(AnnotatorQualityOutput(_report(request).annotators, many=True).data)


class QualitySummaryApi(APIView):
    permission_classes = [CanReadQuality]

    @extend_schema(parameters=[QualityQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(_report(request).summary)
