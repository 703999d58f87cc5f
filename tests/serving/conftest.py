from tests.support.vllm_server import smollm2_vllm, tiny_vllm  # noqa: F401 (session fixtures)
