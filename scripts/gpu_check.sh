#!/usr/bin/env bash
# The GPU check: what a maintainer with one CUDA GPU runs before a release (about 8 minutes; see
# docs/performance.md). From the repository root:
#
#     scripts/gpu_check.sh                      # writes outputs/gpu_check/
#     scripts/gpu_check.sh /tmp/gpu_check       # another output folder
#     BUDGET_S=900 DATASETS="ucf12" scripts/gpu_check.sh
#
# With CUDA, in this order (the heaviest last, so that the time budget cuts those first):
#   1. pytest -m cuda (exit 5, "no test collected", counts as ok)
#   2. DM, IDTD, DAViD: 20 iterations on toy-actions at 112x112x16, --mixed_precision no and bf16
#   3. a 2-class Latte pool: a tiny Latte (hf_vdd.diffusion.tiny_latte_pipeline) over 2 ucf12 classes, pool and
#      selection through recipes/diffusion_select.py
#   4. fp32 against bf16 distilled sets (issue 15: within 2 points): DM on toy-actions at 16x32x32, IPC 5, 200
#      iterations, --mixed_precision no and bf16, each set evaluated by 3 fp32 students of 300 steps
#   5. python recipes/speed.py --device cuda --threads 1 --isolate false, the three default shapes and issue 15's
#      50 classes at 112x112x16 (one Python for all cases: the imports are paid once; peak CUDA memory is per case)
#   6. the runs of step 2 on ucf12
# Without CUDA it runs the same steps at small sizes on the CPU (32x32x8, 2 iterations, fp32 and, when the recipes
# have the flag, bf16; speed.py --quick), skips the ucf12 runs, and says so.
#
# Every step has its own log in <output>/logs/, a row in <output>/summary.md (status, seconds); a step that would
# start after BUDGET_S seconds (default 480) is skipped and listed. Exit status 1 when a step failed.
# The recipes' --mixed_precision flag comes from the mixed-precision work; where `recipes/dm.py --help` lacks it,
# the GPU path passes it anyway (those runs fail and say so) and the CPU path runs fp32 only.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-outputs/gpu_check}
BUDGET_S=${BUDGET_S:-480}
STEP_TIMEOUT=${STEP_TIMEOUT:-420}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export HF_DATASETS_DISABLE_PROGRESS_BARS=1

# the output folder: new, empty, or one this script wrote (it holds summary.md and logs/), never the repository
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    if [ -f "$OUT/summary.md" ] && [ -d "$OUT/logs" ] && [ "$(cd "$OUT" && pwd)" != "$PWD" ]; then rm -rf -- "$OUT"
    else echo "error: $OUT exists and was not written by scripts/gpu_check.sh; pass another folder." >&2; exit 2; fi
fi
mkdir -p "$OUT/logs" "$OUT/runs"
export HF_VDD_CACHE="$(cd "$OUT" && pwd)/cache"  # teachers and default models: trained here, not reused

START=$SECONDS
FAILED=0
printf '| step | status | seconds |\n|---|---|---|\n' > "$OUT/summary.md"
note() { printf '| %s | %s | %s |\n' "$1" "$2" "$3" >> "$OUT/summary.md"; echo "== $1: $2 ${3:+($3 s)}"; }

# step NAME CMD...: run CMD with a timeout, log it, record ok / FAILED / skipped
step() {
    local name=$1; shift
    if (( SECONDS - START > BUDGET_S )); then note "$name" "skipped (over the ${BUDGET_S} s budget)" ""; return; fi
    echo "== $name: $*"
    local t0=$SECONDS rc=0
    timeout "$STEP_TIMEOUT" "$@" > "$OUT/logs/$name.log" 2>&1 || rc=$?
    local took=$((SECONDS - t0)) status="ok"
    case $rc in
        0) ;;
        5) [[ $name == pytest-cuda ]] && status="ok (no test marked cuda)" || status="FAILED (exit 5)" ;;
        124) status="FAILED (timeout ${STEP_TIMEOUT} s)" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    [[ $status == FAILED* ]] && { FAILED=1; tail -n 5 "$OUT/logs/$name.log"; }
    note "$name" "$status" "$took"
}

if $PY -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    CUDA=1; SIZE=(--frame_size 112 --num_frames 16); ITERS=${ITERATIONS:-20}; PRECISIONS=${PRECISIONS:-"no bf16"}
    $PY -c "import torch; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)" | tee "$OUT/device.txt"
else
    CUDA=0; SIZE=(--frame_size 32 --num_frames 8); ITERS=${ITERATIONS:-2}; PRECISIONS=${PRECISIONS:-"no bf16"}
    echo "No CUDA: the CPU path at small sizes (32x32x8, $ITERS iterations)" | tee "$OUT/device.txt"
fi
HAS_MP=0
$PY recipes/dm.py --help 2>/dev/null | grep -q -- "--mixed_precision" && HAS_MP=1
if (( !HAS_MP )); then
    echo "NOTE: recipes/dm.py has no --mixed_precision flag yet" | tee -a "$OUT/device.txt"
    (( CUDA )) || PRECISIONS="no"
fi

