"""CPU and wall seconds per epoch of MACH training, before and after the kernels.

"before" is the package at a given commit (default: the last commit before
the Numba kernels, d409a68), checked out into a temporary git worktree;
"after" is this working tree. Each run is a fresh process with every thread
pool pinned to ``--threads`` (threadpoolctl, Numba) and ``n_jobs`` equal to
it; the data is the cached debian-paths featurisation of ``bench_debian.py``
(first ``--n-fit`` training paths), with the debian-paths settings, one
epoch.

Usage::

    python benchmarks/bench_mach_epoch.py [--n-fit 100000] [--threads 1 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETTINGS = dict(n_buckets=1024, n_repetitions=8, hidden_layer_size=64, n_epochs=1,
                learning_rate=0.02, batch_size=512, loss="softmax")


def worker(n_fit, threads):
    sys.path.insert(0, str(HERE))
    from _common import pin_threads, timed_cpu

    pin_threads(threads)
    from bench_debian import load_debian

    from skmach import MACHClassifier

    Xtr, Ytr, _, _ = load_debian(str(ROOT / ".." / "shared" / "data"), 1_198_250, 299_562, 2**16)
    X, Y = Xtr[:n_fit], Ytr[:n_fit]
    import skmach

    clf = MACHClassifier(**SETTINGS, n_jobs=threads, random_state=0)
    _, wall, cpu = timed_cpu(clf.fit, X, Y)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "loss": float(clf.loss_curve_[-1]),
                      "skmach": str(Path(skmach.__file__).parent)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-fit", type=int, default=100_000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--before", default="d409a68")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--name", default="mach_epoch")
    args = ap.parse_args()
    if args.worker:
        return worker(args.n_fit, args.threads[0])
    sys.path.insert(0, str(HERE))
    from _common import command_line, machine, markdown_table, write_results

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old),
                        args.before], check=True, capture_output=True)
        try:
            for threads in args.threads:
                for label, src in (("before", old), ("after", ROOT)):
                    for _ in range(args.repeat):
                        env = dict(os.environ, PYTHONPATH=str(src))
                        out = subprocess.run(
                            [sys.executable, __file__, "--worker", "--n-fit", str(args.n_fit),
                             "--threads", str(threads)],
                            env=env, capture_output=True, text=True, cwd=tmp)
                        if out.returncode:
                            raise RuntimeError(out.stderr[-2000:])
                        res = json.loads(out.stdout.strip().splitlines()[-1])
                        assert res["skmach"].startswith(str(src)), res
                        rows.append({"code": label, "threads": threads, **res})
                        print(rows[-1], flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           capture_output=True)
    for r in rows:
        ref = [b for b in rows if b["code"] == "before" and b["threads"] == r["threads"]]
        r["cpu_vs_before"] = r["cpu_s"] / min(b["cpu_s"] for b in ref)
        r["wall_vs_before"] = r["wall_s"] / min(b["wall_s"] for b in ref)
    cols = [("code", None), ("threads", None), ("wall_s", "{:.1f}"), ("cpu_s", "{:.1f}"),
            ("wall_vs_before", "{:.2f}"), ("cpu_vs_before", "{:.2f}"), ("loss", "{:.4f}")]
    md = (f"# MACH: seconds per training epoch, before and after the Numba kernels\n\n"
          f"Command: `{command_line()}`\n\nMachine: {machine()}\n\n"
          f"One epoch on the first {args.n_fit:,} debian-paths training paths (65,536 hashed "
          f"character 2-4-gram features, 24,288 labels), settings {SETTINGS}; `before` is commit "
          f"{args.before}. Every thread pool pinned to the thread count and `n_jobs` equal to "
          f"it. CPU seconds are the process's, all threads. The machine is shared: compare "
          f"CPU seconds first.\n\n" + markdown_table(rows, cols))
    write_results(args.name, {"command": command_line(), "machine": machine(),
                                 "rows": rows}, md)


if __name__ == "__main__":
    main()
