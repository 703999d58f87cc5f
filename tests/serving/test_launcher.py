import json
import sys
from pathlib import Path

import pytest

from serving.launcher import CPU, OFFICIAL, LaunchError, ServerConfig, VLLMServer, build_command, vllm_flavor
from tests.support.vllm_server import START_TIMEOUT_S, vllm_python


def test_the_official_package_is_started_with_vllm_serve_and_gpu_settings(tiny_model_dir, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vllm").write_text("#!/bin/sh\n")
    config = ServerConfig(
        model_path=str(tiny_model_dir), port=8123, tensor_parallel_size=4, gpu_memory_utilization=0.85,
        served_model_name="policy-v3",
    )
    command, env = build_command(config, bin_dir / "python", OFFICIAL)
    assert command[:3] == [str(bin_dir / "vllm"), "serve", str(tiny_model_dir)]
    assert command[command.index("--tensor-parallel-size") + 1] == "4"
    assert command[command.index("--gpu-memory-utilization") + 1] == "0.85"
    assert command[command.index("--dtype") + 1] == "auto"
    assert command[command.index("--served-model-name") + 1] == "policy-v3"
    assert env == {}


def test_the_cpu_build_is_started_as_a_module_with_float32_and_its_cpu_settings(tiny_model_dir):
    config = ServerConfig(model_path=str(tiny_model_dir), port=8124, enforce_eager=True, cpu_omp_threads_bind="0-1")
    command, env = build_command(config, Path("/venv/bin/python"), CPU)
    assert command[:5] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir)]
    assert command[command.index("--dtype") + 1] == "float32"
    assert "--enforce-eager" in command and "--tensor-parallel-size" not in command
    assert "serve" not in command
    assert "--no-enable-chunked-prefill" in command  # seeded requests crash chunked prefill on CPU
    assert command[command.index("--max-num-batched-tokens") + 1] == str(config.max_model_len)
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1"}


def test_a_folder_without_a_checkpoint_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(LaunchError, match="no config.json"):
        ServerConfig(model_path=str(tmp_path), port=8125)


def test_the_project_python_has_no_vllm():
    assert vllm_flavor(Path(sys.executable)) is None


@pytest.mark.vllm
def test_the_provisioned_vllm_is_the_cpu_build():
    assert vllm_flavor(vllm_python()) == CPU


@pytest.mark.vllm
def test_a_server_that_fails_to_start_reports_the_end_of_its_log_and_leaves_nothing_running(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["head_dim"] = 24  # vLLM's attention kernels refuse this head size
    config["hidden_size"] = 48
    (broken / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "model.safetensors"):
        if (tiny_model_dir / name).exists():
            (broken / name).write_bytes((tiny_model_dir / name).read_bytes())
    server = VLLMServer(ServerConfig(model_path=str(broken), port=8199, enforce_eager=True), python=vllm_python(), log_path=tmp_path / "vllm.log")
    with pytest.raises(LaunchError) as failure:
        server.start(START_TIMEOUT_S)
    assert "vLLM exited with code" in str(failure.value)
    assert str(tmp_path / "vllm.log") in str(failure.value)
    assert len(str(failure.value).splitlines()) > 3  # the log's tail is in the message
    assert not server.is_running()
