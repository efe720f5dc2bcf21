"""Progress bars for long fits (tqdm; a widget in Jupyter through ``tqdm.auto``).

Estimators call :func:`progress_bar` with their ``verbose`` parameter: with
``verbose=0`` it returns a bar that does nothing, so the training loop needs
no ``if``.
"""


class _NoBar:
    """Stand-in with tqdm's methods used here, doing nothing."""

    n = 0

    def update(self, n=1):
        self.n += n

    def set_postfix(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_bar(total, verbose, desc, unit="it", leave=True):
    """A ``tqdm.auto`` bar over ``total`` steps, or a silent stand-in.

    Parameters
    ----------
    total : int
        Number of steps.
    verbose : int or bool
        0 or False: no output at all.
    desc : str
        Label shown before the bar.
    unit : str, default="it"
    leave : bool, default=True
        Keep the bar on screen once finished.

    Returns
    -------
    bar : tqdm.auto.tqdm or a silent object with the same ``update``,
        ``set_postfix``, ``set_description`` and ``close`` methods.

    Examples
    --------
    >>> bar = progress_bar(3, verbose=0, desc="fit")
    >>> for _ in range(3):
    ...     bar.update(1)
    >>> bar.n
    3
    """
    if not verbose:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
