"""Command line: ``python -m skmach`` / ``skmach``.

Sub-commands
------------
demo
    Train MACH on the embedded data set beside one-vs-rest (``make demo``).
fit
    Train a model on an XC-format or ``text<TAB>labels`` (TSV) file and save it
    with joblib.
predict
    Write the top-k labels (with scores) of every sample of a file.
evaluate
    Print P@k and nDCG@k (and PSP@k given propensity parameters) on a file.

Files are read in chunks for ``predict`` and ``evaluate``, so test files
larger than memory are fine. Text is featurised by a
:class:`~sklearn.feature_extraction.text.HashingVectorizer` whose settings
are saved with the model (the saved model is then a
:class:`~sklearn.pipeline.Pipeline` of the vectorizer and the estimator).
Malformed input files and model files give a one-line error message and exit
status 2.
"""

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

#: Version of the layout of the dictionary that ``skmach fit`` saves.
MODEL_FORMAT_VERSION = 1

_ESTIMATORS = ("mach", "lsh-mlp")


class CLIError(Exception):
    """An error in the user's input: reported in one line, exit status 2."""


def _bar(total, desc, unit, quiet):
    """A tqdm progress bar on stderr (``tqdm.auto``), or a silent one with ``-q``."""
    from .utils._progress import progress_bar

    return progress_bar(total, verbose=not quiet, desc=desc, unit=unit)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
def _strip_compression(path):
    low = os.fspath(path).lower()
    for ext in (".gz", ".bz2", ".xz", ".lzma"):
        if low.endswith(ext):
            return low[: -len(ext)]
    return low


def detect_format(path):
    """Guess whether ``path`` is an XC-format or a ``text<TAB>labels`` file.

    ``.tsv`` files are TSV; otherwise a first line of three non-negative
    integers (the XC header) means XC, and a line with a TAB means TSV.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    fmt : {"xc", "tsv"}
    """
    if _strip_compression(path).endswith((".tsv", ".tab")):
        return "tsv"
    from .datasets._xc import _open_text

    with _open_text(path) as f:
        first = f.readline()
    parts = first.split()
    if len(parts) == 3 and all(p.isdigit() for p in parts) and "\t" not in first:
        return "xc"
    if "\t" in first:
        return "tsv"
    raise CLIError(
        f"{path}: cannot tell the format from the first line {first[:60]!r}; "
        "pass --format xc or --format tsv"
    )


def _check_file(path):
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory")
    return path


def _check_output(out, *inputs):
    """Refuse an output path that cannot be written (a missing directory, a
    directory, no permission) or that is one of ``inputs`` (writing it would
    destroy that file)."""
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise CLIError(f"{out}: directory {out_dir} does not exist")
    if os.path.isdir(out):
        raise CLIError(f"{out}: is a directory")
    if not os.access(out_dir, os.W_OK) or (os.path.exists(out) and not os.access(out, os.W_OK)):
        raise CLIError(f"{out}: not writable")
    if os.path.exists(out):
        for src in inputs:
            if os.path.exists(src) and os.path.samefile(out, src):
                raise CLIError(f"{out}: the output would overwrite the input file {src}")


def _file_lines(path):
    """Number of lines of an uncompressed file (for a progress total), or None."""
    if _strip_compression(path) != os.fspath(path).lower():
        return None
    if os.path.getsize(path) > 2**30:
        return None
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            n += block.count(b"\n")
    return n


def _read_xc_header(path):
    from .datasets._xc import _open_text

    with _open_text(path) as f:
        parts = f.readline().split()
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise CLIError(
            f"{path}, line 1: bad header; expected 'n_points n_features n_labels'"
        )
    return tuple(int(p) for p in parts)


