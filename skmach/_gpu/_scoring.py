"""MACH bucket scoring on the GPU, fused with the top-k selection.

Twin of :mod:`skmach.mach._scoring`. A class ``c`` gets the score
``agg_r P[i, r, h_r(c)]``; the CUDA kernels below compute ``h_r(c)`` on the
fly (2-universal hash, or the permutation table of
:class:`~skmach._hashing.PermutationFamily`), so no ``n_samples x n_classes``
array and no ``R x n_classes`` hash table is ever stored.

Exact agreement with the CPU
----------------------------
Scores are accumulated in float32 in the CPU's order (``r = 0 .. R-1``,
starting from 0, then one multiply by ``float32(1 / R)``; fused multiply-adds
are disabled), so ``"mean"`` and ``"min"`` scores are bit-identical to
:func:`skmach.mach._scoring.class_scores`. ``"logmean"`` classes are
ranked on the mean log-probability, not on its ``exp``: NumPy's float32
``exp`` is not correctly rounded and merges distinct means into ties, so the
ranking on ``exp`` differs between libraries, while the mean log is the same
float32 sum on both (CUDA's ``logf`` may still differ from NumPy's by one unit
in the last place). The reported scores are ``exp`` of the mean log.

Numerical mode: CuPy compiles every kernel with ``-ftz=true`` appended after
our options; the scoring kernels add and multiply with inline PTX without
``.ftz`` and compare floats through their integer order, so subnormal
probabilities and scores are kept as NumPy keeps them.

Ties are broken by the lower class index, like :func:`skmach.utils.topk`,
with no special case: each (score, class) pair is packed into one 64-bit
*key*, the order-preserving bit pattern of the float32 score in the high 32
bits and ``2**32 - 1 - class`` in the low 32 bits. Keys are distinct, a
larger key is a better pair, and the top-k is simply the k largest keys
(:func:`pack_keys`, :func:`unpack_keys`; NumPy versions tested on the CPU).

Fused top-k kernel (``mach_topk``)
----------------------------------
One thread block per (sample, class range). Each thread scans the classes
``c0 + t, c0 + t + blockDim, ...`` and keeps its ``TOPK`` best keys in a small
ascending array; the block then merges the per-thread lists in ``k`` rounds
of a shared-memory max-reduction (keys are distinct, so exactly one thread
owns each maximum and advances). When there are few samples, classes are
split into ``n_splits`` ranges (``gridDim.y``) so that every SM has work; the
``n_splits`` partial top-k lists are merged with one sort of
``n x (n_splits * k)`` keys.
"""

import math

import numpy as np

from ..utils._topk import check_k
from ._backend import array_namespace_of, import_cupy

AGGREGATIONS = ("mean", "logmean", "min")
_LOG_EPS = np.float32(1e-12)

__all__ = [
    "class_scores_gpu",
    "topk_classes_gpu",
    "topk_candidates_gpu",
    "hash_arguments",
    "pack_keys",
    "unpack_keys",
    "topk_from_keys",
    "MAX_FUSED_K",
]

#: Largest ``k`` of the fused kernel (each thread keeps ``k`` keys).
MAX_FUSED_K = 128
_BLOCK = 128  # threads per block of the fused kernel (a power of two)
_AGG_CODE = {"mean": 0, "logmean": 1, "min": 2}

