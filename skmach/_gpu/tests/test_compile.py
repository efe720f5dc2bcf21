"""Every CUDA source of skmach._gpu compiles for sm_90 (NVRTC, no GPU needed).

Needs CuPy and the NVRTC library (``pip install skmach[gpucheck]``); skips
cleanly without them.
"""

import re

import pytest

from skmach._gpu import _compile

pytestmark = pytest.mark.skipif(not _compile.nvrtc_available(),
                                reason="needs CuPy's NVRTC binding and libnvrtc")


@pytest.mark.parametrize("name,source,options", _compile.kernel_sources(),
                         ids=[n for n, _, _ in _compile.kernel_sources()])
def test_kernel_compiles_for_sm90(name, source, options):
    assert _compile.compile_source(source, options, "sm_90", name + ".cu") > 0


def test_compile_errors_are_reported():
    with pytest.raises(RuntimeError, match="INFINITY"):
        _compile.compile_source('extern "C" __global__ void f(float* o) { o[0] = -INFINITY; }')


def test_scoring_arithmetic_does_not_flush_subnormals():
    # CuPy appends -ftz=true: the key order and the accumulation must not use
    # flushing float instructions (the old `s == 0.0f` test of float_order did).
    from skmach._gpu import _scoring

    src = _scoring._CUDA_SOURCE
    helpers = src[src.index("__device__ __forceinline__ float add_rn"):
                  src.index("// Ranking score of class c")]
    probe = helpers + (
        'extern "C" __global__ void probe(const float* x, unsigned int* o, float* s) {\n'
        "    o[0] = float_order(x[0]); s[0] = mul_rn(add_rn(x[1], x[2]), x[3]); }\n")
    text = _compile.ptx(probe, _scoring.COMPILE_OPTIONS)
    assert "add.rn.f32" in text and "mul.rn.f32" in text
    assert ".ftz" not in text


def test_main_reports_every_kernel(capsys):
    assert _compile.main(["sm_90"]) == 0
    out = capsys.readouterr().out
    assert f"compiled {len(_compile.kernel_sources())}/" in out