def _load_train(path, fmt, chunk_size, quiet):
    """Read a whole training file: (X or texts, Y, label_names)."""
    from .datasets import iter_tsv, iter_xc, labels_to_indicator

    if fmt == "xc":
        n_points, _, _ = _read_xc_header(path)
        n_chunks = -(-n_points // chunk_size) if n_points else 0
        Xs, Ys = [], []
        with _bar(n_chunks, "read " + os.path.basename(path), "chunks", quiet) as bar:
            for X, Y in iter_xc(path, chunk_size=chunk_size):
                Xs.append(X)
                Ys.append(Y)
                bar.update()
        if not Xs:
            raise CLIError(f"{path}: no samples")
        X, Y = sp.vstack(Xs, format="csr"), sp.vstack(Ys, format="csr")
        return X, Y, np.arange(Y.shape[1])
    texts, labels = [], []
    with _bar(None, "read " + os.path.basename(path), "lines", quiet) as bar:
        for t, l in iter_tsv(path, chunk_size=chunk_size):
            texts.extend(t)
            labels.extend(l)
            bar.update(len(t))
    if not texts:
        raise CLIError(f"{path}: no samples")
    Y, names = labels_to_indicator(labels)
    if len(names) == 0:
        raise CLIError(f"{path}: no labels at all")
    return texts, Y, names


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def _make_estimator(args, kind):
    if args.estimator == "mach":
        from .mach import MACHClassifier

        return MACHClassifier(
            n_buckets=args.n_buckets, n_repetitions=args.n_repetitions,
            hidden_layer_size=args.hidden_layer_size, n_epochs=args.n_epochs,
            batch_size=args.batch_size,
            learning_rate=0.05 if args.learning_rate is None else args.learning_rate,
            n_candidate_buckets=args.n_candidate_buckets,
            n_jobs=args.n_jobs, random_state=args.random_state,
        )
    try:
        from .neural_network import LSHSparseMLPClassifier
    except ImportError as exc:  # pragma: no cover - depends on the build
        raise CLIError(f"--estimator lsh-mlp is not available: {exc}") from None
    hidden = args.hidden_layer_size or 256
    return LSHSparseMLPClassifier(
        hidden_layer_sizes=(hidden,), active_budget=args.active_budget,
        n_epochs=args.n_epochs, batch_size=args.batch_size,
        learning_rate=1e-3 if args.learning_rate is None else args.learning_rate,
        random_state=args.random_state,
    )


def _train_epochs(est, X, y, classes, n_epochs, quiet):
    """Train epoch by epoch (``partial_fit``) so that progress can be shown."""
    with _bar(n_epochs, "fit", "epochs", quiet) as bar:
        for epoch in range(n_epochs):
            if epoch == 0 and classes is not None:
                est.partial_fit(X, y, classes=classes)
            else:
                est.partial_fit(X, y)
            curve = getattr(est, "loss_curve_", None)
            if curve is not None and len(curve):
                bar.set_postfix(loss=f"{curve[-1]:.4f}", refresh=False)
            bar.update(1)
    return est


def cmd_fit(args):
    import joblib

    path = _check_file(args.train)
    # before training: a run must not end in an error about the output path
    _check_output(args.model, path)
    fmt = detect_format(path) if args.format == "auto" else args.format
    quiet = args.quiet
    t0 = time.perf_counter()
    data, Y, names = _load_train(path, fmt, args.chunk_size, quiet)
    n_samples, n_labels = Y.shape
    counts = np.bincount(Y.indices, minlength=n_labels)
    per_row = np.diff(Y.indptr)
    task = args.task
    if task == "auto":
        task = "multiclass" if np.all(per_row == 1) else "multilabel"
    if task == "multiclass":
        if not np.all(per_row == 1):
            raise CLIError(
                f"{path}: --task multiclass needs exactly one label per sample; "
                f"{int(np.sum(per_row != 1))} sample(s) have another number"
            )
        y = Y.indices.astype(np.int64)
        classes = np.unique(y)
    else:
        y, classes = Y, None
    est = _make_estimator(args, task)

    vectorizer = None
    if fmt == "tsv":
        from sklearn.feature_extraction.text import HashingVectorizer

        vectorizer = HashingVectorizer(
            n_features=args.n_features, analyzer=args.analyzer,
            ngram_range=tuple(args.ngram_range), alternate_sign=False,
            lowercase=not args.no_lowercase, norm="l2", dtype=np.float32,
        )
        X = vectorizer.fit_transform(data)
    else:
        X = data
    if not quiet:
        print(f"{n_samples} samples, {X.shape[1]} features, {n_labels} labels "
              f"({task}); training {type(est).__name__}", file=sys.stderr)
    _train_epochs(est, X, y, classes, args.n_epochs, quiet)
    if vectorizer is not None:
        from sklearn.pipeline import Pipeline

        model = Pipeline([("hashing", vectorizer), ("clf", est)])
    else:
        model = est
    bundle = {
        "skmach_model_format": MODEL_FORMAT_VERSION,
        "model": model,
        "format": fmt,
        "task": task,
        "label_names": names,
        "n_features": int(X.shape[1]),
        "n_train": int(n_samples),
        "label_counts": counts.astype(np.int64),
    }
    joblib.dump(bundle, args.model, compress=args.compress)
    size = os.path.getsize(args.model)
    print(f"saved {args.model} ({size / 2**20:.1f} MB) in "
          f"{time.perf_counter() - t0:.1f}s")
    return 0


# ---------------------------------------------------------------------------
# predict / evaluate
# ---------------------------------------------------------------------------
_BUNDLE_KEYS = ("model", "format", "task", "label_names", "n_features", "n_train",
                "label_counts")


def load_model(path):
    """Load a model saved by ``skmach fit``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bundle : dict
        ``"model"`` (the estimator or pipeline), ``"format"``, ``"task"``,
        ``"label_names"``, ``"n_features"``, ``"n_train"`` and
        ``"label_counts"``.
    """
    import joblib

    _check_file(path)
    try:
        bundle = joblib.load(path)
    except Exception as exc:  # joblib/pickle raise many types on garbage
        raise CLIError(f"{path}: not a model saved by 'skmach fit' ({type(exc).__name__}: "
                       f"{exc})") from None
    if not isinstance(bundle, dict) or "skmach_model_format" not in bundle:
        raise CLIError(f"{path}: not a model saved by 'skmach fit'")
    if bundle["skmach_model_format"] > MODEL_FORMAT_VERSION:
        raise CLIError(f"{path}: saved by a newer skmach; upgrade skmach")
    missing = sorted(set(_BUNDLE_KEYS) - set(bundle))
    if missing:
        raise CLIError(f"{path}: an incomplete model file (no {', '.join(missing)})")
    return bundle


def _iter_input(path, fmt, bundle, chunk_size):
    """Yield ``(X_or_texts, true_labels)`` chunks; labels are lists of names or None."""
    from .datasets import iter_tsv, iter_xc

    if fmt == "xc":
        n_points, n_feat, _ = _read_xc_header(path)
        if n_feat > bundle["n_features"]:
            raise CLIError(
                f"{path}: {n_feat} features, but the model was trained on "
                f"{bundle['n_features']}"
            )
        for X, Y in iter_xc(path, chunk_size=chunk_size, n_features=bundle["n_features"]):
            yield X, [Y.indices[Y.indptr[i]:Y.indptr[i + 1]].tolist()
                      for i in range(Y.shape[0])]
    elif fmt == "tsv":
        yield from iter_tsv(path, chunk_size=chunk_size)
    else:  # one raw text per line
        from .datasets._xc import _open_text

        with _open_text(path) as f:
            while True:
                lines = [line.rstrip("\n") for _, line in zip(range(chunk_size), f)]
                if not lines:
                    return
                yield lines, None


def _input_format(args, bundle, path):
    fmt = args.format
    if fmt == "auto":
        fmt = bundle["format"]
    if fmt == "text" and bundle["format"] != "tsv":
        raise CLIError("--format text needs a model trained on a TSV file")
    if fmt != "text" and fmt != bundle["format"]:
        raise CLIError(
            f"the model was trained on {bundle['format']} data; {path} is read as {fmt}"
        )
    return fmt


def _total_chunks(path, fmt, chunk_size):
    if fmt == "xc":
        n = _read_xc_header(path)[0]
    else:
        n = _file_lines(path)
    return None if n is None else max(1, -(-n // chunk_size))


def _topk(bundle, data, k):
    """Top-k positions into ``label_names`` and their scores."""
    from ._api import _final_estimator, predict_topk

    model = bundle["model"]
    try:
        k = min(k, len(_final_estimator(model).classes_))
        labels, scores = predict_topk(model, data, k)
    except TypeError as exc:
        raise CLIError(f"the saved model cannot rank labels: {exc}") from None
    # classes_ hold positions into label_names (multi-label: arange; multi-class:
    # the label ids seen in training)
    return np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def cmd_predict(args):
    path = _check_file(args.input)
    to_file = args.output not in (None, "-")
    if to_file:  # opening it truncates it: never the input or the model
        _check_output(args.output, path, args.model)
    bundle = load_model(args.model)
    fmt = _input_format(args, bundle, path)
    names = bundle["label_names"]
    out = open(args.output, "w", encoding="utf-8") if to_file else sys.stdout
    n = 0
    try:
        with _bar(_total_chunks(path, fmt, args.chunk_size), "predict", "chunks",
                  args.quiet) as bar:
            for data, _ in _iter_input(path, fmt, bundle, args.chunk_size):
                idx, scores = _topk(bundle, data, args.k)
                lines = [
                    "\t".join(f"{names[j]}:{s:.6g}" for j, s in zip(row, srow))
                    for row, srow in zip(idx, scores)
                ]
                out.write("\n".join(lines) + ("\n" if lines else ""))
                n += len(lines)
                bar.update()
    finally:
        if out is not sys.stdout:
            out.close()
    if out is not sys.stdout:
        print(f"wrote the top {args.k} labels of {n} samples to {args.output}",
              file=sys.stderr)
    return 0


def _propensities(bundle, n_cols, A, B):
    from .metrics import propensity_scores

    counts = np.zeros(n_cols, dtype=np.int64)
    c = bundle["label_counts"]
    counts[: len(c)] = c[:n_cols]
    N = max(bundle["n_train"], int(counts.max(initial=0)), 3)
    # an indicator with the training label counts: column l holds N_l ones
    rows = np.concatenate([np.arange(m) for m in counts]) if counts.sum() else np.zeros(0, int)
    cols = np.repeat(np.arange(n_cols), counts)
    Y = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(N, n_cols))
    return propensity_scores(Y, A=A, B=B)


def cmd_evaluate(args):
    from .metrics import ndcg_at_k, precision_at_k, psp_at_k

    path = _check_file(args.test)
    bundle = load_model(args.model)
    fmt = _input_format(args, bundle, path)
    if fmt == "text":
        raise CLIError("evaluate needs labels: use an XC or TSV file")
    use_psp = args.propensity_A is not None or args.propensity_B is not None
    if use_psp and (args.propensity_A is None or args.propensity_B is None):
        raise CLIError("give both --propensity-A and --propensity-B")
    ks = sorted(set(args.k))
    kmax = max(ks)
    names = bundle["label_names"]
    index = {(int(v) if fmt == "xc" else v): i for i, v in enumerate(names.tolist())}
    extra = {}  # test labels unknown to the model get new columns
    sums = {(m, k): 0.0 for m in ("P", "nDCG", "PSP", "PSPmax") for k in ks}
    n = 0
    with _bar(_total_chunks(path, fmt, args.chunk_size), "evaluate", "chunks",
              args.quiet) as bar:
        for data, labels in _iter_input(path, fmt, bundle, args.chunk_size):
            m = len(labels)
            if m == 0:
                continue
            cols = []
            for lab in labels:
                row = []
                for v in lab:
                    j = index.get(v)
                    if j is None:
                        j = extra.setdefault(v, len(names) + len(extra))
                    row.append(j)
                cols.append(sorted(set(row)))
            n_cols = len(names) + len(extra)
            indptr = np.concatenate([[0], np.cumsum([len(r) for r in cols])])
            ind = np.fromiter((j for r in cols for j in r), dtype=np.int64, count=indptr[-1])
            Y = sp.csr_matrix((np.ones(len(ind), dtype=np.float32), ind, indptr),
                              shape=(m, n_cols))
            idx, _ = _topk(bundle, data, kmax)
            if use_psp:
                p = _propensities(bundle, n_cols, args.propensity_A, args.propensity_B)
                ideal = Y.multiply(1.0 / p).tocsr().astype(np.float64)
            for k in ks:
                sums["P", k] += m * precision_at_k(Y, idx, k=k, n_classes=n_cols)
                sums["nDCG", k] += m * ndcg_at_k(Y, idx, k=k, n_classes=n_cols)
                if use_psp:
                    sums["PSP", k] += m * psp_at_k(Y, idx, k=k, propensities=p,
                                                   normalize=False, n_classes=n_cols)
                    sums["PSPmax", k] += m * psp_at_k(Y, ideal, k=k, propensities=p,
                                                      normalize=False, n_classes=n_cols)
            n += m
            bar.update()
    if n == 0:
        raise CLIError(f"{path}: no samples")
    print(f"{n} test samples, {len(extra)} test label(s) unknown to the model")
    header = f"{'metric':8s}" + "".join(f"{'@' + str(k):>8s}" for k in ks)
    print(header)
    rows = [("P", "P"), ("nDCG", "nDCG")] + ([("PSP", "PSP")] if use_psp else [])
    for label, key in rows:
        vals = []
        for k in ks:
            if key == "PSP":
                d = sums["PSPmax", k]
                vals.append(sums["PSP", k] / d if d > 0 else 0.0)
            else:
                vals.append(sums[key, k] / n)
        print(f"{label:8s}" + "".join(f"{v:8.4f}" for v in vals))
    return 0


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------
def _power_of_two_int(text):
    """Parse ``1048576`` or ``2**20``."""
    try:
        if "**" in text:
            base, exp = text.split("**")
            value = int(base) ** int(exp)
        else:
            value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def build_parser():
    """The argument parser of the ``skmach`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="skmach", description="Hashing-based extreme classification for scikit-learn."
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"skmach {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train MACH on the embedded data set beside one-vs-rest")
    demo.add_argument("--n-jobs", type=int, default=2)
    demo.add_argument("--random-state", type=int, default=0)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--chunk-size", type=_positive_int, default=10000,
                        help="lines read at a time (default: 10000)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    fit = sub.add_parser(
        "fit", parents=[common], help="train a model on an XC or TSV file and save it",
        description="Train a model and save it with joblib. XC files hold sparse "
        "features; TSV files ('text<TAB>label1,label2') are featurised by a "
        "HashingVectorizer saved with the model.",
    )
    fit.add_argument("--train", required=True, help="training file (XC or TSV; .gz/.bz2/.xz ok)")
    fit.add_argument("--format", choices=["auto", "xc", "tsv"], default="auto")
    fit.add_argument("--model", required=True, help="output model file (.joblib)")
    fit.add_argument("--estimator", choices=_ESTIMATORS, default="mach")
    fit.add_argument("--task", choices=["auto", "multiclass", "multilabel"], default="auto",
                     help="auto: multiclass when every sample has exactly one label")
    g = fit.add_argument_group("model")
    g.add_argument("--n-buckets", type=_positive_int, default=32, help="MACH: B (default 32)")
    g.add_argument("--n-repetitions", type=_positive_int, default=16,
                   help="MACH: R (default 16)")
    g.add_argument("--n-candidate-buckets", type=_positive_int, default=None,
                   help="MACH: sublinear top-k over this many buckets per repetition")
    g.add_argument("--hidden-layer-size", type=int, default=0,
                   help="MACH: 0 for linear (default); lsh-mlp: hidden units (default 256)")
    g.add_argument("--active-budget", type=float, default=0.05,
                   help="lsh-mlp: active fraction of neurons (default 0.05)")
    g.add_argument("--n-epochs", type=_positive_int, default=10)
    g.add_argument("--batch-size", type=_positive_int, default=256)
    g.add_argument("--learning-rate", type=float, default=None,
                   help="default 0.05 for mach, 1e-3 for lsh-mlp")
    g.add_argument("--n-jobs", type=int, default=None)
    g.add_argument("--random-state", type=int, default=0)
    g.add_argument("--compress", type=int, default=3, choices=range(10),
                   metavar="{0..9}", help="joblib compression level (default 3)")
    t = fit.add_argument_group("text features (TSV)")
    t.add_argument("--n-features", type=_power_of_two_int, default=2**18,
                   help="hashing space, e.g. 2**20 (default 2**18; MACH memory is "
                   "R*B*n_features floats)")
    t.add_argument("--analyzer", choices=["word", "char", "char_wb"], default="char_wb")
    t.add_argument("--ngram-range", type=_positive_int, nargs=2, default=[1, 4],
                   metavar=("MIN", "MAX"))
    t.add_argument("--no-lowercase", action="store_true")

    pred = sub.add_parser("predict", parents=[common], help="write the top-k labels of a file",
                          description="Write one line per sample: 'label:score' pairs, "
                          "best first, separated by TABs.")
    pred.add_argument("--model", required=True)
    pred.add_argument("--input", required=True)
    pred.add_argument("--format", choices=["auto", "xc", "tsv", "text"], default="auto",
                      help="auto: the model's training format; text: one raw text per line")
    pred.add_argument("--k", type=_positive_int, default=5)
    pred.add_argument("--output", default=None, help="output file (default: stdout)")

    ev = sub.add_parser("evaluate", parents=[common], help="print P@k and nDCG@k on a file")
    ev.add_argument("--model", required=True)
    ev.add_argument("--test", required=True)
    ev.add_argument("--format", choices=["auto", "xc", "tsv"], default="auto")
    ev.add_argument("--k", type=_positive_int, nargs="+", default=[1, 3, 5])
    ev.add_argument("--propensity-A", type=float, default=None,
                    help="with --propensity-B, also print PSP@k (XC repository: 0.55)")
    ev.add_argument("--propensity-B", type=float, default=None,
                    help="(XC repository: 1.5)")
    return parser


_COMMANDS = {"fit": cmd_fit, "predict": cmd_predict, "evaluate": cmd_evaluate}


def main(argv=None):
    """Run the ``skmach`` command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    status : int
        0 on success, 2 for bad arguments or input files.
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            run_demo(n_jobs=args.n_jobs, random_state=args.random_state)
            return 0
        return _COMMANDS[args.command](args)
    except CLIError as exc:
        print(f"skmach {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, UnicodeDecodeError, EOFError,
            OverflowError) as exc:
        if os.environ.get("SKMACH_DEBUG"):
            raise
        print(f"skmach {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        if os.environ.get("SKMACH_DEBUG"):
            raise
        print(f"skmach {args.command}: error: out of memory ({exc}); use a smaller --k, "
              "--chunk-size or model", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
