"""The GMM score threshold of ConsistentTeacher (the paper's "GMM-based adaptive threshold").

The official code (`ssod/models/consistent_teacher.py::gmm_policy`) fits
`sklearn.mixture.GaussianMixture(2, weights_init=[.5, .5], means_init=[[min], [max]], precisions_init=[[[1]], [[1]]])`
to the recent pseudo-box scores of one class and thresholds that class's boxes with the result. scikit-learn is not a
dependency of this package, so `GaussianMixture1D` re-implements the part of sklearn that the policy exercises:
covariance_type='full' on 1-D data with all three initialisations given (so no k-means and no randomness), n_init=1,
and sklearn's EM loop, convergence test and numerics (reg_covar on the variance, 10 * eps on the component mass,
Cholesky-of-precision parametrisation), including its dtypes: float32 scores (what the official code feeds it, from
a torch tensor) keep sklearn's float32 storage of the variances and precision factors, everything else is float64.
The tests compare it with sklearn itself.
"""
import math

import numpy as np

LOG_2PI = math.log(2 * math.pi)  # a python float: it must not promote float32 arrays (NEP 50), as in sklearn


def _logsumexp(a):
    """log(sum(exp(a), axis=1)) with the max trick. (N, K) -> (N,)"""
    m = a.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - m).sum(axis=1)) + m[:, 0]


class GaussianMixture1D:
    """A K-component Gaussian mixture on scalars, fitted by EM exactly as sklearn's GaussianMixture does it.

    Args:
        n_components: K.
        weights_init: (K,) mixing weights pi_k (positive, summing to 1).
        means_init: K means; sklearn's (K, 1) nesting is accepted.
        precisions_init: K precisions 1/sigma_k^2; sklearn's (K, 1, 1) nesting is accepted.
        tol: stop when the mean log-likelihood changes by less than this between two EM iterations.
        reg_covar: added to every variance after the M-step.
        max_iter: most EM iterations.

    After `fit`: weights_ (K,), means_ (K,), covariances_ (K,) (variances; sklearn stores (K, 1) and (K, 1, 1)),
    precisions_cholesky_ (K,) = 1/sigma_k, converged_, n_iter_, lower_bound_ (the final mean log-likelihood).
    Unlike sklearn there is no k-means initialisation (all three inits are required) and no ConvergenceWarning
    (read `converged_`).
    """

    def __init__(self, n_components=2, *, weights_init, means_init, precisions_init, tol=1e-3, reg_covar=1e-6,
                 max_iter=100):
        self.n_components = n_components
        self.weights_init = self._vector(weights_init, "weights_init")
        self.means_init = self._vector(means_init, "means_init")
        self.precisions_init = self._vector(precisions_init, "precisions_init")
        if np.any(self.weights_init < 0) or not np.isclose(self.weights_init.sum(), 1.0):
            raise ValueError(f"weights_init must be non-negative and sum to 1, got {self.weights_init}")
        if np.any(self.precisions_init <= 0):
            raise ValueError(f"precisions_init must be positive, got {self.precisions_init}")
        self.tol, self.reg_covar, self.max_iter = tol, reg_covar, max_iter

    def _vector(self, value, name):
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        if v.shape != (self.n_components,):
            raise ValueError(f"{name} must hold {self.n_components} values, got shape {np.shape(value)}")
        return v

    # --- the two EM steps -----------------------------------------------------------------------------------------
    def _weighted_log_prob(self, x):
        """log pi_k + log N(x | mu_k, sigma_k^2), written with the precision Cholesky factor as sklearn does:
        -0.5 * (log 2pi + (x * p - mu * p)^2) + log p, p = 1/sigma. (N,) -> (N, K)"""
        p = self.precisions_cholesky_                                   # float32 after a float32 fit, like sklearn
        y = (x[:, None] * p[None, :]).astype(np.float64) - (self.means_ * p)[None, :]
        # sklearn stores the squared distance in an array of X's dtype, so the Gaussian term is float32 for float32 X
        log_gauss = -0.5 * (LOG_2PI + (y ** 2).astype(x.dtype)) + np.log(p)[None, :]
        return log_gauss + np.log(self.weights_)[None, :]

    def _e_step(self, x):
        """-> mean log-likelihood (float), log responsibilities (N, K)."""
        weighted = self._weighted_log_prob(x)
        log_norm = _logsumexp(weighted)
        with np.errstate(under="ignore"):
            log_resp = weighted - log_norm[:, None]
        return float(np.mean(log_norm)), log_resp

    def _m_step(self, x, log_resp):
        """sklearn's _estimate_gaussian_parameters (full covariance) on 1-D data."""
        resp = np.exp(log_resp)                                          # (N, K) float64
        nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps           # (K,)
        self.means_ = (resp.T @ x[:, None])[:, 0] / nk                   # (K,); the same products as sklearn's (N, 1) X
        diff = x[:, None] - self.means_[None, :]                         # (N, K)
        var = np.array([(resp[:, k] * diff[:, k]) @ diff[:, k] for k in range(self.n_components)]) / nk
        # sklearn allocates the covariances (and so the precision Cholesky factors) in the dtype of X
        self.covariances_ = (var + self.reg_covar).astype(x.dtype)
        self.weights_ = nk / nk.sum()
        self.precisions_cholesky_ = x.dtype.type(1.0) / np.sqrt(self.covariances_)

    # --- public API -----------------------------------------------------------------------------------------------
    def fit(self, x):
        """EM from the given initialisation (sklearn BaseMixture.fit_predict with n_init=1): E-step, M-step, stop when
        |mean log-lik - previous| < tol (the first iteration compares with -inf), at most max_iter iterations."""
        x = self._check_x(x)
        if len(x) < max(2, self.n_components):
            raise ValueError(f"need at least max(2, n_components={self.n_components}) samples, got {len(x)}")
        self.weights_ = self.weights_init.copy()
        self.means_ = self.means_init.copy()
        self.precisions_cholesky_ = np.sqrt(self.precisions_init)
        self.covariances_ = 1.0 / self.precisions_init
        lower_bound, self.converged_, self.n_iter_ = -np.inf, False, 0
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            lower_bound, log_resp = self._e_step(x)
            self._m_step(x, log_resp)
            self.n_iter_ = n_iter
            if abs(lower_bound - previous) < self.tol:
                self.converged_ = True
                break
        # sklearn's "lower bound" is the mean log-likelihood of the E-step of the last iteration (before its M-step)
        self.lower_bound_ = lower_bound
        return self

    def predict(self, x):
        """Most probable component: argmax_k log pi_k + log N(x | k). (N,) -> (N,) int64"""
        return self._weighted_log_prob(self._check_x(x)).argmax(axis=1)

    def score_samples(self, x):
        """Mixture log-density log sum_k pi_k N(x | k) of each sample. (N,) -> (N,)"""
        return _logsumexp(self._weighted_log_prob(self._check_x(x)))

    @staticmethod
    def _check_x(x):
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)  # sklearn's dtype=[float64, float32]
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise ValueError(f"expected 1-D scores (N,) or (N, 1), got shape {x.shape}")
        return x


