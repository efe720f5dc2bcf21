"""Numerically stable softmax, log-softmax and sigmoid (NumPy references)."""

import numpy as np


def softmax(z, axis=-1, out=None):
    """Softmax along ``axis``; safe for logits of any magnitude.

    Rows holding ``+inf`` share the probability among their ``+inf``
    entries; rows that are entirely ``-inf`` get a uniform distribution.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.utils import softmax
    >>> softmax(np.array([[1000.0, 1000.0]])).tolist()
    [[0.5, 0.5]]
    >>> softmax(np.array([[np.inf, 0.0], [-np.inf, -np.inf]])).tolist()
    [[1.0, 0.0], [0.5, 0.5]]
    """
    with np.errstate(over="ignore"):  # z - m may round to -inf: exp gives 0, as it should
        return _softmax(_as_real(z), axis, out)


def _as_real(z):
    """``z`` as an array; integers and bools as float64 (their negation and
    ``exp`` would wrap or fail)."""
    z = np.asarray(z)
    return z.astype(np.float64) if z.dtype.kind in "biu" else z


def _softmax(z, axis, out):
    m = np.max(z, axis=axis, keepdims=True)
    finite = np.isfinite(m)
    if not finite.all():
        # +inf in a row: its +inf entries share the mass; a row of -inf: uniform
        w = np.where(finite | (m < 0), True, z == np.inf).astype(z.dtype)
        w /= w.sum(axis=axis, keepdims=True)
        e = np.exp(np.where(finite, z - np.where(finite, m, 0), 0))
        e /= e.sum(axis=axis, keepdims=True)
        e = np.where(finite, e, w)
        if out is not None:
            out[...] = e
            return out
        return e
    e = np.subtract(z, m, out=out)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def log_softmax(z, axis=-1):
    """Log of :func:`softmax`, computed without overflow or ``log(0)``.

    Rows holding ``+inf`` or entirely ``-inf`` follow :func:`softmax`'s rules
    (the log of its shares).

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.utils import log_softmax
    >>> log_softmax(np.array([[0.0, 0.0], [np.inf, 0.0]])).round(4).tolist()
    [[-0.6931, -0.6931], [0.0, -inf]]
    """
    z = _as_real(z)
    m = np.max(z, axis=axis, keepdims=True)
    finite = np.isfinite(m)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        s = z - np.where(finite, m, 0)
        out = s - np.log(np.exp(s).sum(axis=axis, keepdims=True))
        if not finite.all():  # rare rows: through softmax's rules
            out = np.where(finite, out, np.log(softmax(z, axis=axis)))
    return out


def sigmoid(z, out=None):
    """Logistic function, exact for large positive and negative ``z``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.utils import sigmoid
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    z = _as_real(z)
    if out is None:
        out = np.empty_like(z, dtype=np.result_type(z.dtype, np.float32))
    pos = z >= 0
    # exp of a non-positive number never overflows.
    e = np.exp(-np.abs(z))
    np.divide(1.0, 1.0 + e, out=out, where=pos)
    np.divide(e, 1.0 + e, out=out, where=~pos)
    return out


def log_sigmoid(z):
    """``log(sigmoid(z))`` without overflow."""
    z = np.asarray(z)
    return -np.logaddexp(0, -z)
