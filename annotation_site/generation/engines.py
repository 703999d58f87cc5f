"""The engine that answers for a deployment: a vLLM client, or the local engine in this process."""
from __future__ import annotations

from django.conf import settings

from annotation_site.generation.models import Deployment, Engine
from serving.client import VLLMClient
from serving.endpoints import check_endpoint_url
from serving.types import ChatEngine


def engine_for(deployment: Deployment) -> ChatEngine:
    """The engine for a deployment; raises serving.endpoints.EndpointRefused (a ValueError) for an
    endpoint SERVING_ALLOWED_HOSTS does not allow (e.g. changed in the database, or a name that
    now resolves to a metadata address)."""
    if deployment.engine == Engine.VLLM:
        check_endpoint_url(deployment.endpoint_url, settings.SERVING_ALLOWED_HOSTS)
        return VLLMClient(
            deployment.endpoint_url,
            deployment.model_name,
            timeout_s=settings.GENERATION_REQUEST_TIMEOUT_S,
            max_retries=settings.GENERATION_CLIENT_RETRIES,
        )
    # Imported here: it pulls in torch and transformers, which the web process never needs.
    from serving.local_engine import local_engine

    # Loaded once per worker process and kept (serving.local_engine caches it).
    return local_engine(
        deployment.checkpoint.path, model_name=deployment.model_name, batch_size=settings.LOCAL_ENGINE_BATCH_SIZE
    )
