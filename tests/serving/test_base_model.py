import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from serving.base_model import MARKER, BaseModelError, main, prepare_base_model


def test_a_local_checkpoint_is_written_as_a_normal_folder_and_then_reused(tiny_model_dir, tmp_path):
    out = prepare_base_model(tmp_path / "base", source=tiny_model_dir)
    assert json.loads((out / MARKER).read_text())["source"] == str(tiny_model_dir)
    assert AutoTokenizer.from_pretrained(out).chat_template
    weights = out / "model.safetensors"
    written_at = weights.stat().st_mtime_ns
    assert prepare_base_model(tmp_path / "base", source=tiny_model_dir) == out
    assert weights.stat().st_mtime_ns == written_at
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_the_cache_location_follows_rlhf_loop_cache(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_LOOP_CACHE", str(tmp_path))
    out = prepare_base_model(source=tiny_model_dir)
    assert out.parent == tmp_path / "base-models"


def test_a_folder_that_is_not_a_prepared_checkpoint_is_never_overwritten(tiny_model_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(BaseModelError, match="not a prepared checkpoint"):
        prepare_base_model(tmp_path / "taken", source=tiny_model_dir)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_the_command_line_says_what_is_wrong_with_a_source(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--source", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_smollm2_from_the_gguf_package_is_a_real_chat_model(smollm2_dir):
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["head_dim"] == 64 and "quantization_config" not in config
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert os.access(smollm2_dir, os.R_OK | os.X_OK)
