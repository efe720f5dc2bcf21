"""Reader and writer for the Extreme Classification Repository text format.

The format (http://manikvarma.org/downloads/XC/XMLRepository.html) is::

    n_points n_features n_labels
    l1,l2,... f1:v1 f2:v2 ...
    ...

with 0-based label and feature indices. The label part may be empty (the
line then starts with a space, or holds features only).
"""

import bz2
import gzip
import lzma
import numbers
import os
import re
import warnings
import zlib
from itertools import islice

import numpy as np
import scipy.sparse as sp

__all__ = ["load_xc", "iter_xc", "dump_xc"]

_INT32_MAX = np.iinfo(np.int32).max

# A whole block of feature parts, joined by spaces: every token must be
# ``digits:value`` with exactly one colon and a non-empty value.
_FEATURES_RE = re.compile(r"\s*(?:[0-9]+:[^\s:]+\s+)*")  # on text + " "
# A block of label parts joined by commas.
_LABELS_RE = re.compile(r"(?:[0-9]+(?:,[0-9]+)*)?")
_UINT_RE = re.compile(r"[0-9]+")


def _open_text(path, mode="rt"):
    """Open a text file, transparently (de)compressing .gz, .bz2 and .xz."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.open(path, mode, encoding="utf-8")
    if lower.endswith(".bz2"):
        return bz2.open(path, mode, encoding="utf-8")
    if lower.endswith((".xz", ".lzma")):
        return lzma.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _guarded(gen, path):
    """Re-raise decoding failures of ``gen`` as a ValueError naming the file."""
    try:
        yield from gen
    except (EOFError, UnicodeDecodeError, lzma.LZMAError, zlib.error, gzip.BadGzipFile,
            OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise ValueError(
            f"{os.fspath(path)}: the file could not be read (truncated or corrupt "
            f"compressed data, or not UTF-8 text): {type(exc).__name__}: {exc}"
        ) from exc


def _check_positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a floating-point type, got {dtype}")
    return dtype


_INT64_MAX = int(np.iinfo(np.int64).max)


def _read_header(f, fname, n_features, n_labels):
    line = f.readline()
    if not line or not line.strip():
        raise ValueError(
            f"{fname}, line 1: file is empty; expected the header "
            "'n_points n_features n_labels'"
        )
    parts = line.split()
    if len(parts) != 3 or not all(_UINT_RE.fullmatch(p) for p in parts):
        raise ValueError(
            f"{fname}, line 1: bad header {line.strip()[:80]!r}; expected three "
            "non-negative integers 'n_points n_features n_labels'"
        )
    n_points, hdr_features, hdr_labels = (int(p) for p in parts)
    for name, value in (("n_points", n_points), ("n_features", hdr_features),
                        ("n_labels", hdr_labels)):
        if value > _INT64_MAX:  # indices are int64 (NumPy raised OverflowError)
            raise ValueError(
                f"{fname}, line 1: bad header: {name}={value} is larger than 2**63 - 1"
            )
    widths = []
    for name, given, hdr in (
        ("n_features", n_features, hdr_features),
        ("n_labels", n_labels, hdr_labels),
    ):
        if given is None:
            widths.append(hdr)
            continue
        if isinstance(given, (bool, np.bool_)) or not isinstance(given, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {given!r}")
        if given < hdr:
            raise ValueError(
                f"{name}={given} is smaller than the {hdr} announced in the header "
                f"of {fname}"
            )
        widths.append(int(given))
    return n_points, hdr_features, hdr_labels, widths[0], widths[1]


def _strict_line(line, lineno, fname):
    """Parse one data line with full checks (used to locate errors)."""
    parts = line.split()
    labels, fidx, fval = [], [], []
    if not parts:
        return labels, fidx, fval
    if ":" not in parts[0]:
        for tok in parts[0].split(","):
            if not _UINT_RE.fullmatch(tok):
                raise ValueError(
                    f"{fname}, line {lineno}: label {tok!r} is not a non-negative "
                    "integer"
                )
            labels.append(int(tok))
        parts = parts[1:]
    for tok in parts:
        if tok.count(":") != 1:
            raise ValueError(
                f"{fname}, line {lineno}: feature {tok!r} is not of the form "
                "index:value"
            )
        a, b = tok.split(":")
        if not _UINT_RE.fullmatch(a):
            raise ValueError(
                f"{fname}, line {lineno}: feature index {a!r} is not a non-negative "
                "integer"
            )
        try:
            v = float(b)
        except ValueError:
            raise ValueError(
                f"{fname}, line {lineno}: feature value {b!r} is not a number"
            ) from None
        fidx.append(int(a))
        fval.append(v)
    return labels, fidx, fval


def _fromstring(s, dtype, sep):
    if not s:
        return np.empty(0, dtype=dtype)
    try:
        with warnings.catch_warnings():
            # Unparsable text: a DeprecationWarning in NumPy < 2.5, an error later.
            warnings.simplefilter("error", DeprecationWarning)
            return np.fromstring(s, dtype=dtype, sep=sep)
    except (ValueError, DeprecationWarning):
        return None


def _parse_fast(lines):
    """Vectorised parse; returns None when the block needs the strict parser."""
    n = len(lines)
    heads = [""] * n
    feats = [""] * n
    for i, line in enumerate(lines):
        parts = line.split(None, 1)
        if not parts:
            continue
        if ":" in parts[0]:
            feats[i] = line
        else:
            heads[i] = parts[0]
            if len(parts) > 1:
                feats[i] = parts[1]
    lab_counts = np.fromiter(
        (h.count(",") + 1 if h else 0 for h in heads), dtype=np.int64, count=n
    )
    feat_counts = np.fromiter((f.count(":") for f in feats), dtype=np.int64, count=n)
    lab_str = ",".join([h for h in heads if h])
    feat_str = " ".join(feats)
    if not _LABELS_RE.fullmatch(lab_str) or not _FEATURES_RE.fullmatch(feat_str + " "):
        return None
    labels = _fromstring(lab_str, np.int64, ",")
    pairs = _fromstring(feat_str.replace(":", " "), np.float64, " ")
    if labels is None or pairs is None:
        return None
    if labels.size != lab_counts.sum() or pairs.size != 2 * feat_counts.sum():
        return None
    return labels, lab_counts, pairs[0::2], pairs[1::2], feat_counts


def _parse_strict(lines, first_lineno, fname):
    labels, fidx, fval = [], [], []
    lab_counts = np.zeros(len(lines), dtype=np.int64)
    feat_counts = np.zeros(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        lab, fi, fv = _strict_line(line, first_lineno + i, fname)
        labels.extend(lab)
        fidx.extend(fi)
        fval.extend(fv)
        lab_counts[i] = len(lab)
        feat_counts[i] = len(fi)
    return (
        np.asarray(labels, dtype=np.int64),
        lab_counts,
        np.asarray(fidx, dtype=np.float64),
        np.asarray(fval, dtype=np.float64),
        feat_counts,
    )


def _line_of(indptr, element, first_lineno):
    return first_lineno + int(np.searchsorted(indptr, element, side="right")) - 1


def _build_csr(data, indices, counts, shape, first_lineno, fname, what):
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    idx_dtype = np.int32 if max(shape[1], indptr[-1]) <= _INT32_MAX else np.int64
    M = sp.csr_matrix(
        (data, indices.astype(idx_dtype), indptr.astype(idx_dtype)), shape=shape
    )
    M.sort_indices()
    if M.nnz > 1:
        dup = np.diff(M.indices) == 0
        bounds = M.indptr[1:-1]
        bounds = bounds[(bounds > 0) & (bounds < M.nnz)]
        dup[bounds - 1] = False  # pairs that straddle two rows
        if dup.any():
            e = int(np.argmax(dup))
            raise ValueError(
                f"{fname}, line {_line_of(M.indptr, e, first_lineno)}: duplicate "
                f"{what} index {int(M.indices[e])}"
            )
    return M


def _parse_block(lines, first_lineno, hdr, widths, dtype, fname):
    """Parse data lines into (X, Y) CSR blocks, raising with line numbers."""
    parsed = _parse_fast(lines)
    if parsed is None:
        parsed = _parse_strict(lines, first_lineno, fname)
    labels, lab_counts, fidx, fval, feat_counts = parsed
    hdr_features, hdr_labels = hdr
    n_features, n_labels = widths
    lab_ptr = np.concatenate([[0], np.cumsum(lab_counts)])
    feat_ptr = np.concatenate([[0], np.cumsum(feat_counts)])

    bad = np.flatnonzero((labels < 0) | (labels >= hdr_labels))
    if bad.size:
        e = bad[0]
        raise ValueError(
            f"{fname}, line {_line_of(lab_ptr, e, first_lineno)}: label "
            f"{int(labels[e])} is out of range for n_labels={hdr_labels} (header)"
        )
    bad = np.flatnonzero((fidx < 0) | (fidx >= hdr_features) | (fidx != np.floor(fidx)))
    if bad.size:
        e = bad[0]
        raise ValueError(
            f"{fname}, line {_line_of(feat_ptr, e, first_lineno)}: feature index "
            f"{fidx[e]:.0f} is out of range for n_features={hdr_features} (header)"
        )
    bad = np.flatnonzero(~np.isfinite(fval))
    if bad.size:
        e = bad[0]
        raise ValueError(
            f"{fname}, line {_line_of(feat_ptr, e, first_lineno)}: feature value "
            f"{fval[e]} is not finite"
        )
    with np.errstate(over="ignore"):
        data = fval.astype(dtype)
    bad = np.flatnonzero(~np.isfinite(data))
    if bad.size:
        e = bad[0]
        raise ValueError(
            f"{fname}, line {_line_of(feat_ptr, e, first_lineno)}: feature value "
            f"{fval[e]} overflows {np.dtype(dtype)}"
        )
    n = len(lines)
    X = _build_csr(
        data, fidx.astype(np.int64), feat_counts, (n, n_features), first_lineno,
        fname, "feature",
    )
    Y = _build_csr(
        np.ones(labels.size, dtype=np.float32), labels, lab_counts, (n, n_labels),
        first_lineno, fname, "label",
    )
    return X, Y


def iter_xc(path, chunk_size=10000, *, dtype=np.float32, n_features=None, n_labels=None):
    """Iterate over an XC-format file in blocks of rows, out of core.

    The file is read sequentially; at most ``chunk_size`` lines are held in
    memory at a time. Every block has the full widths announced in the header
    (or given as ``n_features`` / ``n_labels``), so the blocks can be fed to
    ``partial_fit`` directly.

    Parameters
    ----------
    path : str or os.PathLike
        File in the Extreme Classification Repository text format (see
        :func:`load_xc`). ``.gz``, ``.bz2`` and ``.xz`` files are decompressed
        on the fly.
    chunk_size : int, default=10000
        Number of rows per block (the last block may be smaller).
    dtype : floating dtype, default=np.float32
        Dtype of the feature values.
    n_features, n_labels : int, optional
        Widen the matrices beyond the header's counts (e.g. to align a test
        file with a training file). Must not be smaller than the header's.

    Yields
    ------
    X_chunk : sparse matrix of shape (n_rows, n_features), CSR
    Y_chunk : sparse matrix of shape (n_rows, n_labels), CSR of float32
        Binary label indicator.

    Raises
    ------
    ValueError
        For malformed input, naming the file and the 1-based line number. A
        problem is detected when the block holding it is read, so blocks
        before it have already been yielded.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmach.datasets import iter_xc
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("3 4 2\\n0 1:0.5\\n1,0 0:1 3:2\\n 2:1\\n")
    >>> [(X.shape, Y.shape) for X, Y in iter_xc(path, chunk_size=2)]
    [((2, 4), (2, 2)), ((1, 4), (1, 2))]
    """
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    dtype = _check_dtype(dtype)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return _guarded(_iter_xc(path, chunk_size, dtype, n_features, n_labels), path)


def _iter_xc(path, chunk_size, dtype, n_features, n_labels):
    fname = os.fspath(path)
    with _open_text(path) as f:
        n_points, hdr_f, hdr_l, width_f, width_l = _read_header(
            f, fname, n_features, n_labels
        )
        done = 0
        while done < n_points:
            want = min(chunk_size, n_points - done)
            lines = [line.rstrip("\n") for line in islice(f, want)]
            if len(lines) < want:
                raise ValueError(
                    f"{fname}, line {done + len(lines) + 2}: unexpected end of file; "
                    f"the header announces {n_points} data lines but the file has "
                    f"only {done + len(lines)} (truncated?)"
                )
            yield _parse_block(
                lines, done + 2, (hdr_f, hdr_l), (width_f, width_l), dtype, fname
            )
            done += want
        for extra, line in enumerate(f):
            if line.strip():
                raise ValueError(
                    f"{fname}, line {n_points + 2 + extra}: more data lines than the "
                    f"{n_points} announced in the header"
                )


def load_xc(path, *, dtype=np.float32, n_features=None, n_labels=None):
    """Load a data set in the Extreme Classification Repository text format.

    The first line is the header ``n_points n_features n_labels``; each of the
    ``n_points`` following lines is ``l1,l2,... f1:v1 f2:v2 ...`` with 0-based
    label and feature indices. The label part may be empty (the line then
    starts with a space or holds features only) and so may the feature part.

    Parameters
    ----------
    path : str or os.PathLike
        Path to the file; ``.gz``, ``.bz2`` and ``.xz`` files are decompressed
        transparently.
    dtype : floating dtype, default=np.float32
        Dtype of the feature values.
    n_features, n_labels : int, optional
        Widen the matrices beyond the header's counts (e.g. to align a test
        file with a training file). Must not be smaller than the header's.

    Returns
    -------
    X : sparse matrix of shape (n_points, n_features), CSR
        Features.
    Y : sparse matrix of shape (n_points, n_labels), CSR of float32
        Binary label indicator.

    Raises
    ------
    ValueError
        For malformed input, naming the file and the 1-based line number: a
        missing or bad header, an empty or truncated file (fewer data lines
        than announced) or extra data lines, a non-integer label, a feature
        not written ``index:value``, an index out of the header's range, a
        duplicate index within a line, or a NaN/infinite value.

    See Also
    --------
    iter_xc : Read the same format block by block, out of core.
    dump_xc : Write the format.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmach.datasets import load_xc
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("3 4 2\\n0 1:0.5\\n1,0 0:1 3:2\\n 2:1\\n")
    >>> X, Y = load_xc(path)
    >>> X.toarray()
    array([[0. , 0.5, 0. , 0. ],
           [1. , 0. , 0. , 2. ],
           [0. , 0. , 1. , 0. ]], dtype=float32)
    >>> Y.toarray()
    array([[1., 0.],
           [1., 1.],
           [0., 0.]], dtype=float32)
    """
    dtype = _check_dtype(dtype)
    blocks = list(iter_xc(path, 200_000, dtype=dtype, n_features=n_features, n_labels=n_labels))
    if not blocks:
        # No data lines: read the header again for the widths.
        fname = os.fspath(path)
        with _open_text(path) as f:
            _, _, _, width_f, width_l = _read_header(f, fname, n_features, n_labels)
        return (
            sp.csr_matrix((0, width_f), dtype=dtype),
            sp.csr_matrix((0, width_l), dtype=np.float32),
        )
    if len(blocks) == 1:
        return blocks[0]
    X = sp.vstack([b[0] for b in blocks], format="csr")
    Y = sp.vstack([b[1] for b in blocks], format="csr")
    return X, Y


def _as_csr(M, name):
    if sp.issparse(M):
        if M.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {M.shape}")
        M = sp.csr_matrix(M, copy=True)
    else:
        M = np.asarray(M)
        if M.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {M.shape}")
        if not (np.issubdtype(M.dtype, np.number) or M.dtype == bool):
            raise TypeError(f"{name} must be numeric, got dtype {M.dtype}")
        M = sp.csr_matrix(M)
    if np.issubdtype(M.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {M.dtype}")
    M.sum_duplicates()
    M.eliminate_zeros()
    return M


_DUMP_BLOCK_ROWS = 10_000


def dump_xc(path, X, Y):
    """Write a data set in the Extreme Classification Repository text format.

    Only non-zero features are written. Values are written with ``%.9g``
    (``%.17g`` for 64-bit floats), so float32 (float64) values round-trip
    exactly through :func:`load_xc`. A ``.gz``, ``.bz2`` or ``.xz`` suffix
    compresses the output.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (overwritten).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Features; must be finite.
    Y : {array-like, sparse matrix} of shape (n_samples, n_labels)
        Binary label indicator matrix.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skmach.datasets import dump_xc
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.txt")
    >>> dump_xc(path, np.array([[0, 0.5], [2, 0]]), np.array([[1, 1], [0, 0]]))
    >>> print(open(path).read(), end="")
    2 2 2
    0,1 1:0.5
     0:2
    """
    X = _as_csr(X, "X")
    Y = _as_csr(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X and Y have different numbers of samples: {X.shape[0]} and {Y.shape[0]}"
        )
    if X.nnz and not np.all(np.isfinite(X.data)):
        raise ValueError("X contains NaN or infinite values, which the format cannot hold")
    if Y.nnz and not np.all(Y.data == 1):
        raise ValueError("Y must be a binary indicator matrix with values in {0, 1}")
    fmt = "%d:%.17g" if X.dtype.itemsize > 4 or not np.issubdtype(X.dtype, np.floating) else "%d:%.9g"
    integer = np.issubdtype(X.dtype, np.integer) or X.dtype == bool
    if integer:
        fmt = "%d:%d"
    n_samples, n_features = X.shape
    with _open_text(path, "wt") as f:
        f.write(f"{n_samples} {n_features} {Y.shape[1]}\n")
        # A block of rows at a time: Python strings for every entry of a
        # large matrix would take tens of times its memory.
        for start in range(0, n_samples, _DUMP_BLOCK_ROWS):
            Xb = X[start:start + _DUMP_BLOCK_ROWS]
            Yb = Y[start:start + _DUMP_BLOCK_ROWS]
            # integers as Python ints (an int64 cast wrapped uint64 above 2**63)
            xdata = Xb.data.tolist()
            tokens = [fmt % t for t in zip(Xb.indices.tolist(), xdata)]
            labels = Yb.indices.tolist()
            xp, yp = Xb.indptr.tolist(), Yb.indptr.tolist()
            for i in range(Xb.shape[0]):
                lab = ",".join(map(str, labels[yp[i]:yp[i + 1]]))
                feat = " ".join(tokens[xp[i]:xp[i + 1]])
                f.write(f"{lab} {feat}\n" if feat else f"{lab}\n")
