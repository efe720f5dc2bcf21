"""MACH's ``"auto"`` sizes, and the memory check done before training.

The rules (measured on bibtex and delicious, ``benchmarks/results/xc_settings.md``,
and on debian-paths, ``debian_settings.md`` and
``debian_pipeline_defaults.md``; settings chosen on training data only):

``n_buckets``
    ``8 * sqrt(K)``, at most ``K / 2``, rounded to the nearest power of two
    (24,288 classes: 1,024 buckets; 983: 256; 159: 64).
``n_repetitions``
    16 up to 10,000 classes, 4 above (each repetition costs a full pass
    over the data; with more buckets fewer are needed). On debian-paths,
    with the first layer's weights fixed, fewer and wider repetitions won:
    R=4 with 60 hidden units reached validation P@1 0.9725 against 0.9684
    for R=8 with 30, at 0.82x the CPU time (``debian_settings_full.md``);
    and the default pipeline took 0.62x the CPU time of R=8 for P@1 0.969
    against 0.975 at its (budget-limited) 32 hidden units.
``hidden_layer_size``
    The largest power of two up to 256 for which the first layer holds at
    most ``2**25`` weights in all (128 MiB in float32, 384 MiB with Adam's
    moments), and at least 32: 256 for bibtex and delicious, 128 for 65,536
    hashed features and 4 repetitions, 32 for ``2**18`` features.
``n_epochs``
    5 below 100,000 samples, 2 from there on.
``learning_rate_schedule``
    ``"linear"`` (decay to 0 over the fit) from 100,000 samples on:
    debian-paths validation P@1 0.980 against 0.974 for a constant rate at
    the same cost (``debian_settings_full4.md``, ``debian_settings_full2.md``);
    ``"constant"`` below, where the decay did not help (bibtex 0.627 against
    0.626, delicious 0.691 against 0.697: ``xc_settings_schedule.md``).
"""

import math
import os

_WEIGHT_BUDGET = 2**25  # first-layer weights, all repetitions
_H_MIN, _H_MAX = 32, 256
_LARGE = 100_000  # samples from which fewer epochs and a decaying rate pay


def _pow2(x):
    return 1 << max(0, int(round(math.log2(max(1.0, x)))))


def auto_sizes(est, n_classes, n_samples, n_features):
    """Resolve the ``"auto"`` parameters of a MACHClassifier ``est``.

    Parameters
    ----------
    est : MACHClassifier
    n_classes, n_samples, n_features : int

    Returns
    -------
    dict with n_buckets, n_repetitions, hidden_layer_size, n_epochs,
    learning_rate_schedule

    Examples
    --------
    >>> from skmach import MACHClassifier
    >>> auto_sizes(MACHClassifier(), 24288, 1198250, 2**16)  # doctest: +NORMALIZE_WHITESPACE
    {'n_buckets': 1024, 'n_repetitions': 4, 'hidden_layer_size': 128, 'n_epochs': 2,
     'learning_rate_schedule': 'linear'}
    """
    K = n_classes
    if est.n_buckets == "auto":
        B = _pow2(min(K / 2, 8 * math.sqrt(K)))
    else:
        B = est.n_buckets
    B = max(2, min(B, K))
    R = est.n_repetitions
    if R == "auto":
        R = 16 if K <= 10_000 else 4
    H = est.hidden_layer_size
    if H == "auto":
        fit = _WEIGHT_BUDGET / (R * max(1, n_features))
        H = max(_H_MIN, min(_H_MAX, 1 << max(0, int(math.floor(math.log2(max(1.0, fit)))))))
    E = est.n_epochs
    if E == "auto":
        E = 5 if n_samples < _LARGE else 2
    S = est.learning_rate_schedule
    if S == "auto":
        S = "linear" if n_samples >= _LARGE else "constant"
    return {"n_buckets": int(B), "n_repetitions": int(R), "hidden_layer_size": int(H),
            "n_epochs": int(E), "learning_rate_schedule": S}


def model_bytes(n_features, n_buckets, n_repetitions, hidden, early_stopping=False):
    """Bytes of the weights, Adam's two moments and (early stopping) a best copy."""
    d, B, R, H = n_features, n_buckets, n_repetitions, hidden
    n_params = R * (d * B + B) if H == 0 else R * (d * H + H + H * B + B)
    copies = 3 + (1 if early_stopping else 0)
    return 4 * n_params * copies


def available_memory():
    """Bytes of memory available now (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_features, n_buckets, n_repetitions, hidden, early_stopping=False,
                 available=None):
    """Refuse, before allocating, a model that cannot fit in memory.

    Raises
    ------
    ValueError
        Naming the sizes and the parameters to change.
    """
    need = model_bytes(n_features, n_buckets, n_repetitions, hidden, early_stopping)
    avail = available_memory() if available is None else available
    if avail is None or need <= avail:
        return need
    what = (f"n_features={n_features} x n_buckets={n_buckets}" if hidden == 0 else
            f"n_features={n_features} x hidden_layer_size={hidden}")
    raise ValueError(
        f"MACHClassifier would need {need / 2**30:.1f} GiB for its weights and Adam's "
        f"moments ({what} x n_repetitions={n_repetitions}, float32, 3 copies), more than the "
        f"{avail / 2**30:.1f} GiB available. Reduce hidden_layer_size (or use a hidden layer: "
        "hidden_layer_size='auto'), n_repetitions or n_buckets, or hash the features into "
        "fewer columns (e.g. HashingVectorizer(n_features=...))."
    )


__all__ = ["auto_sizes", "check_memory", "model_bytes", "available_memory"]
