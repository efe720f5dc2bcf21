"""Run every CPU benchmark and write one report: JSON, Markdown and plots.

Each suite is its own script (run here as a subprocess, so a failure or a
missing optional peer stops only that suite) and writes
``<results>/<name>.{json,md}`` with the exact command that produced it. This
script then gathers them into ``<results>/REPORT.md``, ``<results>/report.json``
and ``<results>/*.png``.

Usage::

    python benchmarks/run.py                   # everything, as recorded (hours on 2 cores)
    python benchmarks/run.py --quick           # small versions, into results/quick/ (minutes)
    python benchmarks/run.py --only xc scale   # some suites
    python benchmarks/run.py --report-only     # rebuild the report from the stored results

The full run needs the data sets of ``../shared/data`` and the peers of the
``bench`` extra (``make bench-install``); suites whose data or peers are
missing report the failure in their table and the run goes on. The GPU
benchmark is separate (``benchmarks/gpu_check.sh``, on a machine with CUDA).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# name -> (script arguments of the recorded run, arguments of --quick, result files)
SUITES = {
    "xc": (["bench_xc.py"],
           ["bench_xc.py", "--datasets", "bibtex"],
           ["xc_peers"]),
    "multilabel": (["bench_multilabel_estimators.py"],
                   ["bench_multilabel_estimators.py", "--datasets", "bibtex"],
                   ["multilabel_estimators"]),
    "scale": (["bench_scale.py", "--n-train", "50000"],
              ["bench_scale.py", "--classes", "10000", "100000", "--n-train", "5000",
               "--n-test", "200", "--epochs", "1"],
              ["scale_synthetic"]),
    "debian": (["bench_debian.py", "--n-eval", "50000"],
               ["bench_debian.py", "--n-train", "20000", "--n-test", "2000", "--n-eval", "1000"],
               ["debian_paths"]),
    "debian_quiet": (["bench_debian.py", "--n-eval", "50000", "--systems", "mach", "pecos",
                      "--name", "debian_paths_quiet"],
                     ["bench_debian.py", "--n-train", "20000", "--n-test", "2000", "--n-eval",
                      "1000", "--systems", "mach", "pecos", "--name", "debian_paths_quiet"],
                     ["debian_paths_quiet"]),
    "debian_pipeline": (["bench_debian_pipeline.py"],
                        ["bench_debian_pipeline.py", "--n-train", "20000", "--n-test", "2000"],
                        ["debian_pipeline_defaults"]),
    "mach_epoch": (["bench_mach_epoch.py", "--n-fit", "50000", "--threads", "1", "2"],
                   ["bench_mach_epoch.py", "--n-fit", "5000", "--threads", "1"],
                   ["mach_epoch"]),
    "lsh_images": (["bench_lsh_mlp.py", "images", "--epochs", "5"],
                   ["bench_lsh_mlp.py", "images", "--epochs", "1", "--datasets", "rectangles"],
                   ["lsh_mlp_images"]),
    "lsh_xc": (["bench_lsh_mlp.py", "xc", "--epochs", "5", "--debian-train", "300000",
                "--debian-test", "50000"],
               ["bench_lsh_mlp.py", "xc", "--epochs", "1", "--datasets", "delicious"],
               ["lsh_mlp_xc"]),
    "lsh_extreme": (["bench_lsh_mlp.py", "extreme", "--epochs", "1"],
                    ["bench_lsh_mlp.py", "extreme", "--epochs", "1", "--n-classes", "2000",
                     "--extreme-samples", "2000", "--threads", "1"],
                    ["lsh_mlp_extreme"]),
    "lsh_crossover": (["bench_lsh_mlp.py", "crossover", "--epochs", "2", "--threads", "1",
                       "--n-classes", "1000", "2000", "4000", "8000", "16000"],
                      ["bench_lsh_mlp.py", "crossover", "--epochs", "1", "--threads", "1",
                       "--n-classes", "500", "2000"],
                      ["lsh_mlp_crossover"]),
    "lsh_debian": (["bench_lsh_debian.py", "--threads", "1", "--epochs", "2"],
                   ["bench_lsh_debian.py", "--threads", "1", "--n-train", "20000",
                    "--n-eval", "2000"],
                   ["lsh_mlp_debian"]),
}


def run_suite(name, quick, results):
    full, small, _ = SUITES[name]
    script, *rest = small if quick else full
    # relative to the repository root, as the scripts record their command line
    argv = [sys.executable, str((HERE / script).relative_to(HERE.parent)), *rest]
    env = dict(os.environ, SKMACH_BENCH_RESULTS=str(results))
    print(f"== {name}: {shlex.join(argv)}", flush=True)
    t = time.perf_counter()
    rc = subprocess.call(argv, cwd=HERE.parent, env=env)
    return {"suite": name, "rc": rc, "wall_s": time.perf_counter() - t,
            "command": shlex.join(["python", *argv[1:]])}


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def load_results(results):
    out = {}
    for _, _, files in SUITES.values():
        for f in files:
            j, m = results / f"{f}.json", results / f"{f}.md"
            if j.exists():
                out[f] = {"json": json.loads(j.read_text()),
                          "markdown": m.read_text() if m.exists() else ""}
    return out


def plot_scale(res, path):
    rows = res["json"]["rows"]
    rows = [r for r in rows if "fit_s" in r]
    if not rows:
        return False
    import matplotlib.pyplot as plt

    K = [r["n_classes"] for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    ax[0].plot(K, [r["fit_peak_mb"] for r in rows], "o-", label="fit peak RSS")
    ax[0].plot(K, [r["model_mb"] for r in rows], "s-", label="weights")
    ax[0].plot(K, [r["classes_mb"] for r in rows], "^-", label="classes_")
    ax[0].set(xscale="log", yscale="log", xlabel="classes", ylabel="MB")
    ax[0].legend(fontsize=8)
    ax[1].plot(K, [r["fit_s"] for r in rows], "o-")
    ax[1].set(xscale="log", xlabel="classes", ylabel="fit time (s)")
    ax[2].plot(K, [r["speedup"] for r in rows], "o-", label="speedup")
    ax2 = ax[2].twinx()
    ax2.plot(K, [r["recall@5_of_exact"] for r in rows], "s--", color="C1")
    ax2.set(ylim=(0.9, 1.0), ylabel="recall@5 of exact top-5")
    ax[2].set(xscale="log", xlabel="classes", ylabel="candidate scoring speedup")
    fig.suptitle("MACHClassifier against the number of classes (synthetic)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_peers(results, path):
    tables = []
    if "xc_peers" in results:
        rows = results["xc_peers"]["json"]["rows"]
        for ds in dict.fromkeys(r.get("dataset") for r in rows):
            tables.append((ds, [r for r in rows if r.get("dataset") == ds]))
    if "debian_paths" in results:
        tables.append(("debian-paths", results["debian_paths"]["json"]["rows"]))
    tables = [(ds, [r for r in rows if "P@1" in r]) for ds, rows in tables]
    tables = [t for t in tables if t[1]]
    if not tables:
        return False
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, len(tables), figsize=(4 * len(tables), 6), squeeze=False)
    for j, (ds, rows) in enumerate(tables):
        names = [r["system"].split(" (")[0].replace("skmach ", "").replace("sklearn ", "")
                 for r in rows]
        bars = ax[0, j].barh(names, [r["P@1"] for r in rows])
        ax[0, j].bar_label(bars, fmt="%.3f", fontsize=8)
        ax[0, j].set(title=ds, xlabel="P@1", xlim=(0, 1.15))
        bars = ax[1, j].barh(names, [r.get("fit_s", 0) for r in rows], color="C1")
        ax[1, j].bar_label(bars, fmt="%.1f", fontsize=8)
        ax[1, j].set(xlabel="fit time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_lsh(res, path):
    data = res["json"]["results"]
    if not data:
        return False
    import matplotlib.pyplot as plt

    names = list(data)
    models = [r["model"] for r in data[names[0]]["rows"]]
    fig, ax = plt.subplots(figsize=(2.5 + 2 * len(names), 3.2))
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        acc = [next((r["test_accuracy"] for r in data[n]["rows"] if r["model"] == m), 0)
               for n in names]
        ax.bar([x + i * width for x in range(len(names))], acc, width, label=m)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(names))], names)
    ax.set(ylabel="test accuracy", ylim=(0.5, 1.0))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(results_dir, runs=()):
    results = load_results(results_dir)
    plots = []
    for fname, make in [("scale.png", lambda p: "scale_synthetic" in results
                         and plot_scale(results["scale_synthetic"], p)),
                        ("peers.png", lambda p: plot_peers(results, p)),
                        ("lsh_images.png", lambda p: "lsh_mlp_images" in results
                         and plot_lsh(results["lsh_mlp_images"], p))]:
        try:
            if make(results_dir / fname):
                plots.append(fname)
        except (KeyError, TypeError, ValueError, ImportError) as exc:
            print(f"plot {fname} skipped: {type(exc).__name__}: {exc}")
    md = ["# skmach benchmark report", "",
          "Each section below is the table written by one benchmark script, with the",
          "command that produced it. Rebuild with `python benchmarks/run.py --report-only`.", ""]
    if runs:
        md += ["| suite | command | exit | wall s |", "|---|---|---|---|"]
        md += [f"| {r['suite']} | `{r['command']}` | {r['rc']} | {r['wall_s']:.0f} |"
               for r in runs]
        md.append("")
    md += [f"![{p}]({p})" for p in plots] + [""]
    for name, res in results.items():
        body = res["markdown"].strip().splitlines()
        # demote each table's own headings under this report's title
        md += [("#" + line) if line.startswith("#") else line for line in body] + [""]
    (results_dir / "REPORT.md").write_text("\n".join(md))
    payload = {"runs": list(runs), "plots": plots,
               "results": {k: v["json"] for k, v in results.items()}}
    (results_dir / "report.json").write_text(json.dumps(payload, indent=1))
    print(f"wrote {results_dir / 'REPORT.md'} ({len(results)} result sets, {len(plots)} plots)")
    return payload


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(SUITES), default=None)
    ap.add_argument("--skip", nargs="+", choices=list(SUITES), default=[])
    ap.add_argument("--quick", action="store_true",
                    help="small versions of every suite, written to --results")
    ap.add_argument("--results", default=None,
                    help="results folder (default benchmarks/results, or "
                         "benchmarks/results/quick with --quick)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    results = Path(args.results) if args.results else (
        RESULTS / "quick" if args.quick else RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    runs = []
    if not args.report_only:
        for name in args.only or SUITES:
            if name not in args.skip:
                runs.append(run_suite(name, args.quick, results))
    write_report(results, runs)
    return 0 if all(r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
