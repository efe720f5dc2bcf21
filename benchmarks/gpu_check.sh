#!/usr/bin/env bash
# The one prepared device check for a session with a GPU (CuPy preinstalled).
# Budget: ~9 minutes on an H100 in all. Usage (repository root):
#     OUT=/some/dir bash benchmarks/gpu_check.sh
# Everything it produces (logs, benchmark JSON/Markdown) is copied to $OUT.
set -u
OUT=${OUT:-benchmarks/results/gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
log() { echo "[gpu_check $(date +%T)] $*" | tee -a "$OUT/gpu_check.log"; }

log "nvidia-smi"; nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" | head -15
$PY -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceCount(), 'device(s)')" \
    2>&1 | tee -a "$OUT/gpu_check.log"

# 1. install (the machine may be offline: fall back to no dependencies)
log "pip install -e .[test]"
timeout 120 $PY -m pip install -q -e ".[test]" >"$OUT/pip.log" 2>&1 \
  || timeout 60 $PY -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/pip.log" 2>&1 \
  || log "pip install failed (see pip.log); running from the source tree"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# 2. GPU tests (~1-2 min, most of it NVRTC compilation of the kernels)
log "pytest -m gpu"
timeout 240 $PY -m pytest -m gpu -q -p no:cacheprovider -o addopts="" -rs \
    skmach/_gpu tests >"$OUT/pytest_gpu.log" 2>&1
echo "pytest rc=$?" | tee -a "$OUT/gpu_check.log"
tail -30 "$OUT/pytest_gpu.log"

# 3. benchmark with modest sizes (~2-4 min)
log "bench_gpu.py"
timeout 300 $PY benchmarks/bench_gpu.py --prefix gpu_check \
    --n-samples 1024 --n-classes 500000 --n-repetitions 16 --n-buckets 1024 --k 5 \
    --cpu-samples 8 --debian-n 20000 --mach-epochs 2 --mnist-n 6000 --mnist-epochs 1 \
    >"$OUT/bench_gpu.log" 2>&1
echo "bench rc=$?" | tee -a "$OUT/gpu_check.log"
tail -20 "$OUT/bench_gpu.log"
cp benchmarks/results/gpu_check.* "$OUT"/ 2>/dev/null || true
log "done"
