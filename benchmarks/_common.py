"""Shared helpers for the benchmarks: isolation, timing, peak memory, tables.

Each system runs in its own spawned process so that its peak resident
memory (``ru_maxrss``) is its own. Every process gets the same features.
"""

import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np

# benchmarks/run.py --quick points this elsewhere, so that smoke runs never
# overwrite the recorded results
RESULTS = Path(os.environ.get("SKMACH_BENCH_RESULTS")
               or Path(__file__).resolve().parent / "results")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def proc_status_mb(field):
    """A memory field of /proc/self/status (``"VmRSS"``, ``"VmHWM"``) in MiB,
    or NaN where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb():
    """Peak resident set size of this process, in MB.

    ``VmHWM`` of /proc/self/status belongs to this process's own address
    space (``ru_maxrss`` would also count the parent's memory at fork time).
    """
    peak = proc_status_mb("VmHWM")
    if peak == peak:  # not NaN
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet_stderr():
    """Send this process's C-level stderr to /dev/null (progress-bar spam)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def _child(fn, args, queue, threads=None):
    try:
        if threads is not None:
            pin_threads(threads)
        out = fn(*args)
        out["peak_rss_mb"] = peak_rss_mb()
        for key, (_, cpu) in zip(("fit_cpu_s", "predict_cpu_s"), TIMINGS):
            out.setdefault(key, cpu)
        queue.put(out)
    except Exception as exc:  # report, don't hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def run_isolated(fn, *args, timeout=3600, threads=None):
    """Run ``fn(*args)`` in a fresh process; return its dict plus ``peak_rss_mb``.

    With ``threads``, every thread pool of the child is pinned to that many
    threads first (:func:`pin_threads`).
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, args, q, threads))
    p.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            out = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():  # died without a word: killed (out of memory?)
                code = p.exitcode
                why = " (SIGKILL: out of memory?)" if code == -9 else ""
                return {"error": f"process died with exit code {code}{why}"}
            if time.monotonic() > deadline:
                p.kill()
                return {"error": f"timed out after {timeout}s"}
    p.join()
    return out


#: (wall, cpu) of every ``timed`` call in this process, in order; a run
#: function times its fit first and its predict second, and ``_child``
#: reports their CPU seconds as ``fit_cpu_s`` and ``predict_cpu_s``.
TIMINGS = []


def timed(f, *a, **kw):
    t, c = time.perf_counter(), time.process_time()
    r = f(*a, **kw)
    wall = time.perf_counter() - t
    TIMINGS.append((wall, time.process_time() - c))
    return r, wall


def timed_cpu(f, *a, **kw):
    """``(result, wall seconds, CPU seconds of this process, all threads)``."""
    t, c = time.perf_counter(), time.process_time()
    r = f(*a, **kw)
    return r, time.perf_counter() - t, time.process_time() - c


_PINNED = []


def pin_threads(n):
    """Pin every thread pool of this process to ``n`` threads.

    BLAS and OpenMP pools through threadpoolctl (kept for the life of the
    process), Numba's pool through ``numba.set_num_threads``, and the usual
    environment variables for libraries that start their pools later.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    _PINNED.append(threadpool_limits(limits=n))
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass


def machine():
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def command_line():
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_results(name, payload, markdown):
    RESULTS.mkdir(exist_ok=True, parents=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_jsonable))
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def markdown_table(rows, columns):
    head = "| " + " | ".join(c for c, _ in columns) + " |\n"
    head += "|" + "|".join("---" for _ in columns) + "|\n"
    for r in rows:
        cells = []
        for key, fmt in columns:
            v = r.get(key, "")
            cells.append(fmt.format(v) if isinstance(v, (int, float)) and fmt else str(v))
        head += "| " + " | ".join(cells) + " |\n"
    return head
