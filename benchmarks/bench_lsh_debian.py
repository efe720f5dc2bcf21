"""debian-paths in full: LSHSparseMLPClassifier with an LSH output layer
against the dense output layer of the same code (issue 12).

Both networks have one hidden layer of 128 ReLU units over the features of
``bench_debian.py`` (character 2-4-grams of the path hashed to 65,536
features, cached under ``benchmarks/_cache``) and 24,288 outputs (packages).
They differ only in the output layer: (a) LSH-sparse, at most
``--active-budget`` (<= 1%) of the outputs computed per sample, those whose
gradient is below ``--gradient-threshold`` left out of the update; (b) dense
(``lsh_layers="none"``: BLAS products, in-place Adam). Same epochs, batch
size and seed; the learning rate of each is its own option.

Both are trained on all 1,198,250 training paths and scored (P@1, P@3,
P@5) on the first 50,000 test paths, the evaluation set of
``results/debian_paths.md``, whose MACH and peer P@1 are copied into the
table as context rows (from that file's run, not re-run here).

Every thread pool is pinned to ``--threads`` (threadpoolctl, Numba,
``n_jobs``); wall and CPU seconds are recorded per epoch, and the load
average before and after the run (the machine is shared).

Usage::

    nice python benchmarks/bench_lsh_debian.py [--threads 2] [--epochs 1]
        [--n-train 1198250] [--n-eval 50000] [--dense-max-rows N]
        [--validate N]   # choose settings: score on the last N training paths

With ``--validate N`` the models train on the first ``--n-train`` training
paths (at most 1,198,250 - N) and are scored on the last ``N`` training
paths: the test file is not read. Settings were chosen that way (see
``results/lsh_mlp_notes.md``). ``--dense-max-rows`` times the dense model
on one epoch over that many rows and scales the time (no P@1); the recorded
run trains both in full. Writes ``results/lsh_mlp_debian{--tag}.{json,md}``.
"""

import os

# passive OpenMP waits (see skmach/_kernels/_lsh_train.py), before any import
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import (DEFAULT_DATA, RESULTS, command_line, machine,  # noqa: E402
                     markdown_table, peak_rss_mb, pin_threads, write_results)

N_TRAIN, N_TEST = 1_198_250, 299_562

#: chosen on a validation split of the training file (notes: lsh_mlp_notes.md)
LSH_OUTPUT = dict(lsh_layers="output", hash_family="dwta", n_tables=30, n_bits=4,
                  active_budget=0.01, selection="sample", hard_negatives=32,
                  gradient_threshold=0.003)
#: learning rate of both models, chosen the same way
LEARNING_RATE = 0.005


def network_params(epochs, batch_size=128, seed=0):
    """What both models share: 128 hidden units, the schedule, no early stop."""
    return dict(hidden_layer_sizes=(128,), n_epochs=epochs, batch_size=batch_size,
                random_state=seed, tol=0.0, n_iter_no_change=10**6)


def load_avg():
    return [round(x, 2) for x in os.getloadavg()]


