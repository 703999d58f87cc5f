"""The training-runs API (researchers and admins): one view per operation."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import HasRole
from annotation_site.errors import ApplicationError
from annotation_site.generation.serializers import DeploymentOutputSerializer
from annotation_site.runs import artifacts, launchers, selectors, services
from annotation_site.runs.configs import shipped_configs
from annotation_site.runs.models import Recipe, TrainingRun
from annotation_site.runs.serializers import (
    AccelerateConfigSerializer,
    CompareInputSerializer,
    ComparisonSerializer,
    RunDeployInputSerializer,
    RunLaunchInputSerializer,
    RunOutputSerializer,
    RunProgressSerializer,
    ShippedConfigSerializer,
)


class CanRunTraining(HasRole):
    roles = (Role.RESEARCHER, Role.ADMIN)
    message = "Only researchers and admins launch and watch training runs."


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class RunListApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(responses=RunOutputSerializer(many=True), summary="List training runs, newest first")
    def get(self, request):
        return Response(RunOutputSerializer(selectors.run_list()[:500], many=True).data)

    @extend_schema(
        request=RunLaunchInputSerializer, responses=RunOutputSerializer,
        summary="Launch a run: the config is checked now, the training worker runs it",
    )
    def post(self, request):
        run = services.run_launch(**_valid(RunLaunchInputSerializer, request.data), launched_by=request.user)
        return Response(RunOutputSerializer(run).data, status=201)


class RunDetailApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(responses=RunOutputSerializer, summary="One training run")
    def get(self, request, run_id: int):
        return Response(RunOutputSerializer(selectors.run_get(run_id)).data)


class RunProgressApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(responses=RunProgressSerializer, summary="Status, progress and log tail of a run (polled by its page)")
    def get(self, request, run_id: int):
        run: TrainingRun = selectors.run_get(run_id)
        run.log_tail = artifacts.log_tail(run)
        return Response(RunProgressSerializer(run).data)


class RunEvalApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(responses=dict, summary="The eval.json a run wrote")
    def get(self, request, run_id: int):
        evaluation = artifacts.eval_results(selectors.run_get(run_id))
        if evaluation is None:
            raise ApplicationError(f"Run {run_id} has written no eval.json (yet).")
        return Response(evaluation)


class RunCancelApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(request=None, responses=RunOutputSerializer, summary="Cancel a queued or running run")
    def post(self, request, run_id: int):
        run = services.run_cancel(run=selectors.run_get(run_id), actor=request.user)
        return Response(RunOutputSerializer(run).data, status=202)


class RunDeployApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(request=RunDeployInputSerializer, responses=DeploymentOutputSerializer, summary="Deploy a succeeded run's checkpoint")
    def post(self, request, run_id: int):
        run = selectors.run_get(run_id)
        deployment = services.run_deploy(run=run, **_valid(RunDeployInputSerializer, request.data))
        return Response(DeploymentOutputSerializer(deployment).data, status=201)


class ShippedConfigListApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(
        parameters=[OpenApiParameter("recipe", str, enum=Recipe.values, required=False)],
        responses=ShippedConfigSerializer(many=True), summary="Shipped configs of training/configs/, by recipe",
    )
    def get(self, request):
        recipe = request.query_params.get("recipe") or None
        if recipe is not None and recipe not in Recipe.values:
            raise ApplicationError(f'Unknown recipe "{recipe}": use one of {", ".join(Recipe.values)}.')
        return Response(ShippedConfigSerializer(shipped_configs(recipe), many=True).data)


class AccelerateConfigListApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(
        responses=AccelerateConfigSerializer(many=True),
        summary="Accelerate configs a launch may pick (training/accelerate/ and RUN_ACCELERATE_CONFIG_DIRS)",
    )
    def get(self, request):
        return Response(AccelerateConfigSerializer(launchers.accelerate_configs().values(), many=True).data)


class RewardModelCompareApi(APIView):
    permission_classes = [CanRunTraining]

    @extend_schema(
        parameters=[CompareInputSerializer], responses=ComparisonSerializer,
        summary="Held-out accuracy of reward-model runs side by side (Tables 7 and 8)",
    )
    def get(self, request):
        ids = _valid(CompareInputSerializer, {"run": request.query_params.getlist("run")})["run"]
        runs = sorted(selectors.comparable_reward_model_runs().filter(pk__in=ids), key=lambda run: ids.index(run.pk))
        missing = sorted(set(ids) - {run.pk for run in runs})
        if missing:
            raise ApplicationError(f"Not succeeded reward-model runs: {', '.join(map(str, missing))}.")
        return Response(ComparisonSerializer(selectors.reward_model_comparison(runs)).data)
