"""Compiled CPU kernels (Numba), shared by the estimators.

Every kernel module here keeps its plain NumPy reference beside the
compiled function; the tests compare the two on small cases.

Compilation
-----------
Kernels are compiled with ``cache=True``: the first call in a fresh
environment compiles (a few seconds per kernel, measured in the user guide)
and later processes load the machine code from the cache. Numba writes the
cache beside the source when it can, else in the user's cache directory
(``NUMBA_CACHE_DIR`` overrides both). When neither is writable (a read-only
site-packages and home), :func:`_ensure_cache_dir` points Numba at a
temporary directory so that importing skmach never fails.

Threads
-------
Training kernels are serial and release the GIL: joblib runs one thread per
group of repetitions and each uses one core. Prediction kernels are
``parallel=True`` over samples; :func:`numba_threads` sets how many threads
they use (thread-local in Numba), from the estimator's ``n_jobs``.
"""

import os
import tempfile
from contextlib import contextmanager

# GNU OpenMP (Numba's "omp" threading layer): how the pool's idle threads
# wait for the next parallel region. By default they spin 300,000 times
# (milliseconds) first; on a loaded machine the spinning threads starved the
# others (LSH training at 2 threads: 9 s/epoch spinning, 0.5 s passive, on
# 10k MNIST samples). Passive threads sleep at once, and a parallel region
# then costs a wake-up (about 50 us on this project's 2-core machine), which
# is why the network runs small kernels on one thread. A short spin
# (``GOMP_SPINCOUNT=4000``) made the LSH epoch faster but the dense one,
# whose BLAS workers spin too, 20-30% slower (lsh_mlp_notes.md). Set before
# the OpenMP runtime starts; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from joblib import effective_n_jobs  # noqa: E402


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def _ensure_cache_dir():
    """Give Numba a writable cache directory if it has none."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    user = os.path.join(os.path.expanduser("~"), ".cache", "numba")
    if _writable(os.path.join(here, "__pycache__")) or _writable(user):
        return
    numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="skmach-numba-")


_ensure_cache_dir()

#: options of every serial kernel. ``error_model="numpy"``: a division by
#: zero gives inf/nan as in NumPy instead of a Python exception, whose check
#: would stop LLVM from vectorising the loops (4-5x on the Adam step).
SERIAL = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")
#: options of every kernel parallel over samples
PARALLEL = dict(cache=True, nogil=True, parallel=True, boundscheck=False, error_model="numpy")


@numba.njit(**PARALLEL)
def _first_parallel_region(a):
    for i in numba.prange(a.shape[0]):
        a[i] = i


def threadsafe_layer():
    """Whether Numba's parallel kernels may run from two threads at once.

    True for the "omp" and "tbb" threading layers; the "workqueue" layer
    (the fallback where neither OpenMP nor TBB is found) terminates the
    process when two threads enter it. The layer is chosen by the first
    parallel region, which this starts if none has run yet.
    """
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        _first_parallel_region(np.zeros(1))
        layer = numba.threading_layer()
    return layer in ("omp", "tbb")


def n_threads_for(n_jobs):
    """Cores that ``n_jobs`` asks for (joblib semantics), at most Numba's pool."""
    return max(1, min(effective_n_jobs(n_jobs), numba.config.NUMBA_NUM_THREADS))


#: kernels with fewer inner-loop steps than this run on the calling thread
#: (:func:`one_thread_if_small`): a parallel region wakes the pool's sleeping
#: threads, 50 us and more on a 2-core VM, and the calling thread's next
#: kernels run slower after it (serial ones too: 10-20% on debian-paths at 2
#: threads). A vectorised kernel does this many multiply-adds in about 0.2
#: ms; below that a second thread did not pay inside an LSH fit (delicious'
#: output layer, 2.4-2.5 million a batch: forward 0.18 -> 0.22-0.25 ms at 2
#: threads, the Adam step no faster; debian-paths' output layer, 4-6 million:
#: 1.1-1.35x faster). LSH fits at 2 threads, s per epoch, 100,000 against
#: 3,000,000 (median of 3, two sweeps): delicious 0.21 / 0.24 -> 0.17 / 0.20,
#: 60,000 debian-paths 4.70 / 3.98 -> 4.41 / 3.94 (lsh_mlp_notes.md, eleventh
#: round)
MIN_PARALLEL_WORK = 3_000_000


@contextmanager
def one_thread_if_small(work):
    """Run the parallel kernels inside the block on one thread when ``work``
    (their inner-loop steps, roughly) is below :data:`MIN_PARALLEL_WORK`.

    The results do not change: the kernels split their work into a fixed
    number of chunks whatever the threads.
    """
    old = numba.get_num_threads()
    small = old > 1 and work < MIN_PARALLEL_WORK
    if small:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            numba.set_num_threads(old)


@contextmanager
def numba_threads(n_jobs):
    """Run the parallel kernels inside the block on ``n_jobs`` threads."""
    old = numba.get_num_threads()
    numba.set_num_threads(n_threads_for(n_jobs))
    try:
        yield
    finally:
        numba.set_num_threads(old)