_CUDA_SOURCE = r"""
// Integers: class indices < 2^32; a, b uint64 (see skmach._hashing._universal).

// Bucket of class c in repetition r: multiply-add-shift then multiply-shift,
//   g = (a_r c + b_r) mod 2^64 >> 32,  bucket = (g * B) >> 32   (wrapping on purpose),
// or table[r, c] (PermutationFamily, use_table != 0, table is (R, K) int32).
__device__ __forceinline__ long long bucket_of(
    int r, unsigned long long c, const unsigned long long* a, const unsigned long long* b,
    const int* table, long long K, int use_table, unsigned int B)
{
    if (use_table) return (long long)table[(long long)r * K + (long long)c];
    unsigned long long g = (a[r] * c + b[r]) >> 32;
    return (long long)((g * (unsigned long long)B) >> 32);
}

// IEEE float32 add / multiply / order, whatever CuPy's -ftz=true says: CuPy
// appends -ftz=true after the options given, which would flush subnormal
// probabilities and scores to zero (NumPy keeps them). Inline PTX without
// .ftz keeps them; comparisons go through the integer order below.
__device__ __forceinline__ float add_rn(float x, float y) {
    float r; asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(x), "f"(y)); return r;
}
__device__ __forceinline__ float mul_rn(float x, float y) {
    float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(x), "f"(y)); return r;
}

// Order-preserving map float32 -> uint32 (larger float, larger integer);
// -0.0 becomes +0.0 first, as NumPy treats them as equal. Integer only:
// no float comparison (which -ftz=true would flush).
__device__ __forceinline__ unsigned int float_order(float s) {
    unsigned int u = __float_as_uint(s);
    if (u == 0x80000000u) u = 0u;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Ranking score of class c for one sample; row = &P[i, 0, 0], R * B floats.
// agg: 0 mean, 1 logmean, 2 min. Float order of operations = the NumPy code.
// "logmean" returns the mean log (classes are ranked on it on both devices:
// exp may merge distinct means); the caller applies exp for the reported score.
__device__ __forceinline__ float class_score(
    const float* row, int R, unsigned int B, unsigned long long c,
    const unsigned long long* a, const unsigned long long* b, const int* table, long long K,
    int use_table, int agg, float inv_R)
{
    if (agg == 2) {
        float s = row[bucket_of(0, c, a, b, table, K, use_table, B)];
        for (int r = 1; r < R; ++r) {
            float p = row[(long long)r * B + bucket_of(r, c, a, b, table, K, use_table, B)];
            s = float_order(p) < float_order(s) ? p : s;
        }
        return s;
    }
    float s = 0.0f;
    for (int r = 0; r < R; ++r) {
        float p = row[(long long)r * B + bucket_of(r, c, a, b, table, K, use_table, B)];
        if (agg == 1) p = logf(float_order(p) > float_order(1e-12f) ? p : 1e-12f);
        s = add_rn(s, p);
    }
    return mul_rn(s, inv_R);
}

// Candidate ranking scores, as skmach.mach._scoring._topk_candidates sums
// them: "mean" and "logmean" accumulate in float64 (the float32 logf of each
// probability, for logmean), divide by R in float64, round to float32 last;
// "logmean" returns the mean log (exp is applied by the caller).
__device__ __forceinline__ float candidate_score(
    const float* row, int R, unsigned int B, unsigned long long c,
    const unsigned long long* a, const unsigned long long* b, const int* table, long long K,
    int use_table, int agg, float inv_R)
{
    if (agg == 2) return class_score(row, R, B, c, a, b, table, K, use_table, agg, inv_R);
    double s = 0.0;
    for (int r = 0; r < R; ++r) {
        float p = row[(long long)r * B + bucket_of(r, c, a, b, table, K, use_table, B)];
        if (agg == 1) p = logf(float_order(p) > float_order(1e-12f) ? p : 1e-12f);
        s += (double)p;  // 0.0 + x == x: the same sum as starting from the first term
    }
    s /= (double)R;
    return (float)s;
}

// Key of (score, index): larger key = higher score, then lower index.
// Every key is > 0 (index < 2^31 keeps the low word >= 2^31), so 0 = empty.
__device__ __forceinline__ unsigned long long make_key(float s, unsigned long long idx) {
    return ((unsigned long long)float_order(s) << 32) | (0xFFFFFFFFULL - idx);
}

// out[i, j] = score of classes[j] for sample i; out is (n, m) row-major.
extern "C" __global__ void mach_class_scores(
    const float* P, long long n, int R, unsigned int B,
    const unsigned long long* a, const unsigned long long* b, const int* table, long long K, int use_table,
    const long long* classes, long long m, int agg, float inv_R, int apply_exp, float* out)
{
    const long long total = n * m;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        const long long i = t / m, j = t % m;
        const float v = class_score(P + i * R * (long long)B, R, B,
                                    (unsigned long long)classes[j], a, b, table, K, use_table,
                                    agg, inv_R);
        out[t] = (agg == 1 && apply_exp) ? expf(v) : v;
    }
}

// Candidate scoring: cand is (n, w), -1 = padding (score -inf).
extern "C" __global__ void mach_candidate_scores(
    const float* P, long long n, int R, unsigned int B,
    const unsigned long long* a, const unsigned long long* b, const int* table, long long K, int use_table,
    const long long* cand, long long w, int agg, float inv_R, float* out)
{
    const long long total = n * w;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        const long long i = t / w;
        const long long c = cand[t];
        out[t] = c < 0 ? __int_as_float(0xff800000)  // -inf
                       : candidate_score(P + i * R * (long long)B, R, B, (unsigned long long)c,
                                         a, b, table, K, use_table, agg, inv_R);
    }
}

// Fused scoring + top-k. Grid (n, n_splits); block BLOCK threads. Block
// (i, s) scans classes [s * span, min(K, (s + 1) * span)) of sample i and
// writes its k best keys, best first, to out[i, s, 0:k] (0 = no class).
extern "C" __global__ void mach_topk(
    const float* P, long long n, int R, unsigned int B,
    const unsigned long long* a, const unsigned long long* b, const int* table, long long K, int use_table,
    long long span, int agg, float inv_R, int k, unsigned long long* out)
{
    const long long i = blockIdx.x;
    const long long split = blockIdx.y;
    const float* row = P + i * R * (long long)B;
    const long long c_begin = split * span;
    const long long c_end = min(K, c_begin + span);

    // best[0] <= best[1] <= ... <= best[TOPK - 1]; 0 = empty slot.
    unsigned long long best[TOPK];
    for (int j = 0; j < TOPK; ++j) best[j] = 0ULL;
    for (long long c = c_begin + threadIdx.x; c < c_end; c += BLOCK) {
        const unsigned long long key = make_key(
            class_score(row, R, B, (unsigned long long)c, a, b, table, K, use_table, agg, inv_R),
            (unsigned long long)c);
        if (key > best[0]) {  // insert, dropping the weakest (best[0])
            int j = 0;
            while (j + 1 < TOPK && best[j + 1] < key) { best[j] = best[j + 1]; ++j; }
            best[j] = key;
        }
    }

    // Block merge: k rounds; each takes the max of the threads' current heads.
    __shared__ unsigned long long heads[BLOCK];
    int pos = TOPK - 1;  // this thread's best not yet taken
    unsigned long long* dst = out + (i * gridDim.y + split) * (long long)k;
    for (int j = 0; j < k; ++j) {
        heads[threadIdx.x] = pos >= 0 ? best[pos] : 0ULL;
        __syncthreads();
        for (int s = BLOCK / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s && heads[threadIdx.x + s] > heads[threadIdx.x])
                heads[threadIdx.x] = heads[threadIdx.x + s];
            __syncthreads();
        }
        const unsigned long long m = heads[0];
        // Keys are distinct: one thread owns m (none when m == 0, all empty).
        if (m != 0ULL && pos >= 0 && best[pos] == m) --pos;
        if (threadIdx.x == 0) dst[j] = m;
        __syncthreads();  // everyone has read heads[0] before it is overwritten
    }
}
"""

