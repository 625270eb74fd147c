#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Prepared GPU run, in phases, each under its own time limit (docs/performance.md has the
# estimates). Installs nothing from the network.
#
#   bench/gpu_bench.sh                        # PHASES="tests eager": about 3 min, at most 8
#   PHASES="reduce-overhead slow-tests" bench/gpu_bench.sh   # 4-7 min, at most 9.5
#   bench/gpu_bench.sh --dry-run              # everything but CUDA, here (also DRY_RUN=1)
#
# Phases:
#   tests            pytest -m 'gpu and not slow' (pinned memory, overlap, events, OOM, ...)
#   slow-tests       pytest -m 'gpu and slow' (CUDA graphs compiled, served on a thread, freed)
#   eager            baseline vs optimized vs optimized with channels-last off, fp16, SD-1.5
#                    sizes (random weights), 480x640 frame -> 512x512, 1 and 4 queries
#   reduce-overhead  baseline vs optimized compiled with CUDA graphs, 1 query
#   max-autotune     the same with autotuning (does not fit a 15-minute lease)
#
# Environment: PYTHON (default .venv/bin/python, else python3), PHASES, DTYPE (float16),
# ITERATIONS (20), OUT (default ./bench-results). Everything printed also goes to
# $OUT/gpu_bench.log as it happens; each phase writes $OUT/gpu_bench_<phase>.md and .json, rewritten
# after every query count, so a phase cut short still leaves what it measured.
# The dry run uses the CPU (one thread), random tiny weights at 64x64 in float32, 2 timed frames,
# and compile none in the compile phases (compiling on this CPU takes minutes): it checks the
# script, the imports, the progress lines, the partial files and the log, not speed.
# Exit codes: 0 all phases passed, 2 this interpreter cannot run the benchmark (nothing run),
# 1 a phase failed, 124 a phase ran out of time.
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN="${DRY_RUN:-0}"
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=1
    shift
fi
if [ $# -ne 0 ]; then
    echo "usage: [PHASES=...] [DTYPE=...] [ITERATIONS=N] $0 [--dry-run]" >&2
    exit 64
fi
source bench/gpu_python.sh  # sets PYTHON when unset; defines gpu_python
PHASES="${PHASES:-tests eager}"
DTYPE="${DTYPE:-float16}"
ITERATIONS="${ITERATIONS:-20}"
DEST="${OUT:-bench-results}"
if [ "$DRY_RUN" = 1 ]; then
    # float32: float16 convolutions are slow on a CPU and would tell nothing about the GPU's.
    DEVICE=cpu WEIGHTS=random:tiny INPUT=64x64 FRAME=48x80 ITERATIONS=2 WARMUP=1 THREADS=1
    DTYPE=float32
else
    DEVICE=cuda WEIGHTS=random:sd15 INPUT=512x512 FRAME=480x640 WARMUP=3 THREADS=
fi
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1

say() { printf '[gpu_bench %4d s] %s\n' "$SECONDS" "$*"; }

# check: the interpreter runs the engine (exit 2 with the reason when it cannot; the dry run
# skips the CUDA check). Carried wheels and the checks are shared with gpu_train.sh.
check() {
    say "python: $PYTHON; phases: $PHASES; dry run: $DRY_RUN"
    SKIP_CUDA_CHECK="$DRY_RUN" gpu_python gpu_bench.sh \
        'vpd_ros.apps.bench, vpd_ros.engine.runner, vpd_ros.model'
}

# run_phase NAME LIMIT_S COMMAND...: run one phase under its time limit; remember failures.
STATUS=0
run_phase() {
    local name=$1 limit=$2 rc
    shift 2
    say "phase $name: start (limit $limit s)"
    timeout -k 15 "$limit" "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        say "phase $name: done"
    else
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && rc=124
        say "phase $name: FAILED with exit code $rc (124: out of time)"
        [ "$STATUS" -eq 124 ] || STATUS=$rc
    fi
}

bench_phase() {
    local name=$1 limit=$2 compile=$3
    shift 3
    if [ "$DRY_RUN" = 1 ] && [ "$compile" != none ]; then
        say "phase $name: dry run compiles nothing (compile none instead of $compile)"
        compile=none
    fi
    run_phase "$name" "$limit" "$PYTHON" -m vpd_ros.apps.bench --weights "$WEIGHTS" \
        --device "$DEVICE" --dtype "$DTYPE" --compile "$compile" --input-size "$INPUT" \
        --frame-size "$FRAME" --iterations "$ITERATIONS" --warmup "$WARMUP" --compare-baseline \
        --markdown "$DEST/gpu_bench_$name.md" --json "$DEST/gpu_bench_$name.json" \
        ${THREADS:+--threads "$THREADS"} "$@"
}

main() {
    check || return $?
    for phase in $PHASES; do
        case "$phase" in
            tests) run_phase tests 180 "$PYTHON" -m pytest -q -p no:cacheprovider \
                       -m 'gpu and not slow' vpd_ros/test/test_cuda.py ;;
            slow-tests) run_phase slow-tests 150 "$PYTHON" -m pytest -q -p no:cacheprovider \
                            -m 'gpu and slow' vpd_ros/test/test_cuda.py ;;
            eager) bench_phase eager 300 none --queries 1 4 --variants contiguous ;;
            reduce-overhead) bench_phase reduce-overhead 400 reduce-overhead --queries 1 ;;
            max-autotune) bench_phase max-autotune 570 max-autotune --queries 1 ;;
            *) say "unknown phase $phase (tests, slow-tests, eager, reduce-overhead," \
                   "max-autotune)"
               STATUS=1 ;;
        esac
    done
    say "finished with exit code $STATUS"
    return "$STATUS"
}

main 2>&1 | tee -a "$DEST/gpu_bench.log"
exit "${PIPESTATUS[0]}"
