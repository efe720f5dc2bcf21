"""Stochastic optimisers shared by the built-in models.

Only Adam is needed. It updates a list of parameter arrays in place. The
``mask`` argument freezes slices of a parameter (used to stop repetitions that
met their early-stopping criterion while others train on), and
:meth:`AdamOptimizer.update_rows` applies sparse row updates, as LSH-sparse
training touches only the active neurons' weights.
"""

import numpy as np


class AdamOptimizer:
    """Adam (Kingma & Ba, 2015) over a list of arrays, updated in place.

    Parameters
    ----------
    params : list of ndarray
        Arrays updated in place.
    learning_rate : float
    beta_1, beta_2, epsilon : float
        Usual Adam constants.
    """

    def __init__(self, params, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.params = params
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def _step_size(self):
        # a Python float, so that float32 parameters stay float32 (NEP 50)
        return float(
            self.learning_rate
            * np.sqrt(1 - self.beta_2**self.t)
            / (1 - self.beta_1**self.t)
        )

    def _apply(self, p, m, v, g, lr, where=None):
        """In-place Adam step on arrays of one shape; ``where`` freezes entries."""
        b1, b2 = self.beta_1, self.beta_2
        if where is not None:
            m_old, v_old, p_old = m.copy(), v.copy(), p.copy()
        tmp = np.multiply(g, 1 - b1, dtype=m.dtype)
        m *= b1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= lr
        p -= tmp
        if where is not None:
            keep = ~np.broadcast_to(where, p.shape)
            np.copyto(m, m_old, where=keep)
            np.copyto(v, v_old, where=keep)
            np.copyto(p, p_old, where=keep)

    def update(self, grads):
        """Apply one dense Adam step for every parameter."""
        self.t += 1
        lr = self._step_size()
        for p, m, v, g in zip(self.params, self.ms, self.vs, grads):
            self._apply(p, m, v, g, lr)

    def update_masked(self, grads, masks):
        """Dense step where ``masks[i]`` (broadcastable boolean) selects what moves.

        Frozen entries keep their parameters and moments unchanged.
        """
        self.step(grads, masks=masks)

    def step(self, grads, rows=None, masks=None):
        """One Adam step; parameter ``i`` is updated densely or on ``rows[i]``.

        Parameters
        ----------
        grads : list of ndarray
            Dense gradients, or for row-sparse parameters the gradient of the
            selected rows only.
        rows : list of (ndarray or None), optional
            Unique row indices whose gradient is given (lazy Adam: moments of
            the other rows are left as they are, as for sparse features).
        masks : list of (boolean ndarray or None), optional
            Broadcastable to the parameter (or to its selected rows); False
            entries are frozen.
        """
        self.t += 1
        lr = self._step_size()
        n = len(self.params)
        rows = rows or [None] * n
        masks = masks or [None] * n
        for p, m, v, g, r, w in zip(self.params, self.ms, self.vs, grads, rows, masks):
            if r is None:
                self._apply(p, m, v, g, lr, where=w)
            else:
                pr, mr, vr = p[r], m[r], v[r]
                self._apply(pr, mr, vr, g, lr, where=w)
                p[r], m[r], v[r] = pr, mr, vr

    def update_rows(self, index, rows, grad_rows):
        """Sparse step on ``params[index][rows]`` only (lazy Adam).

        ``rows`` must be unique. Moments of untouched rows are left as they are,
        the usual choice for sparse training (SLIDE, lazy Adam).
        """
        if index == 0:
            self.t += 1
        lr = self._step_size()
        p, m, v = self.params[index], self.ms[index], self.vs[index]
        mr = self.beta_1 * m[rows] + (1 - self.beta_1) * grad_rows
        vr = self.beta_2 * v[rows] + (1 - self.beta_2) * (grad_rows * grad_rows)
        m[rows] = mr
        v[rows] = vr
        p[rows] -= (lr * mr / (np.sqrt(vr) + self.epsilon)).astype(p.dtype, copy=False)
