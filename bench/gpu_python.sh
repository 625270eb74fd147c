# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Sourced by the prepared GPU scripts (gpu_bench.sh, gpu_train.sh): gpu_python NAME MODULE
# installs the wheels carried in .whl/ (bench/fetch_gpu_wheels.sh, for a CUDA image without
# diffusers) into a temporary folder, puts it and the source tree on PYTHONPATH, checks that
# $PYTHON imports diffusers, transformers and MODULE and that its torch sees CUDA; it returns
# 2 with the reason on stderr when not. SKIP_CUDA_CHECK=1 skips the CUDA check (dry runs).
# Sourcing it from the repository root also sets PYTHON, if unset, to .venv/bin/python when
# there, else python3.

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

gpu_python() {
    local name="$1" module="$2"
    if compgen -G ".whl/*.whl" > /dev/null; then
        SITE="$(mktemp -d)"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target "$SITE" .whl/*.whl || return 2
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD/vpd_ros${PYTHONPATH:+:$PYTHONPATH}"
    # One interpreter start checks the imports and CUDA (each start imports torch: seconds).
    local code=0
    SKIP_CUDA_CHECK="${SKIP_CUDA_CHECK:-0}" "$PYTHON" -c "import os, sys
import diffusers, torch, transformers, $module
print(f'imports: torch {torch.__version__} (CUDA build {torch.version.cuda}), diffusers '
      f'{diffusers.__version__}, transformers {transformers.__version__}')
sys.exit(0 if os.environ['SKIP_CUDA_CHECK'] == '1' or torch.cuda.is_available() else 3)" || code=$?
    if [ "$code" = 3 ]; then
        echo "$name: torch.cuda is not available with $PYTHON (a CPU-only torch wheel or no" >&2
        echo "GPU visible). Run with PYTHON=<an interpreter whose torch has CUDA>." >&2
        return 2
    elif [ "$code" != 0 ]; then
        echo "$name: $PYTHON cannot import diffusers/transformers/$module; on a machine" >&2
        echo "without diffusers run bench/fetch_gpu_wheels.sh where PyPI is reachable, carry .whl/." >&2
        return 2
    fi
    [ "${SKIP_CUDA_CHECK:-0}" = 1 ] && return 0
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
}