_MODULES = {}

#: Options given to every compilation of the scoring kernels.
#: ``--fmad=false``: no fused multiply-add, so float32 rounding matches NumPy.
COMPILE_OPTIONS = ("--fmad=false",)


def cuda_source(topk):
    """The CUDA source of the scoring module for a per-thread list size."""
    return f"#define TOPK {int(topk)}\n#define BLOCK {_BLOCK}\n" + _CUDA_SOURCE


def _module(topk):
    """Compiled CUDA module for a given per-thread list size (cached per CuPy)."""
    cupy = import_cupy()
    key = (id(cupy), topk)
    mod = _MODULES.get(key)
    if mod is None:
        mod = cupy.RawModule(code=cuda_source(topk), options=COMPILE_OPTIONS)
        _MODULES[key] = mod
    return mod


def hash_arguments(hash_family=None, *, a=None, b=None, n_buckets=None, n_classes=None):
    """Device-side description of the label hash, for the kernels.

    Parameters
    ----------
    hash_family : UniversalHashFamily or PermutationFamily, optional
        Either this, or ``a``, ``b`` and ``n_buckets``.
    a, b : array-like of uint64, shape (R,)
    n_buckets : int
    n_classes : int, optional
        Number of classes. Without it (``a``/``b`` given) ``K`` is unknown:
        :func:`class_scores_gpu` works, while :func:`topk_classes_gpu` needs
        its ``n_classes`` argument and :func:`topk_candidates_gpu` refuses
        to run (its fallback scores every class).

    Returns
    -------
    dict
        ``a``, ``b`` (cupy uint64), ``table`` (cupy int32, (R, K), or a
        dummy), ``use_table``, ``R``, ``B``, ``K`` (int or None). Pass it to
        the functions below as ``hash_args`` to avoid re-uploading per chunk.
    """
    cupy = import_cupy()
    dummy64 = cupy.zeros(1, dtype=cupy.uint64)
    if hash_family is not None and hasattr(hash_family, "table"):  # PermutationFamily
        table = cupy.ascontiguousarray(
            cupy.asarray(np.ascontiguousarray(hash_family.table, dtype=np.int32)))
        R, K = table.shape
        return dict(a=dummy64, b=dummy64, table=table, use_table=1,
                    R=int(R), B=int(hash_family.n_buckets), K=int(K))
    if hash_family is not None:
        a, b = hash_family.a, hash_family.b
        n_buckets, n_classes = hash_family.n_buckets, hash_family.n_classes
    if a is None or b is None or n_buckets is None:
        raise ValueError("give a hash_family, or a, b and n_buckets")
    if not 2 <= int(n_buckets) < 2**31:
        raise ValueError(f"n_buckets must be in [2, 2**31); got {n_buckets}")
    if n_classes is not None and not 1 <= int(n_classes) < 2**31 - 1:
        raise ValueError(f"n_classes must be in [1, 2**31 - 1); got {n_classes}")
    a = cupy.ascontiguousarray(cupy.asarray(a, dtype=cupy.uint64).ravel())
    b = cupy.ascontiguousarray(cupy.asarray(b, dtype=cupy.uint64).ravel())
    if a.shape != b.shape:
        raise ValueError("a and b must have the same length (R)")
    return dict(a=a, b=b, table=cupy.zeros(1, dtype=cupy.int32), use_table=0,
                R=int(a.size), B=int(n_buckets),
                K=int(n_classes) if n_classes is not None else None)


