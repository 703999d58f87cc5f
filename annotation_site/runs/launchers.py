"""How a run's recipe is started on the training worker: plain Python, or `accelerate launch` with
one of the allow-listed accelerate configs and a process count chosen at launch.

The configs are YAML files: the shipped ones in training/accelerate/ and those an admin puts in
the folders RUN_ACCELERATE_CONFIG_DIRS names (on the training workers and the web alike). A launch
names a config by its file name; the path is looked up here, never taken from the web.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

from annotation_site.runs.configs import ConfigInvalid, recipe_module

SHIPPED_DIR = Path(settings.BASE_DIR) / "training" / "accelerate"
# Processes a launch may ask for (all machines together): GPU counts of 1 to 8 machines of 8.
PROCESS_COUNTS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class AccelerateConfig:
    name: str  # file name, e.g. "deepspeed_zero3.yaml"
    path: Path
    distributed_type: str  # NO, MULTI_GPU, MULTI_CPU, DEEPSPEED, FSDP, ...
    num_machines: int
    num_processes: int  # the file's own default
    description: str  # the header comment's first line


def accelerate_configs() -> dict[str, AccelerateConfig]:
    """The configs a launch may pick, by file name; a shipped name wins over an admin's."""
    configs: dict[str, AccelerateConfig] = {}
    for folder in [SHIPPED_DIR, *(Path(d) for d in settings.RUN_ACCELERATE_CONFIG_DIRS)]:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            if path.name in configs:
                continue
            try:
                data = yaml.safe_load(path.read_text())
            except yaml.YAMLError:
                continue  # not listed; the admin sees it missing from the form
            if not isinstance(data, dict) or "distributed_type" not in data:
                continue
            header = next((line for line in path.read_text().splitlines() if line.startswith("#")), "#")
            configs[path.name] = AccelerateConfig(
                name=path.name, path=path.resolve(), distributed_type=str(data["distributed_type"]),
                num_machines=int(data.get("num_machines") or 1), num_processes=int(data.get("num_processes") or 1),
                description=header.lstrip("# ").strip(),
            )
    return configs


def check_launch_choice(*, recipe: str, accelerate_config: str, num_processes: int | None) -> None:
    """Refuse, naming the form field, a config that is not listed or does not suit the recipe, or
    a process count that does not fit it."""
    if not accelerate_config:
        if num_processes is not None:
            raise ConfigInvalid("A process count needs an accelerate config: choose one.", field="num_processes")
        return
    config = accelerate_configs().get(accelerate_config)
    if config is None:
        raise ConfigInvalid(
            f'No accelerate config "{accelerate_config}": choose one of {", ".join(accelerate_configs())}.',
            field="accelerate_config",
        )
    # A recipe that cannot run under some distributed types names them beside its Config (PPO).
    module = recipe_module(recipe)
    if config.distributed_type in getattr(module, "UNSUPPORTED_DISTRIBUTED_TYPES", ()):
        raise ConfigInvalid(f"{module.UNSUPPORTED_REASON}: choose another than {config.name}.", field="accelerate_config")
    if num_processes is None:
        return
    if num_processes not in PROCESS_COUNTS:
        raise ConfigInvalid(
            f"{num_processes} processes: choose one of {', '.join(map(str, PROCESS_COUNTS))}.", field="num_processes"
        )
    if config.distributed_type == "NO" and num_processes != 1:
        raise ConfigInvalid(f"{config.name} runs one process; choose a distributed config for {num_processes}.", field="num_processes")
    if num_processes % config.num_machines:
        raise ConfigInvalid(
            f"{num_processes} processes do not split evenly over the {config.num_machines} machines of {config.name}.",
            field="num_processes",
        )


def recipe_command(*, recipe: str, launch_config: Path, accelerate_config: str, num_processes: int | None) -> list[str]:
    """The training worker's command for a run: `accelerate launch --config_file ...` when the run
    chose a config, else RUN_LAUNCHER (admin setting), else this Python."""
    module = ["-m", f"training.{recipe}", "--config", str(launch_config)]
    if accelerate_config:
        config = accelerate_configs().get(accelerate_config)
        if config is None:  # removed after the launch
            raise ConfigInvalid(f'The accelerate config "{accelerate_config}" is no longer installed on this worker.')
        accelerate = Path(sys.executable).parent / "accelerate"
        head = [str(accelerate)] if accelerate.is_file() else [sys.executable, "-m", "accelerate.commands.launch"]
        if accelerate.is_file():
            head.append("launch")
        count = ["--num_processes", str(num_processes)] if num_processes else []
        return [*head, "--config_file", str(config.path), *count, *module]
    return [*(shlex.split(settings.RUN_LAUNCHER) or [sys.executable]), *module]
