#!/usr/bin/env bash
# The one device check (a GPU lent to the task, CuPy preinstalled there, no
# network, no installs). At most 8 minutes in all. Usage (repository root):
#     OUT=/some/dir bash benchmarks/gpu_check.sh            # on the device
#     bash benchmarks/gpu_check.sh --dry-run                # here: the logic only
# Stages run in order; each writes $OUT/<stage>.log and a line of
# $OUT/summary.txt as it finishes. The summary is printed last; the exit
# status is non-zero when any stage failed (a skipped GPU test is a failure).
set -u
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-benchmarks/results/gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ $DRY = 1 ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SKMACH_BENCH_RESULTS="$OUT"
: >"$OUT/summary.txt"
FAILED=0
START=$(date +%s)
log() { echo "[gpu_check $(date +%T)] $*" | tee -a "$OUT/gpu_check.log"; }

# stage NAME SECONDS COMMAND...: time-boxed; PASS/FAIL line in summary.txt.
# Budgets: 30 + 60 + 150 + 210 = 450 s < 8 min.
stage() {
  local name=$1 secs=$2; shift 2
  log "stage $name (limit ${secs}s)"
  if [ $DRY = 1 ]; then secs=$(( secs < 120 ? secs : 120 )); fi
  timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  if [ $rc = 0 ]; then echo "PASS $name" >>"$OUT/summary.txt"
  else echo "FAIL $name (rc=$rc$([ $rc = 124 ] && echo ', timed out'))" >>"$OUT/summary.txt"; FAILED=1; fi
  tail -5 "$OUT/$name.log"
}

# Every module whose tests take a ``cp`` fixture (or the array API
# combinations) with a real-CuPy case marked ``gpu``.
GPU_TEST_MODULES="test_gpu_kernels test_array_api test_device_input test_lsh_mlp_device"

if [ $DRY = 1 ]; then
  # No GPU here: the stand-in plays CuPy, compilation targets sm_90.
  stage probe 30 $PY -c "
from skmach._gpu._standin import installed
with installed() as cp:
    from skmach._device import cuda_available
    assert cuda_available(); print('stand-in cupy', cp.__version__)"
  stage compile 60 $PY -m skmach._gpu._compile sm_90
  # A few stand-in tests, then what the device run's "pytest -m gpu" would
  # select: the real-CuPy cases of every GPU test module, no stand-in case.
  stage pytest_gpu 150 bash -c "$PY -m pytest -q -p no:cacheprovider -o addopts='' \
      skmach/_gpu/tests/test_standin.py -k 'permutation_family or hash_arguments' || exit 1; \
      $PY -m pytest -m gpu --collect-only -q -p no:cacheprovider -o addopts='' \
      skmach/_gpu/tests > '$OUT/pytest_gpu_collected.txt' 2>&1 || exit 1; \
      for f in $GPU_TEST_MODULES; do \
        n=\$(grep -cE \"\$f.py::[^ ]*cupy\" '$OUT/pytest_gpu_collected.txt'); \
        echo \"-m gpu selects \$n real-CuPy tests of \$f\"; [ \"\$n\" -gt 0 ] || exit 1; done; \
      if grep -q standin '$OUT/pytest_gpu_collected.txt'; then echo 'stand-in case under -m gpu'; exit 1; fi"
  stage bench 210 $PY benchmarks/bench_gpu.py --dry-run --prefix gpu_check
else
  stage probe 30 $PY -c "
import sys, numpy, cupy
print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__)
n = cupy.cuda.runtime.getDeviceCount(); assert n > 0, 'no CUDA device'
d = cupy.cuda.Device(); print('device', d.id, 'cc', d.compute_capability)
print(cupy.cuda.runtime.getDeviceProperties(d.id)['name'])
from cupy_backends.cuda.libs import nvrtc; print('nvrtc', nvrtc.getVersion())
from skmach._device import cuda_available; assert cuda_available()"
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
  ARCH=sm_$($PY -c "import cupy; print(cupy.cuda.Device().compute_capability)" 2>/dev/null || echo 90)
  stage compile 60 $PY -m skmach._gpu._compile "$ARCH"
  # Only the GPU tests; a skip means CuPy/the device was not usable: a failure.
  stage pytest_gpu 150 bash -c "$PY -m pytest -m gpu -q -p no:cacheprovider -o addopts='' -rs \
      skmach/_gpu/tests > '$OUT/pytest_gpu.out' 2>&1; rc=\$?; cat '$OUT/pytest_gpu.out'; \
      if grep -qE '[0-9]+ skipped' '$OUT/pytest_gpu.out'; then echo 'skips count as failures'; exit 1; fi; \
      if ! grep -qE '[0-9]+ passed' '$OUT/pytest_gpu.out'; then echo 'nothing passed'; exit 1; fi; exit \$rc"
  stage bench 210 $PY benchmarks/bench_gpu.py --prefix gpu_check --time-budget 190
fi

log "total $(( $(date +%s) - START ))s"
echo "==== gpu_check summary ($([ $DRY = 1 ] && echo dry-run || echo device)) ===="
cat "$OUT/summary.txt"
[ $FAILED = 0 ] && echo "ALL PASSED" || echo "SOME STAGES FAILED"
exit $FAILED