def _prepare_P(P, h):
    cupy = import_cupy()
    P = cupy.ascontiguousarray(cupy.asarray(P, dtype=cupy.float32))
    if P.ndim != 3 or P.shape[1] != h["R"] or P.shape[2] != h["B"]:
        raise ValueError(f"P must have shape (n, R={h['R']}, B={h['B']}); got {P.shape}")
    return P


def _check_aggregation(aggregation):
    if aggregation not in _AGG_CODE:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")


def _scalar_args(P, h, aggregation):
    _check_aggregation(aggregation)
    n, R, B = P.shape
    K = h["K"] if h["K"] is not None else 0
    # inv_R: the same float32 number the CPU multiplies by.
    return (np.int64(n), np.int32(R), np.uint32(B), h["a"], h["b"], h["table"],
            np.int64(K), np.int32(h["use_table"])), np.int32(_AGG_CODE[aggregation]), \
        np.float32(1.0 / R)


def _grid_1d(total, block=256):
    return (int(max(1, min(-(-total // block), 2**31 - 1))),), (block,)


def _reported(val, aggregation):
    """Ranking scores -> reported scores (``exp`` of the mean log for logmean)."""
    if aggregation != "logmean":
        return val
    xp = array_namespace_of(val)
    return xp.exp(val)


def class_scores_gpu(P, a=None, b=None, n_buckets=None, classes=None, aggregation="mean", *,
                     hash_args=None):
    """Scores of the given classes on the GPU, shape ``(n_samples, len(classes))``.

    Twin of :func:`skmach.mach._scoring.class_scores`.

    Parameters
    ----------
    P : cupy.ndarray of shape (n_samples, R, B)
        Bucket probabilities (converted to C-contiguous float32).
    a, b : array-like of uint64, shape (R,)
        Hash coefficients (ignored when ``hash_args`` is given).
    n_buckets : int
    classes : array-like of int, shape (m,)
        Class indices in ``[0, n_classes)``.
    aggregation : {"mean", "logmean", "min"}
    hash_args : dict, optional
        From :func:`hash_arguments` (also the way to use a
        :class:`~skmach._hashing.PermutationFamily`).

    Returns
    -------
    cupy.ndarray of shape (n_samples, m), float32
    """
    return _class_scores(P, a, b, n_buckets, classes, aggregation, hash_args, apply_exp=True)


def _class_scores(P, a, b, n_buckets, classes, aggregation, hash_args, apply_exp):
    cupy = import_cupy()
    _check_aggregation(aggregation)
    h = hash_args if hash_args is not None else hash_arguments(a=a, b=b, n_buckets=n_buckets)
    P = _prepare_P(P, h)
    if classes is None:
        raise ValueError("classes is required")
    classes = cupy.ascontiguousarray(cupy.asarray(classes, dtype=cupy.int64).ravel())
    n, m = P.shape[0], classes.size
    out = cupy.empty((n, m), dtype=cupy.float32)
    if n * m == 0:
        return out
    head, agg, inv_R = _scalar_args(P, h, aggregation)
    grid, block = _grid_1d(n * m)
    _module(1).get_function("mach_class_scores")(
        grid, block, (P,) + head + (classes, np.int64(m), agg, inv_R,
                                    np.int32(1 if apply_exp else 0), out))
    return out


def topk_classes_gpu(P, a=None, b=None, n_buckets=None, n_classes=None, k=5,
                     aggregation="mean", *, hash_args=None, candidates=None, n_splits=None,
                     sample_chunk=None):
    """Top-k classes of each sample, scoring every class on the fly on the GPU.

    Twin of :func:`skmach.mach._scoring.topk_classes` (same indices; the same
    float32 scores for ``"mean"``/``"min"``; ``"logmean"`` ranks on the mean
    log, see the module notes).

    Parameters
    ----------
    P : cupy.ndarray of shape (n_samples, R, B)
    a, b : array-like of uint64, shape (R,)
    n_buckets : int
    n_classes : int
        Classes ``0 .. n_classes - 1`` are scored (default: ``hash_args["K"]``).
    k : int
        ``1 <= k <= n_classes``. Up to :data:`MAX_FUSED_K` the fused kernel
        is used; larger ``k`` scores class tiles and sorts them (slower).
    aggregation : {"mean", "logmean", "min"}
    hash_args : dict, optional
        From :func:`hash_arguments`.
    candidates : cupy.ndarray of shape (n_samples, w), optional
        Per-sample candidate classes padded with -1 (see
        :func:`topk_candidates_gpu`); when given only they are scored.
    n_splits : int, optional
        Class ranges per sample (default: enough blocks for ~4 per SM).
    sample_chunk : int, optional
        Samples per launch (default: all).

    Returns
    -------
    indices : cupy.ndarray of shape (n_samples, k), int64
    scores : cupy.ndarray of shape (n_samples, k), float32
    """
    _check_aggregation(aggregation)
    h = hash_args if hash_args is not None else hash_arguments(
        a=a, b=b, n_buckets=n_buckets, n_classes=n_classes)
    if n_classes is None:
        n_classes = h["K"]
    if n_classes is None:
        raise ValueError("n_classes is required (hash_args was built without n_classes)")
    K, k = int(n_classes), int(k)
    if h["use_table"] and K != h["K"]:
        raise ValueError(f"n_classes={K} differs from the permutation table's {h['K']}")
    h = dict(h, K=K)
    if candidates is not None:
        return topk_candidates_gpu(P, candidates, k, aggregation, hash_args=h)
    if not 1 <= K < 2**31 - 1:
        raise ValueError(f"n_classes must be in [1, 2**31 - 1); got {K}")
    k = check_k(k, K)
    idx, val = _topk_rank(P, h, K, k, aggregation, n_splits, sample_chunk)
    return idx, _reported(val, aggregation)


def _topk_rank(P, h, K, k, aggregation, n_splits=None, sample_chunk=None):
    """Top-k on the ranking scores (mean log for logmean)."""
    cupy = import_cupy()
    P = _prepare_P(P, h)
    n = P.shape[0]
    if n == 0:
        return cupy.empty((0, k), cupy.int64), cupy.empty((0, k), cupy.float32)
    if k > MAX_FUSED_K:
        return _topk_tiles(P, h, K, k, aggregation)
    head, agg, inv_R = _scalar_args(P, h, aggregation)
    chunk = n if sample_chunk is None else max(1, int(sample_chunk))
    n_splits, span = split_geometry(K, min(n, chunk), n_splits)
    fn = _module(_round_k(k)).get_function("mach_topk")
    idx_out = cupy.empty((n, k), cupy.int64)
    val_out = cupy.empty((n, k), cupy.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        Pc = P[s:e]  # a contiguous row range of a C-contiguous array
        keys = cupy.empty((e - s, n_splits, k), dtype=cupy.uint64)
        head_c = (Pc, np.int64(e - s)) + head[1:]  # head[0] is n, replaced by the chunk's
        fn((e - s, n_splits), (_BLOCK,),
           head_c + (np.int64(span), agg, inv_R, np.int32(k), keys))
        keys = keys.reshape(e - s, n_splits * k)
        idx, val = unpack_keys(topk_from_keys(keys, k) if n_splits > 1 else keys)
        idx_out[s:e], val_out[s:e] = idx, val
    return idx_out, val_out


def split_geometry(K, n_rows, n_splits=None, n_sm=None):
    """Class ranges per sample of the fused kernel: ``(n_splits, span)``.

    Enough blocks for ~4 per SM, but ~4 classes per thread per split at
    least; ``n_splits <= 65535`` (``gridDim.y``) and no split is empty.

    Examples
    --------
    >>> split_geometry(1000, 1, n_splits=3)
    (3, 334)
    >>> split_geometry(10, 1, n_splits=64)
    (10, 1)
    """
    if n_splits is None:
        n_sm = _sm_count() if n_sm is None else n_sm
        n_splits = max(1, min(-(-4 * n_sm // max(1, n_rows)), K // (4 * _BLOCK) or 1))
    n_splits = int(min(max(1, n_splits), 65535))
    span = -(-K // n_splits)
    return -(-K // span), span


def _sm_count():
    cupy = import_cupy()
    try:
        dev = cupy.cuda.Device().id
        return int(cupy.cuda.runtime.getDeviceProperties(dev)["multiProcessorCount"])
    except Exception:  # pragma: no cover - property names differ across CuPy versions
        return 132


def _round_k(k):
    """Per-thread list size: k rounded up to a power of two (fewer compilations)."""
    return 1 << max(0, math.ceil(math.log2(k)))


def _topk_tiles(P, h, K, k, aggregation, tile_bytes=256 * 2**20):
    """Large-k path: score class tiles with ``mach_class_scores`` and sort keys."""
    cupy = import_cupy()
    n = P.shape[0]
    block = max(k, int(tile_bytes // (8 * max(1, n))))
    best = None
    for start in range(0, K, block):
        stop = min(K, start + block)
        classes = cupy.arange(start, stop, dtype=cupy.int64)
        s = _class_scores(P, None, None, None, classes, aggregation, h, apply_exp=False)
        keys = pack_keys(s, classes[None, :])
        kk = min(k, stop - start)
        keys = topk_from_keys(keys, kk)
        best = keys if best is None else topk_from_keys(cupy.concatenate([best, keys], 1),
                                                        min(k, best.shape[1] + kk))
    return unpack_keys(best)


def topk_candidates_gpu(P, candidates, k, aggregation="mean", *, hash_args):
    """Top-k among each sample's candidate classes, on the GPU.

    Twin of ``skmach.mach._scoring._topk_candidates`` (sublinear inference).

    Parameters
    ----------
    P : cupy.ndarray of shape (n_samples, R, B)
    candidates : (indptr, classes) or cupy.ndarray of shape (n_samples, w)
        The CSR pair of :func:`skmach.mach._scoring.candidate_classes`
        (NumPy or CuPy; candidates of sample ``i`` are
        ``classes[indptr[i]:indptr[i+1]]``, sorted), or a padded matrix with
        -1 for padding.
    k : int
    aggregation : {"mean", "logmean", "min"}
    hash_args : dict
        From :func:`hash_arguments`, with ``n_classes``.

    Returns
    -------
    indices : cupy.ndarray of shape (n_samples, k), int64
    scores : cupy.ndarray of shape (n_samples, k), float32

    Notes
    -----
    As on the CPU, ``"mean"``/``"logmean"`` candidate scores are accumulated
    in float64 and rounded to float32 (``"logmean"`` ranks on the rounded
    mean log); ties go to the lower position in the row (the lower class,
    candidates being sorted); samples with fewer than ``k`` candidates are
    scored exactly over all classes instead.
    """
    cupy = import_cupy()
    _check_aggregation(aggregation)
    h = hash_args
    if h.get("K") is None:
        raise ValueError("topk_candidates_gpu needs hash_args built with n_classes "
                         "(samples with fewer than k candidates are scored over all classes)")
    K = int(h["K"])
    k = check_k(k, K)
    P = _prepare_P(P, h)
    n = P.shape[0]
    if isinstance(candidates, tuple):
        indptr = cupy.asarray(candidates[0], dtype=cupy.int64)
        cls = cupy.asarray(candidates[1], dtype=cupy.int64)
        if indptr.shape != (n + 1,):
            raise ValueError(f"candidates indptr must have n_samples + 1 = {n + 1} entries; "
                             f"got {indptr.shape}")
        counts = indptr[1:] - indptr[:-1]
        width = max(k, int(counts.max()) if n else k)
        # row and position of each candidate in the padded matrix
        rows = cupy.searchsorted(indptr, cupy.arange(cls.size), side="right") - 1
        pos_in_row = cupy.arange(cls.size) - indptr[rows]
        cand = cupy.full((n, width), -1, dtype=cupy.int64)
        cand[rows, pos_in_row] = cls
    else:
        cand = cupy.ascontiguousarray(cupy.asarray(candidates, dtype=cupy.int64))
        if cand.ndim != 2 or cand.shape[0] != n:
            raise ValueError(f"candidates must have shape (n_samples={n}, w); got {cand.shape}")
        if cand.shape[1] < k:
            cand = cupy.concatenate([cand, cupy.full((n, k - cand.shape[1]), -1, cupy.int64)], 1)
    if n == 0:
        return cupy.empty((0, k), cupy.int64), cupy.empty((0, k), cupy.float32)
    if cand.size and int(cand.max()) >= K:
        raise ValueError(f"candidate classes must be below n_classes={K}")
    w = cand.shape[1]
    out = cupy.empty((n, w), dtype=cupy.float32)
    head, agg, inv_R = _scalar_args(P, h, aggregation)
    grid, block = _grid_1d(n * w)
    _module(1).get_function("mach_candidate_scores")(
        grid, block, (P,) + head + (cand, np.int64(w), agg, inv_R, out))
    pos = cupy.arange(w, dtype=cupy.int64)[None, :]
    pos, val = unpack_keys(topk_from_keys(pack_keys(out, pos), k))
    idx = cupy.take_along_axis(cand, pos, axis=1)
    short = cupy.flatnonzero((idx < 0).any(axis=1))
    if short.size:  # fewer than k candidates: score those samples exactly
        idx[short], val[short] = _topk_rank(P[short], h, K, k, aggregation)
    return idx, _reported(val, aggregation)


# --------------------------------------------------------------------------
# 64-bit (score, index) keys; NumPy or CuPy (follow the input)
# --------------------------------------------------------------------------

def pack_keys(scores, idx):
    """Pack float32 scores and indices ``< 2**31`` into distinct uint64 keys.

    A larger key is a higher score, or an equal score with a lower index
    (``-0.0`` and ``+0.0`` are equal). Same bits as the CUDA ``make_key``.

    Parameters
    ----------
    scores : ndarray (float32, cast otherwise), NaN not allowed
    idx : ndarray of int, broadcastable to ``scores``

    Returns
    -------
    ndarray of uint64

    Examples
    --------
    >>> import numpy as np
    >>> keys = pack_keys(np.array([0.5, 0.5, 1.0, -0.0]), np.arange(4))
    >>> [int(i) for i in np.argsort(keys)[::-1]]  # best first
    [2, 0, 1, 3]
    """
    xp = array_namespace_of(scores, idx)
    s = xp.asarray(scores, dtype=xp.float32) + xp.float32(0.0)  # -0.0 -> +0.0
    u = s.view(xp.uint32).astype(xp.uint64)
    neg = (u >> xp.uint64(31)) == 1
    u = xp.where(neg, u ^ xp.uint64(0xFFFFFFFF), u | xp.uint64(0x80000000))
    low = xp.uint64(0xFFFFFFFF) - xp.asarray(idx).astype(xp.uint64)
    return (u << xp.uint64(32)) | low


def unpack_keys(keys):
    """Inverse of :func:`pack_keys`: ``(indices int64, scores float32)``.

    The empty key 0 (fewer classes than ``k``) decodes to index ``2**32 - 1``;
    callers never produce it when ``k <= n_classes``.

    Examples
    --------
    >>> import numpy as np
    >>> idx, val = unpack_keys(pack_keys(np.array([0.5, -2.0]), np.array([3, 7])))
    >>> idx.tolist(), val.tolist()
    ([3, 7], [0.5, -2.0])
    """
    xp = array_namespace_of(keys)
    keys = xp.asarray(keys, dtype=xp.uint64)
    idx = (xp.uint64(0xFFFFFFFF) - (keys & xp.uint64(0xFFFFFFFF))).astype(xp.int64)
    u = keys >> xp.uint64(32)
    pos = (u & xp.uint64(0x80000000)) != 0
    u = xp.where(pos, u & xp.uint64(0x7FFFFFFF), u ^ xp.uint64(0xFFFFFFFF))
    return idx, u.astype(xp.uint32).view(xp.float32)


def topk_from_keys(keys, k):
    """The ``k`` largest keys of each row, largest first.

    Keys are distinct, so any selection method gives the same set. Follows
    the input's array namespace (NumPy, CuPy, any array API library).

    Examples
    --------
    >>> import numpy as np
    >>> topk_from_keys(np.array([[3, 9, 1, 7]], dtype=np.uint64), 2).tolist()
    [[9, 7]]
    """
    xp = array_namespace_of(keys)
    return xp.flip(xp.sort(keys, axis=1), axis=1)[:, :k]


# --------------------------------------------------------------------------
# NumPy references of the kernels (used by the CuPy stand-in, _standin.py)
# --------------------------------------------------------------------------

def _ref_buckets(classes, R, B, a, b, table, K, use_table):
    """(R, m) bucket ids of ``classes`` as ``bucket_of`` computes them."""
    c = np.asarray(classes, dtype=np.int64)
    if use_table:
        return np.asarray(table).reshape(R, K)[:, c].astype(np.int64)
    from ._hashing import universal_buckets_reference

    return universal_buckets_reference(c, np.asarray(a)[:R], np.asarray(b)[:R], B).astype(np.int64)


def _ref_rank_scores(P, R, B, hash_, classes, agg, inv_R, candidate=False):
    """Ranking scores (n, m) of ``classes`` (shape (m,) or (n, m), >= 0)."""
    P = np.asarray(P, dtype=np.float32).reshape(-1, R, B)
    n = P.shape[0]
    classes = np.asarray(classes, dtype=np.int64)
    per_row = classes.ndim == 2
    H = _ref_buckets(classes.ravel(), R, B, *hash_).reshape((R,) + classes.shape)
    rows = np.arange(n)[:, None]

    def gather(r):
        return P[rows, r, H[r]] if per_row else P[:, r, :][:, H[r]]

    if agg == 2:
        s = gather(0)
        for r in range(1, R):
            s = np.minimum(s, gather(r))
        return s.astype(np.float32)
    if candidate:
        s = np.zeros(gather(0).shape, dtype=np.float64)
    else:
        s = np.zeros(gather(0).shape, dtype=np.float32)
    for r in range(R):
        p = gather(r)
        if agg == 1:
            p = np.log(np.maximum(p, _LOG_EPS))
        s += p
    if candidate:
        return (s / R).astype(np.float32)
    return s * np.float32(inv_R)


def _ref_mach_class_scores(grid, block, args, defines):
    P, n, R, B, a, b, table, K, use_table, classes, m, agg, inv_R, apply_exp, out = args
    hash_ = (a, b, table, int(K), int(use_table))
    s = _ref_rank_scores(P, int(R), int(B), hash_, np.asarray(classes)[:int(m)], int(agg), inv_R)
    if int(agg) == 1 and int(apply_exp):
        s = np.exp(s)
    out[...] = s.reshape(out.shape)


def _ref_mach_candidate_scores(grid, block, args, defines):
    P, n, R, B, a, b, table, K, use_table, cand, w, agg, inv_R, out = args
    hash_ = (a, b, table, int(K), int(use_table))
    cand = np.asarray(cand).reshape(int(n), int(w))
    s = _ref_rank_scores(P, int(R), int(B), hash_, np.maximum(cand, 0), int(agg), inv_R,
                         candidate=True)
    out[...] = np.where(cand < 0, np.float32(-np.inf), s).reshape(out.shape)


def _ref_mach_topk(grid, block, args, defines):
    P, n, R, B, a, b, table, K, use_table, span, agg, inv_R, k, out = args
    n, K, span, k = int(n), int(K), int(span), int(k)
    assert grid[0] == n and block == (defines["BLOCK"],) and k <= defines["TOPK"]
    hash_ = (a, b, table, K, int(use_table))
    out = out.reshape(n, grid[1], k)
    for split in range(grid[1]):
        c0, c1 = split * span, min(K, (split + 1) * span)
        classes = np.arange(c0, c1, dtype=np.int64)
        s = _ref_rank_scores(P, int(R), int(B), hash_, classes, int(agg), inv_R)
        keys = np.sort(pack_keys(s, classes[None, :]), axis=1)[:, ::-1][:, :k]
        out[:, split, :] = 0
        out[:, split, :keys.shape[1]] = keys


#: NumPy reference of each raw kernel, by name (see :mod:`._standin`).
NUMPY_REFERENCES = {
    "mach_class_scores": _ref_mach_class_scores,
    "mach_candidate_scores": _ref_mach_candidate_scores,
    "mach_topk": _ref_mach_topk,
}
