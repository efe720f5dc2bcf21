"""The default MACHClassifier in a text pipeline, on the whole debian-paths file.

What a new user tries first::

    make_pipeline(
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**18,
                          alternate_sign=False),
        MACHClassifier(random_state=0, n_jobs=2),
    )

fitted on all 1,198,250 training paths (raw text, package names as a
multi-label indicator) and scored by P@k on the test file. Runs in its own
process with every thread pool pinned to ``--threads``; records wall and CPU
seconds, peak resident memory, and the sizes ``"auto"`` chose.

With ``--stream`` the training texts go to ``pipe.fit`` as a generator that
reads the file (the out-of-core use ``HashingVectorizer`` is made for) and the
labels are binarised chunk by chunk, so the process never holds the 1.2
million texts and label lists (about 0.5 GB of Python objects) beside the
pipeline; the peak then measures the pipeline rather than the caller's copy
of the data. The default keeps both in lists, as a first try would.

Usage::

    python benchmarks/bench_debian_pipeline.py [--n-train N] [--n-test N] [--threads 2]
        [--stream]
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from bench_debian import read_tsv
from _common import (DEFAULT_DATA, command_line, machine, markdown_table, pin_threads,
                     proc_status_mb, run_isolated, timed_cpu, write_results)


class _RSSPhases:
    """Peak resident memory (MiB) per phase, sampled every 20 ms on a thread."""

    def __init__(self):
        import threading

        self.phase, self.peaks, self.at_start = "start", {}, {}
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def rss():
        return proc_status_mb("VmRSS")

    def _sample(self):
        while True:
            # read the phase before the sample: reading /proc releases the GIL,
            # and a phase entered meanwhile must not get the old phase's peak
            phase = self.phase
            rss = self.rss()
            self.peaks[phase] = max(self.peaks.get(phase, 0.0), rss)
            time.sleep(0.02)

    def enter(self, phase):
        self.at_start[phase] = self.rss()
        self.peaks[phase] = self.at_start[phase]
        self.phase = phase


def _stream_texts(path, n):
    """The first ``n`` texts of a ``text<TAB>labels`` file, one at a time."""
    from skmach.datasets import iter_tsv

    seen = 0
    for texts, _ in iter_tsv(path, chunk_size=100_000):
        texts = texts[:n - seen]
        seen += len(texts)
        yield from texts
        if seen >= n:
            return


def _stream_indicator(path, n):
    """Indicator matrix and sorted classes of the first ``n`` label lists,
    binarised chunk by chunk (no list of all label lists is kept)."""
    import scipy.sparse as sp

    from skmach.datasets import iter_tsv, labels_to_indicator

    parts, seen = [], 0
    for _, labels in iter_tsv(path, chunk_size=100_000):
        labels = labels[:n - seen]
        seen += len(labels)
        parts.append(labels_to_indicator(labels))  # classes sorted within the chunk
        if seen >= n:
            break
    classes = np.unique(np.concatenate([c for _, c in parts]))
    blocks = [sp.csr_matrix((Y.data, np.searchsorted(classes, c)[Y.indices], Y.indptr),
                            shape=(Y.shape[0], len(classes))) for Y, c in parts]
    return sp.vstack(blocks, format="csr"), classes


def run(data, n_train, n_test, threads, dtype="float64", stream=False):
    pin_threads(threads)
    mem = _RSSPhases()
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.pipeline import make_pipeline

    from skmach import MACHClassifier
    from skmach.datasets import labels_to_indicator
    from skmach.metrics import precision_at_k

    root = Path(data) / "debian-paths"
    t0 = time.perf_counter()
    mem.enter("read")
    if stream:
        Ytr, classes = _stream_indicator(root / "train.tsv.xz", n_train)
        ttr = _stream_texts(root / "train.tsv.xz", n_train)  # read during the fit
    else:
        ttr, ltr = read_tsv(root / "train.tsv.xz", n_train)
        Ytr, classes = labels_to_indicator(ltr)
        del ltr
    read_s = time.perf_counter() - t0
    pipe = make_pipeline(
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**18,
                          alternate_sign=False, dtype=np.dtype(dtype)),
        MACHClassifier(random_state=0, n_jobs=threads),
    )
    clf = pipe[-1]
    mach_fit = clf.fit

    def fit_and_mark(X, y, **kw):  # instrument only: where the featurisation ends
        mem.enter("MACH fit")
        return mach_fit(X, y, **kw)

    clf.fit = fit_and_mark
    mem.enter("featurise")
    _, fit_s, fit_cpu = timed_cpu(pipe.fit, ttr, Ytr)
    del clf.fit
    mem.enter("predict")
    del ttr, Ytr
    tte, lte = read_tsv(root / "test.tsv.xz", n_test)
    with warnings.catch_warnings():  # test packages unseen in training are left out
        warnings.simplefilter("ignore")
        Yte, _ = labels_to_indicator(lte, classes=classes)

    def predict():
        return clf.predict_topk(pipe[:-1].transform(tte), 5)[0]

    top, pred_s, pred_cpu = timed_cpu(predict)
    return {"read_s": read_s, "fit_s": fit_s, "fit_cpu_s": fit_cpu, "predict_s": pred_s,
            "predict_cpu_s": pred_cpu, "n_test": len(tte),
            "rss_mb_at_start": {k: round(v) for k, v in mem.at_start.items()},
            "peak_rss_mb_by_phase": {k: round(v) for k, v in mem.peaks.items()},
            "P@1": precision_at_k(Yte, top, k=1), "P@5": precision_at_k(Yte, top, k=5),
            "sizes": {"n_buckets": clf.n_buckets_, "n_repetitions": clf.n_repetitions_,
                      "hidden_layer_size": clf.hidden_layer_size_, "n_epochs": clf.n_epochs_,
                      "learning_rate_schedule": clf.learning_rate_schedule_,
                      "loss": clf._loss, "final_loss": float(clf.loss_curve_[-1])}}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--n-train", type=int, default=1_198_250)
    ap.add_argument("--n-test", type=int, default=299_562)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="HashingVectorizer's dtype (float64 is its default)")
    ap.add_argument("--stream", action="store_true",
                    help="stream the training texts into pipe.fit, binarise labels by chunk")
    ap.add_argument("--name", default="debian_pipeline_defaults")
    args = ap.parse_args()
    out = run_isolated(run, args.data, args.n_train, args.n_test, args.threads, args.dtype,
                       args.stream, timeout=args.timeout)
    print(out, flush=True)
    dt = "" if args.dtype == "float64" else f", dtype={args.dtype}"
    how = ("texts streamed from the file into `pipe.fit`, labels binarised by chunk"
           if args.stream else "texts and label lists held in memory")
    row = {"system": f"make_pipeline(HashingVectorizer(char_wb 3-5, 2**18{dt}), MACHClassifier())",
           **{k: v for k, v in out.items() if k not in ("sizes", "trace")}}
    cols = [("system", None), ("fit_s", "{:.0f}"), ("fit_cpu_s", "{:.0f}"),
            ("predict_s", "{:.0f}"), ("predict_cpu_s", "{:.0f}"), ("P@1", "{:.3f}"),
            ("P@5", "{:.3f}"), ("peak_rss_mb", "{:.0f}")]
    md = (f"# debian-paths: the default estimator in a text pipeline\n\n"
          f"Command: `{command_line()}`\n\nMachine: {machine()}\n\n"
          f"{args.n_train:,} training paths (raw text; {how}), {out.get('n_test', args.n_test):,} test "
          f"paths; {args.threads} threads (every pool pinned, `n_jobs={args.threads}`). Fit and "
          f"predict include the featurisation. Sizes chosen by `\"auto\"`: "
          f"{out.get('sizes')}.\n\n" + markdown_table([row], cols)
          + f"\nResident memory (MiB) when each phase starts: {out.get('rss_mb_at_start')}; "
          f"peak within each phase: {out.get('peak_rss_mb_by_phase')}.\n")
    if "error" in out:
        md += f"\nFailure: {out['error']}\n"
    write_results(args.name, {"command": command_line(),
                                               "machine": machine(), **out}, md)


if __name__ == "__main__":
    main()
