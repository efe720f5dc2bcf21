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
        return (
            self.learning_rate
            * np.sqrt(1 - self.beta_2**self.t)
            / (1 - self.beta_1**self.t)
        )

    def update(self, grads):
        """Apply one dense Adam step for every parameter."""
        self.t += 1
        lr = self._step_size()
        for p, m, v, g in zip(self.params, self.ms, self.vs, grads):
            m *= self.beta_1
            m += (1 - self.beta_1) * g
            v *= self.beta_2
            v += (1 - self.beta_2) * (g * g)
            p -= (lr * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype, copy=False)

    def update_masked(self, grads, masks):
        """Dense step where ``masks[i]`` (broadcastable boolean) selects what moves.

        Frozen entries keep their parameters and moments unchanged.
        """
        self.t += 1
        lr = self._step_size()
        for p, m, v, g, mask in zip(self.params, self.ms, self.vs, grads, masks):
            if mask is None:
                sel = np.ones(p.shape, dtype=bool)
            else:
                sel = np.broadcast_to(mask, p.shape)
            m_new = self.beta_1 * m + (1 - self.beta_1) * g
            v_new = self.beta_2 * v + (1 - self.beta_2) * (g * g)
            np.copyto(m, m_new, where=sel)
            np.copyto(v, v_new, where=sel)
            step = (lr * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype, copy=False)
            np.subtract(p, step, out=p, where=sel)

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