def context_rows(path):
    """MACH's and the peers' rows of ``results/debian_paths.json``."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return [], None
    rows = []
    for r in d.get("rows", []):
        if "P@1" in r:
            rows.append({"model": f"{r['system']} [from debian_paths.json]",
                         "P@1": r["P@1"], "P@3": r.get("P@3"), "P@5": r.get("P@5"),
                         "fit_s": r.get("fit_s"), "fit_cpu_s": r.get("fit_cpu_s"),
                         "max_rss_mb": r.get("peak_rss_mb"), "context": True})
    return rows, d.get("command")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--n-eval", type=int, default=50_000)
    ap.add_argument("--validate", type=int, default=None,
                    help="score on the last N training paths instead of the test paths")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lsh-lr", type=float, default=LEARNING_RATE)
    ap.add_argument("--dense-lr", type=float, default=LEARNING_RATE)
    ap.add_argument("--hash-family", default=LSH_OUTPUT["hash_family"])
    ap.add_argument("--n-tables", type=int, default=LSH_OUTPUT["n_tables"])
    ap.add_argument("--n-bits", type=int, default=LSH_OUTPUT["n_bits"])
    ap.add_argument("--active-budget", type=float, default=LSH_OUTPUT["active_budget"])
    ap.add_argument("--selection", default=LSH_OUTPUT["selection"])
    ap.add_argument("--hard-negatives", type=int, default=LSH_OUTPUT["hard_negatives"])
    ap.add_argument("--gradient-threshold", type=float,
                    default=LSH_OUTPUT["gradient_threshold"])
    ap.add_argument("--dense-max-rows", type=int, default=None,
                    help="time the dense model on one epoch over this many rows and "
                         "scale (no P@1)")
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    if args.active_budget > 0.01:
        ap.error("issue 12 asks for at most 1% of the outputs active")

    pin_threads(args.threads)
    from bench_debian import load_debian
    from bench_lsh_mlp import WARM_UP_ROWS, run_ours

    load_before = load_avg()
    t0 = time.perf_counter()
    Xtr, Ytr, Xte, Yte = load_debian(args.data, N_TRAIN, N_TEST, 2**16, n_eval=args.n_eval)
    if args.validate:
        Xte, Yte = Xtr[-args.validate:], Ytr[-args.validate:]
        n_train = min(args.n_train, N_TRAIN - args.validate)
        evaluation = f"the last {args.validate:,} training paths (validation; test file unused)"
    else:
        n_train = args.n_train
        evaluation = f"the first {Xte.shape[0]:,} test paths"
    X, Y = Xtr[:n_train], Ytr[:n_train]
    del Xtr, Ytr
    print(f"data {time.perf_counter() - t0:.1f}s: train {X.shape}, labels {Y.shape[1]}, "
          f"eval {Xte.shape}", flush=True)

    common = network_params(args.epochs, args.batch_size, args.seed)
    lsh = dict(common, lsh_layers="output", hash_family=args.hash_family,
               n_tables=args.n_tables, n_bits=args.n_bits, active_budget=args.active_budget,
               selection=args.selection, hard_negatives=args.hard_negatives,
               gradient_threshold=args.gradient_threshold, learning_rate=args.lsh_lr)
    dense = dict(common, lsh_layers="none", learning_rate=args.dense_lr)
    rows = [run_ours(f"LSH output ({args.active_budget:.1%} active)", lsh, X, Y, Xte, Yte,
                     multilabel=True, threads=args.threads)]
    rows[-1]["peak_rss_mb_vmhwm"] = peak_rss_mb()
    if not args.no_dense:
        est = args.dense_max_rows is not None and args.dense_max_rows < n_train
        rows.append(run_ours("dense output (same code)" + (" [estimated]" if est else ""),
                             dense, X, Y, Xte, Yte, multilabel=True, threads=args.threads,
                             max_rows=args.dense_max_rows))
        rows[-1]["peak_rss_mb_vmhwm"] = peak_rss_mb()
    load_after = load_avg()

    out = {}
    if len(rows) == 2:
        a, b = rows
        out = {"speedup_wall": b["s_per_epoch"] / a["s_per_epoch"],
               "speedup_cpu": b["cpu_s_per_epoch"] / a["cpu_s_per_epoch"],
               "speedup_fit_wall": (b["fit_s"] / a["fit_s"]) if not b.get("estimated") else None}
        if "P@1" in b:
            out["P@1_gap_pp"] = 100 * (b["P@1"] - a["P@1"])
    for r in rows:
        r["candidates_out"] = r["candidates_per_sample"][-1]
        r["active_out"] = r["active_fraction"][-1]
        r["epoch_s_list"] = " ".join(f"{t:.1f}" for t in r["epoch_s"])
        r["epoch_cpu_s_list"] = " ".join(f"{t:.1f}" for t in r["epoch_cpu_s"])
    ctx_file = RESULTS / "debian_paths.json"
    if not ctx_file.exists():  # run.py --quick writes elsewhere: the recorded run's file
        ctx_file = Path(__file__).resolve().parent / "results" / "debian_paths.json"
    ctx, ctx_cmd = ([], None) if args.validate else context_rows(ctx_file)

    cols = [("model", None), ("P@1", "{:.4f}"), ("P@3", "{:.4f}"), ("P@5", "{:.4f}"),
            ("epochs", None), ("s_per_epoch", "{:.1f}"), ("cpu_s_per_epoch", "{:.1f}"),
            ("epoch_s_list", None), ("epoch_cpu_s_list", None), ("fit_s", "{:.1f}"),
            ("fit_cpu_s", "{:.1f}"), ("predict_s", "{:.1f}"), ("active_out", "{:.4f}"),
            ("candidates_out", "{:.0f}"), ("max_rss_mb", "{:.0f}")]
    ratio = ""
    if out:
        ratio = (f"- Speed-up of the LSH output layer per epoch (median epoch): "
                 f"**{out['speedup_wall']:.2f}x wall, {out['speedup_cpu']:.2f}x CPU**"
                 + (" (dense time estimated)" if rows[1].get("estimated") else "") + ".\n")
        if "P@1_gap_pp" in out:
            ratio += (f"- P@1 gap, dense minus LSH: **{out['P@1_gap_pp']:+.2f} points** "
                      f"({rows[1]['P@1']:.4f} vs {rows[0]['P@1']:.4f}).\n")
    est_note = ""
    if len(rows) == 2 and rows[1].get("estimated"):
        est_note = (f"- The dense row is an estimate: one epoch on the first "
                    f"{rows[1]['rows_timed']:,} rows, time scaled to {n_train:,}; no P@1.\n")
    md = (f"# debian-paths in full: LSH output layer against dense output (issue 12)\n\n"
          f"Command: `nice {command_line()}`\n\nMachine: {machine()}\n\n"
          f"Load average (1, 5, 15 min) before the run {load_before}, after {load_after}: "
          f"the machine (2 cores) may run other jobs, so "
          f"CPU seconds (process time) are the steadier figure.\n\n"
          f"{n_train:,} training paths, {Y.shape[1]:,} labels; scored on {evaluation}. "
          f"Features: character 2-4-grams hashed to 65,536 (bench_debian.py's cache). "
          f"Network 65,536-128-{Y.shape[1]}, batch {args.batch_size}, {args.epochs} "
          f"epoch(s) each, seed {args.seed}, {args.threads} thread(s) pinned (threadpoolctl, "
          f"Numba, n_jobs); each model first fitted untimed for one epoch on {WARM_UP_ROWS} paths "
          f"(Numba compiles its kernels then). LSH output: {args.hash_family}, L={args.n_tables} tables, "
          f"K={args.n_bits}, budget {args.active_budget:.1%}, selection {args.selection}, "
          f"{args.hard_negatives} hard negatives remembered per label, "
          f"gradient threshold {args.gradient_threshold}, "
          f"learning rate {args.lsh_lr}; dense: learning rate {args.dense_lr}.\n\n"
          + markdown_table(rows + ctx, cols) + "\n"
          + ratio + est_note
          + "- 'candidates_out': bucket entries examined per training sample in the output "
            "layer; 'active_out': fraction of the outputs computed per sample; 'max_rss_mb': "
            "process peak so far (data included; LSH runs first).\n"
          + (f"- Rows marked [from debian_paths.json] are copied from that file's run "
             f"(`{ctx_cmd}`; 2 threads, same features, same 50,000 test paths): context, "
             f"not re-run here; their times are whole fits.\n" if ctx else "")
          + "".join(f"- {r['model']} time breakdown (s, whole fit): {r['time_breakdown_s']}\n"
                    for r in rows))
    payload = {"command": command_line(), "machine": machine(), "load_before": load_before,
               "load_after": load_after, "n_train": n_train, "evaluation": evaluation,
               "rows": rows, "context_rows": ctx, "context_command": ctx_cmd, **out}
    write_results("lsh_mlp_debian" + ("_validation" if args.validate else "") + args.tag,
                  payload, md)


if __name__ == "__main__":
    main()
