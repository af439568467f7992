#!/usr/bin/env bash
# The GPU check (issues 18, 24): one unattended command for whoever has a GPU, ~10 minutes.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        # default gpu_check/; PYTHON=... to pick one
#
# Runs, in order, and stops at the first failure (non-zero exit, the failing step named):
#   1. the CUDA copies of the op and model tests (pytest -k cuda: the device=cuda cases);
#   2. bench_op.py --device cuda (the deformable op against torchvision's);
#   3. bench_models.py --device cuda in float32, and with the GPU preset's settings
#      (bf16, channels_last, compile) for ResNet-50, ECA and DEFCON;
#   4. bench_launches.py (kernels per train step, eager, model.kernels=aten and =triton;
#      counted on the CPU side);
#   5. gpu_kernels.py: ATen vs Triton kernels, eager and compiled, for one block's attention
#      op and for the whole train step (float32, and the trainer=gpu preset), and the
#      decision table: which model.kernels the default should be (issue 24);
#   6. a 200-step DEFCON training with trainer=gpu on the synthetic set (no download);
# and writes OUT_DIR/report.md: GPU, versions, every table, and the estimated time of the
# paper's 200-epoch CIFAR-100 run per model (bench_models' column, and the measured rate of
# the 200-step training run). Send report.md back (docs/benchmarks.md, "GPU check").
# Without a visible CUDA device it refuses before doing anything (exit 2).
set -euo pipefail

PYTHON="${PYTHON:-python}"
OUT="${1:-gpu_check}"

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device visible (torch.cuda.is_available() is False in $PYTHON); run it on a machine with a GPU" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
REPORT="$OUT/report.md"
STEP="setup"
trap 'echo "gpu_check: FAILED at step: $STEP (see $OUT/*.log; partial report $REPORT)" >&2' ERR
cd "$ROOT"
START=$(date +%s)

# section TITLE LOGNAME COMMAND...: run COMMAND, keep its output in OUT/LOGNAME.log and in
# the report under TITLE with the command line
section() {
    local title="$1" log="$OUT/$2.log"
    shift 2
    STEP="$title"
    echo "== $title: $*" >&2
    "$@" 2>&1 | tee "$log" >&2
    {
        printf '\n## %s\n\n    %s\n\n' "$title" "$*"
        grep -E '^(\||#)' "$log" || tail -n 20 "$log" | sed 's/^/    /'
    } >>"$REPORT"
}

{
    echo "# GPU check report"
    echo
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    "$PYTHON" - <<'PY'
import platform, torch, torchvision
props = torch.cuda.get_device_properties(0)
print(f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}, {torch.cuda.device_count()} visible")
print(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, torchvision {torchvision.__version__}, Python {platform.python_version()}")
try:
    import triton
    print(f"- triton {triton.__version__}")
except ImportError:
    print("- triton: not installed (torch.compile falls back to eager kernels)")
print(f"- CPU: {platform.processor() or platform.machine()}")
PY
} >"$REPORT"

section "CUDA tests (the Triton kernels' included)" tests "$PYTHON" -m pytest -q -x -k cuda \
    -p no:cacheprovider tests/ops tests/models/test_layout_and_autocast.py
section "The op on CUDA" bench_op "$PYTHON" scripts/bench_op.py --device cuda --rounds 10
section "Train step, float32" bench_models_fp32 "$PYTHON" scripts/bench_models.py --device cuda \
    --batch-size 128 --rounds 5
section "Train step, GPU preset (bf16, channels_last, compile)" bench_models_gpu \
    "$PYTHON" scripts/bench_models.py --device cuda --batch-size 128 --rounds 5 \
    --precision bf16 --channels-last --compile --models resnet50 eca defcon
section "Kernel launches per train step (eager, float32)" bench_launches \
    "$PYTHON" scripts/bench_launches.py --kernels aten triton
section "ATen vs Triton kernels: the op, the step, the decision" gpu_kernels \
    "$PYTHON" scripts/gpu_kernels.py --batch 128 --rounds 20
section "200-step DEFCON training, trainer=gpu" train \
    "$PYTHON" -m defcon_exp.cli.train trainer=gpu model=defcon data=synthetic \
    data.train_size=25600 data.test_size=2560 data.batch_size=128 \
    trainer.epochs=1 trainer.progress=false trainer.histograms_every_n_epochs=0 \
    "hydra.run.dir=$OUT/train_run"

STEP="report"
"$PYTHON" - "$OUT/train_run/summary.json" >>"$REPORT" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
rate = summary["images_per_s"]
# the paper's run: 200 epochs of 50,000 training images (test passes not included)
hours = 200 * 50_000 / rate / 3600
print("\n## 200-epoch estimate from the 200-step run\n")
print(f"DEFCON, trainer=gpu: {rate:,.0f} training images/s over 200 steps of 128 (the first "
      f"steps include compilation) -> the paper's 200 epochs of 50,000 images: {hours:.1f} h "
      "(training steps only; bench_models' '200-epoch' column adds the test passes).")
PY
echo -e "\nTotal time of the check: $(( $(date +%s) - START )) s" >>"$REPORT"
echo "gpu_check: done; report: $REPORT" >&2