distil_runs() {  # distil_runs DATASET: DM, IDTD, DAViD at every precision
    local ds=$1 method mp extra
    for method in dm idtd david; do
        for mp in $PRECISIONS; do
            extra=()
            [[ $method == david ]] && extra=(--teacher_steps $(( CUDA ? 100 : 10 )))
            (( CUDA || HAS_MP )) && extra+=(--mixed_precision "$mp")
            step "$method-$ds-$mp" $PY "recipes/$method.py" --dataset "$ds" "${SIZE[@]}" --ipc 1 \
                --iterations "$ITERS" --output_dir "$OUT/runs/$method-$ds-$mp" "${extra[@]}"
        done
    done
}

# 1. tests marked cuda
step pytest-cuda $PY -m pytest -q -m cuda tests
# 2. DM / IDTD / DAViD on toy-actions
distil_runs toy-actions
# 3. a 2-class Latte pool through the diffusion recipe (a tiny Latte over 2 ucf12 classes, 4 videos each)
step latte-pool-setup $PY - "$OUT/runs/pool-data" <<'EOF'
import sys
from pathlib import Path

from hf_vdd.diffusion import tiny_latte_pipeline
from hf_vdd.utils import shared_data_dir

out, source = Path(sys.argv[1]), shared_data_dir() / "ucf12" / "videos"
classes = sorted(p.name for p in (source / "train").iterdir())[:2]
for split, per_class in (("train", 4), ("test", 2)):  # a 2-class videofolder of links, never a copy
    for c in classes:
        (out / "videos" / split / c).mkdir(parents=True, exist_ok=True)
        for video in sorted((source / split / c).iterdir())[:per_class]:
            (out / "videos" / split / c / video.name).symlink_to(video.resolve())
tiny_latte_pipeline(classes, num_frames=8, frame_size=32, seed=0).save_pretrained(str(out / "latte"))
print(f"2-class videofolder and tiny Latte over {classes} in {out}")
EOF
step latte-pool $PY recipes/diffusion_select.py --dataset "$OUT/runs/pool-data" --frame_size 32 --num_frames 8 \
    --generator "$OUT/runs/pool-data/latte" --selector random --vpc 2 --videos_per_class_pool 4 --shard_size 2 \
    --num_inference_steps $(( CUDA ? 20 : 2 )) --pool_dir "$OUT/runs/pool" --output_dir "$OUT/runs/pool-select"
# 4. fp32 against bf16 distilled sets: the same DM in each precision, each set evaluated the same way (fp32)
for mp in $PRECISIONS; do
    extra=()
    (( CUDA || HAS_MP )) && extra+=(--mixed_precision "$mp")
    step "precision-set-$mp" $PY recipes/dm.py --dataset toy-actions --frame_size 32 --num_frames 16 --ipc 5 \
        --iterations $(( CUDA ? 200 : 2 )) --output_dir "$OUT/runs/precision-set-$mp" "${extra[@]}"
    step "precision-eval-$mp" $PY recipes/evaluate.py --dataset toy-actions --distilled "$OUT/runs/precision-set-$mp" \
        --runs $(( CUDA ? 3 : 1 )) --steps $(( CUDA ? 300 : 2 )) --output_json "$OUT/runs/precision-eval-$mp.json"
done
# 5. speed: hf_vdd against the classic DM loop
if (( CUDA )); then
    step speed $PY recipes/speed.py --device cuda --threads 1 --isolate false --output_dir "$OUT/speed" \
        --configs 5x64x8 5x112x16 50x64x8 50x112x16
else
    step speed $PY recipes/speed.py --quick --output_dir "$OUT/speed"
fi
# 6. the heavy runs: ucf12 at 112x112x16
if (( CUDA )); then
    distil_runs ucf12
else
    note "dm/idtd/david on ucf12" "skipped (no CUDA)" ""
fi

# seconds per iteration and peak RSS of every distillation run, from its distillation.json
$PY - "$OUT" <<'EOF' | tee -a "$OUT/summary.md"
import json
import sys
from pathlib import Path

rows = ["", "| run | s/iteration | peak RSS MiB | distil s |", "|---|---|---|---|"]
for meta in sorted(Path(sys.argv[1], "runs").glob("*/distillation.json")):
    stats = json.loads(meta.read_text()).get("stats", {})
    if "seconds_per_iteration" in stats:  # the distillers (the pool selection has none)
        nan = float("nan")
        rows.append(f"| {meta.parent.name} | {stats['seconds_per_iteration']:.3f} | "
                    f"{stats.get('peak_rss_mb', nan):.0f} | {stats.get('distill_seconds', nan):.1f} |")
for report in sorted(Path(sys.argv[1], "runs").glob("precision-eval-*.json")):
    top1, precision = json.loads(report.read_text())["top1"], report.stem.split("-")[-1]
    rows.append(f"\nDM set distilled with --mixed_precision {precision}: top-1 {top1['mean']:.1f} ± "
                f"{top1['std']:.1f}")
print("\n".join(rows))
EOF
[ -f "$OUT/speed/speed.md" ] && { echo; cat "$OUT/speed/speed.md"; } >> "$OUT/summary.md"
echo "total $((SECONDS - START)) s; summary: $OUT/summary.md, logs: $OUT/logs/"
exit $FAILED
