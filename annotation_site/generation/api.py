"""The checkpoint and deployment API (admins and researchers): one view per operation."""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_site.accounts.models import Role
from annotation_site.accounts.permissions import HasRole
from annotation_site.errors import NotFound
from annotation_site.generation import selectors, services
from annotation_site.generation.serializers import (
    CheckpointCreateInputSerializer,
    CheckpointOutputSerializer,
    CheckpointRegisteredSerializer,
    CheckpointRegisterInputSerializer,
    CheckpointUpdateInputSerializer,
    DeploymentCreateInputSerializer,
    DeploymentOutputSerializer,
    DeploymentUpdateInputSerializer,
    FillEnqueuedSerializer,
    GenerationStatusSerializer,
)


class CanManageServing(HasRole):
    roles = (Role.ADMIN, Role.RESEARCHER)
    message = "Only admins and researchers manage checkpoints and deployments."


def _valid(serializer_class, data, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _checkpoint(checkpoint_id: int):
    checkpoint = selectors.checkpoint_list().filter(pk=checkpoint_id).first()
    if checkpoint is None:
        raise NotFound(f"No checkpoint {checkpoint_id}.")
    return checkpoint


def _deployment(deployment_id: int):
    deployment = selectors.deployment_list().filter(pk=deployment_id).first()
    if deployment is None:
        raise NotFound(f"No deployment {deployment_id}.")
    return deployment


class CheckpointListApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(responses=CheckpointOutputSerializer(many=True), summary="List checkpoints, newest first")
    def get(self, request):
        return Response(CheckpointOutputSerializer(selectors.checkpoint_list(), many=True).data)

    @extend_schema(request=CheckpointCreateInputSerializer, responses=CheckpointOutputSerializer, summary="Add a checkpoint")
    def post(self, request):
        checkpoint = services.checkpoint_create(**_valid(CheckpointCreateInputSerializer, request.data))
        return Response(CheckpointOutputSerializer(checkpoint).data, status=201)


class CheckpointRegisterApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(
        request=CheckpointRegisterInputSerializer,
        responses=CheckpointRegisteredSerializer,
        summary="Register a training run's output folder (inside the checkpoint roots) as a checkpoint",
    )
    def post(self, request):
        checkpoint = services.checkpoint_register(**_valid(CheckpointRegisterInputSerializer, request.data))
        return Response(CheckpointRegisteredSerializer(checkpoint).data, status=201)


class CheckpointDetailApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(responses=CheckpointOutputSerializer, summary="One checkpoint")
    def get(self, request, checkpoint_id: int):
        return Response(CheckpointOutputSerializer(_checkpoint(checkpoint_id)).data)

    @extend_schema(request=CheckpointUpdateInputSerializer, responses=CheckpointOutputSerializer, summary="Rename, re-parent or annotate a checkpoint")
    def patch(self, request, checkpoint_id: int):
        data = _valid(CheckpointUpdateInputSerializer, request.data, partial=True)
        checkpoint = services.checkpoint_update(checkpoint=_checkpoint(checkpoint_id), data=data)
        return Response(CheckpointOutputSerializer(checkpoint).data)


class DeploymentListApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(responses=DeploymentOutputSerializer(many=True), summary="List deployments")
    def get(self, request):
        return Response(DeploymentOutputSerializer(selectors.deployment_list(), many=True).data)

    @extend_schema(
        request=DeploymentCreateInputSerializer,
        responses=DeploymentOutputSerializer,
        summary="Deploy a checkpoint: local engine, an existing vLLM endpoint, or launch a vLLM server",
    )
    def post(self, request):
        deployment = services.deployment_create(**_valid(DeploymentCreateInputSerializer, request.data))
        return Response(DeploymentOutputSerializer(deployment).data, status=201)


class DeploymentDetailApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(responses=DeploymentOutputSerializer, summary="One deployment")
    def get(self, request, deployment_id: int):
        return Response(DeploymentOutputSerializer(_deployment(deployment_id)).data)

    @extend_schema(request=DeploymentUpdateInputSerializer, responses=DeploymentOutputSerializer, summary="Enable, disable or re-point a deployment")
    def patch(self, request, deployment_id: int):
        data = _valid(DeploymentUpdateInputSerializer, request.data, partial=True)
        deployment = services.deployment_update(deployment=_deployment(deployment_id), data=data)
        return Response(DeploymentOutputSerializer(deployment).data)


class DeploymentHealthCheckApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(
        request=None, responses={202: DeploymentOutputSerializer},
        summary="Ask a worker to check a deployment's health; answers with the last known health",
    )
    def post(self, request, deployment_id: int):
        deployment = services.deployment_request_health_check(deployment=_deployment(deployment_id))
        return Response(DeploymentOutputSerializer(deployment).data, status=202)


class DeploymentStopServerApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(
        request=None, responses=DeploymentOutputSerializer,
        summary="Disable the deployment and have the serving worker that launched its vLLM server stop it",
    )
    def post(self, request, deployment_id: int):
        deployment = services.deployment_stop_server(deployment=_deployment(deployment_id))
        return Response(DeploymentOutputSerializer(deployment).data)


class GenerationStatusApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(responses=GenerationStatusSerializer, summary="Ready and waiting items per guideline, usable deployments")
    def get(self, request):
        status = selectors.generation_status(target=settings.GENERATION_READY_TARGET)
        return Response(GenerationStatusSerializer(status).data)


class GenerationFillApi(APIView):
    permission_classes = [CanManageServing]

    @extend_schema(request=None, responses=FillEnqueuedSerializer, summary="Fill the annotation queue now")
    def post(self, request):
        return Response(FillEnqueuedSerializer({"task_id": services.queue_fill_enqueue()}).data, status=202)