def gmm_threshold(scores, given_gt_thr=0.0, policy="high", *, larger_mean_positive=False):
    """The per-class pseudo-label score threshold tau (official `gmm_policy`).

    Fit a 2-component GMM with weights [.5, .5], means [min(s), max(s)] and unit precisions; component 1 (initialised at
    the max) is the "positive" cluster.
    - policy 'high' (the official default): tau = the score of the positive-cluster sample with the highest mixture
      log-density `score_samples` (the official code takes min{s_i : assigned 1, s_i >= s_idx}, which is s_idx).
    - policy 'middle': tau = the smallest score in the positive cluster.
    Fewer than 4 scores, or no sample predicted into the positive cluster -> `given_gt_thr` (the config's 0).

    larger_mean_positive: EM may end with component 1 holding the *smaller* mean; the official code still treats it as
    positive. True calls the larger-mean component positive instead (a deviation, off by default).

    scores: tensor or array of any shape (flattened). Returns a python float.
    """
    if policy not in ("high", "middle"):
        raise ValueError(f"policy must be 'high' or 'middle', got {policy!r}")
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    s = GaussianMixture1D._check_x(np.asarray(scores).reshape(-1))
    if len(s) < 4:
        return float(given_gt_thr)
    gmm = GaussianMixture1D(2, weights_init=[0.5, 0.5], means_init=[float(s.min()), float(s.max())],
                            precisions_init=[1.0, 1.0])
    gmm.fit(s)
    positive = int(np.argmax(gmm.means_)) if larger_mean_positive else 1
    is_pos = gmm.predict(s) == positive                                  # (N,) bool
    if not is_pos.any():
        return float(given_gt_thr)
    if policy == "middle":
        return float(s[is_pos].min())
    density = np.where(is_pos, gmm.score_samples(s), -np.inf)
    return float(s[np.argmax(density)])
