"""``bash benchmarks/gpu_check.sh --dry-run`` passes here (stand-in CuPy, sm_90)."""

import os
import subprocess
from pathlib import Path

import pytest

from skmach._gpu._compile import nvrtc_available

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(not nvrtc_available(), reason="the compile stage needs NVRTC")
def test_gpu_check_dry_run(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path))
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = (tmp_path / "summary.txt").read_text().split("\n")
    assert [line.split()[1] for line in summary if line] == ["probe", "compile", "pytest_gpu",
                                                             "bench"]
    assert all(line.startswith("PASS") for line in summary if line)
    assert proc.stdout.rstrip().endswith("ALL PASSED")
    assert (tmp_path / "gpu_check.json").exists()
