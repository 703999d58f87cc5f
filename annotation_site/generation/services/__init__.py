"""Writes of the generation domain, one module per sub-domain: the checkpoint registry
(`checkpoints`), deployments, their health and launched servers (`deployments`), filling the
annotation queue with sampled pairs (`filling`), choosing the pair among candidates with the reward
models (`selecting`, active selection), and the demo's serving set-up (`demo`).

Every function takes keyword-only arguments and raises `ApplicationError` (or a subclass) with a
message that says what was wrong; views, tasks and commands validate, call one of these, return.
Callers import this package (`services.queue_fill(...)`); the public names are re-exported here.
"""
from annotation_site.generation.services.checkpoints import (
    CONFIG_MAX_BYTES,
    PARENT_CONFIG_KEYS,
    checkpoint_create,
    checkpoint_register,
    checkpoint_update,
)
from annotation_site.generation.services.deployments import (
    deployment_check_health,
    deployment_create,
    deployment_launch_server,
    deployment_record_failure,
    deployment_record_success,
    deployment_request_health_check,
    deployment_stop_launched_server,
    deployment_stop_server,
    deployment_update,
    deployments_check_health,
    endpoint_url_check,
)
from annotation_site.generation.services.filling import (
    FillReport,
    GenerationFailed,
    claim_retry,
    items_claim_for_generation,
    queue_fill,
    queue_fill_enqueue,
)
from annotation_site.generation.services.selecting import pairs_select
from annotation_site.generation.services.demo import DEMO_CHECKPOINT_NAME, demo_serving_setup

__all__ = [
    "CONFIG_MAX_BYTES",
    "DEMO_CHECKPOINT_NAME",
    "FillReport",
    "GenerationFailed",
    "PARENT_CONFIG_KEYS",
    "checkpoint_create",
    "checkpoint_register",
    "checkpoint_update",
    "claim_retry",
    "demo_serving_setup",
    "deployment_check_health",
    "deployment_create",
    "deployment_launch_server",
    "deployment_record_failure",
    "deployment_record_success",
    "deployment_request_health_check",
    "deployment_stop_launched_server",
    "deployment_stop_server",
    "deployment_update",
    "deployments_check_health",
    "endpoint_url_check",
    "items_claim_for_generation",
    "pairs_select",
    "queue_fill",
    "queue_fill_enqueue",
]
