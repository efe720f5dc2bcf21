"""Readers for raw-text multi-label data: ``text<TAB>label1,label2`` lines."""

import numbers
import os
import warnings
from itertools import chain, islice, repeat

import numpy as np
import scipy.sparse as sp

from ._xc import _check_positive_int, _guarded, _open_text

__all__ = ["load_tsv", "iter_tsv", "labels_to_indicator"]


def _parse_tsv_lines(lines, first_lineno, fname):
    texts, labels = [], []
    for i, line in enumerate(lines):
        text, sep, labs = line.rpartition("\t")
        if not sep:
            raise ValueError(
                f"{fname}, line {first_lineno + i}: no TAB separating the text "
                "from the labels"
            )
        if labs:
            lab = labs.split(",")
            if "" in lab:
                raise ValueError(
                    f"{fname}, line {first_lineno + i}: empty label in {labs!r}"
                )
        else:
            lab = []
        texts.append(text)
        labels.append(lab)
    return texts, labels


def iter_tsv(path, chunk_size=10000):
    """Iterate over a ``text<TAB>label1,label2`` file in chunks of lines.

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 text file, one sample per line: the text, a TAB, then the
        comma-separated labels (possibly none). The last TAB on the line
        separates text from labels. ``.gz``, ``.bz2`` and ``.xz`` files are
        decompressed on the fly.
    chunk_size : int, default=10000
        Number of lines per chunk (the last chunk may be smaller).

    Yields
    ------
    texts : list of str
    labels : list of list of str

    Raises
    ------
    ValueError
        If a line has no TAB or an empty label (``"a,,b"``), naming the file
        and the 1-based line number.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmach.datasets import iter_tsv
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.tsv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("usr/bin/ls\\tcoreutils\\nusr/bin/x\\ta,b\\nREADME\\t\\n")
    >>> for texts, labels in iter_tsv(path, chunk_size=2):
    ...     print(texts, labels)
    ['usr/bin/ls', 'usr/bin/x'] [['coreutils'], ['a', 'b']]
    ['README'] [[]]
    """
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return _guarded(_iter_tsv(path, chunk_size), path)


def _iter_tsv(path, chunk_size):
    fname = os.fspath(path)
    lineno = 1
    with _open_text(path) as f:
        while True:
            lines = [line.rstrip("\n") for line in islice(f, chunk_size)]
            if not lines:
                return
            yield _parse_tsv_lines(lines, lineno, fname)
            lineno += len(lines)


def load_tsv(path):
    """Load a ``text<TAB>label1,label2`` file (e.g. the debian-paths data).

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 text file, one sample per line (see :func:`iter_tsv`); ``.gz``,
        ``.bz2`` and ``.xz`` files are decompressed transparently.

    Returns
    -------
    texts : list of str
        The text of each line.
    labels : list of list of str
        The labels of each line, in file order.

    See Also
    --------
    labels_to_indicator : Turn ``labels`` into a sparse indicator matrix.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmach.datasets import load_tsv
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.tsv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("usr/bin/ls\\tcoreutils\\nusr/bin/x\\ta,b\\n")
    >>> load_tsv(path)
    (['usr/bin/ls', 'usr/bin/x'], [['coreutils'], ['a', 'b']])
    """
    texts, labels = [], []
    for t, l in iter_tsv(path, chunk_size=100_000):
        texts.extend(t)
        labels.extend(l)
    return texts, labels


def labels_to_indicator(labels, classes=None):
    """Binarise per-sample label lists into a sparse indicator matrix.

    Same result as ``MultiLabelBinarizer(classes=classes,
    sparse_output=True).fit_transform(labels)`` (classes sorted when not given,
    repeated labels within a sample counted once, labels missing from a given
    ``classes`` ignored with a warning), but faster on millions of samples and
    with float32 entries.

    Parameters
    ----------
    labels : iterable of iterables
        The labels of each sample (hashable values, e.g. strings). A bare
        string is rejected, since it would be read as a sequence of
        characters.
    classes : array-like, optional
        Column order. By default the sorted set of all labels.

    Returns
    -------
    Y : sparse matrix of shape (n_samples, n_classes), CSR of float32
        ``Y[i, j] = 1`` if ``classes[j]`` is a label of sample ``i``.
    classes : ndarray of shape (n_classes,)
        Integer dtype if every class is a Python/NumPy integer, else object
        (as in :class:`~sklearn.preprocessing.MultiLabelBinarizer`).

    Examples
    --------
    >>> from skmach.datasets import labels_to_indicator
    >>> Y, classes = labels_to_indicator([["b", "a"], [], ["c", "b"]])
    >>> classes
    array(['a', 'b', 'c'], dtype=object)
    >>> Y.toarray()
    array([[1., 1., 0.],
           [0., 0., 0.],
           [0., 1., 1.]], dtype=float32)
    """
    if isinstance(labels, (str, bytes)):
        raise TypeError("labels must be a sequence of label lists, not a string")
    labels = list(labels)
    is_str = list(map(isinstance, labels, repeat((str, bytes))))
    if any(is_str):
        i = is_str.index(True)
        raise TypeError(
            f"labels[{i}] is a string ({labels[i]!r}); each sample needs a list "
            "of labels, e.g. [['a'], ['b', 'c']]"
        )
    try:
        counts = np.fromiter(map(len, labels), dtype=np.int64, count=len(labels))
    except TypeError:
        raise TypeError("each element of labels must be a sequence of labels") from None
    flat = list(chain.from_iterable(labels))
    if classes is None:
        try:
            cls_list = sorted(set(flat))
        except TypeError:
            raise TypeError(
                "labels of different, non-comparable types cannot be sorted; pass "
                "classes explicitly"
            ) from None
    else:
        cls_list = list(classes)
        if len(set(cls_list)) != len(cls_list):
            raise ValueError("classes contains duplicates")
    index = {c: i for i, c in enumerate(cls_list)}
    codes = np.fromiter(
        map(index.get, flat, repeat(-1)), dtype=np.int64, count=len(flat)
    )
    rows = np.repeat(np.arange(len(labels), dtype=np.int64), counts)
    unknown = codes < 0
    if unknown.any():
        missing = sorted({flat[j] for j in np.flatnonzero(unknown)[:1000]}, key=str)
        warnings.warn(
            f"unknown class(es) {missing[:10]} will be ignored", UserWarning, stacklevel=2
        )
        codes, rows = codes[~unknown], rows[~unknown]
    n_classes = len(cls_list)
    Y = sp.csr_matrix(
        (np.ones(codes.size, dtype=np.float32), (rows, codes)),
        shape=(len(labels), n_classes),
    )
    Y.sum_duplicates()
    Y.data[:] = 1.0
    if all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in cls_list):
        out = np.empty(n_classes, dtype=int)
    else:
        out = np.empty(n_classes, dtype=object)
    out[:] = cls_list
    return Y, out
