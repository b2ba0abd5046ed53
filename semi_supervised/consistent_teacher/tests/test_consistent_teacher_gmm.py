"""consistent_teacher.gmm: the numpy EM against scikit-learn's GaussianMixture, one EM step by hand, and gmm_threshold
against the official gmm_policy written with sklearn."""
import math
import warnings

import numpy as np
import pytest
import torch
from consistent_teacher.gmm import GaussianMixture1D, gmm_threshold


def mixtures():
    """Score sets like the per-class queues: two beta bumps, a single bump, a few points, ties, float32 and float64."""
    rng = np.random.default_rng(0)
    yield np.concatenate([rng.beta(2, 6, 60), rng.beta(9, 2, 40)])
    yield np.concatenate([rng.beta(2, 6, 60), rng.beta(9, 2, 40)]).astype(np.float32)
    yield rng.beta(3, 3, 100).astype(np.float32)
    yield np.concatenate([rng.normal(0.3, 0.05, 7), rng.normal(0.8, 0.02, 3)])
    yield np.array([0.1, 0.65, 0.76, 0.55, 0.58, 0.98, 0.6])                        # component 1 ends below 0
    yield np.round(rng.random(30), 1).astype(np.float32)                             # many ties
    yield np.array([0.2, 0.21, 0.22, 0.9, 0.91])


def sk_fit(x):
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                              # ConvergenceWarning
        return sklearn_mixture.GaussianMixture(2, weights_init=[0.5, 0.5], means_init=[[x.min()], [x.max()]],
                                               precisions_init=[[[1.0]], [[1.0]]]).fit(x[:, None])


@pytest.mark.parametrize("case", range(7))
def test_em_matches_sklearn(case):
    x = list(mixtures())[case]
    sk = sk_fit(x)
    ours = GaussianMixture1D(2, weights_init=[0.5, 0.5], means_init=[[x.min()], [x.max()]],
                             precisions_init=[[[1.0]], [[1.0]]]).fit(x)
    # float64 agrees to rounding; float32 scores (what the official code feeds sklearn) to one float32 ulp of a variance
    tol = 1e-12 if x.dtype == np.float64 else 1e-6
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_
    np.testing.assert_allclose(ours.weights_, sk.weights_, atol=tol)
    np.testing.assert_allclose(ours.means_, sk.means_.ravel(), atol=tol)
    np.testing.assert_allclose(ours.covariances_, sk.covariances_.ravel(), rtol=tol, atol=tol)
    assert ours.covariances_.dtype == sk.covariances_.dtype                           # float32 storage, as sklearn
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, abs=tol)
    grid = np.linspace(-0.2, 1.2, 57).astype(x.dtype)
    for points in (x, grid):
        np.testing.assert_array_equal(ours.predict(points), sk.predict(points[:, None]))
        np.testing.assert_allclose(ours.score_samples(points), sk.score_samples(points[:, None]), rtol=tol, atol=tol)


def test_one_em_step_by_hand():
    """x = 0..3, means (0, 3), unit variances, equal weights: the responsibility of component 1 is
    sigmoid(log N(x|3,1) - log N(x|0,1)) = sigmoid(3x - 4.5); then the M-step moments."""
    x = np.array([0.0, 1.0, 2.0, 3.0])
    gmm = GaussianMixture1D(2, weights_init=[0.5, 0.5], means_init=[0.0, 3.0], precisions_init=[1.0, 1.0],
                            max_iter=1).fit(x)
    sig = lambda z: 1 / (1 + math.exp(-z))
    r1 = np.array([sig(3 * v - 4.5) for v in x])
    r0 = 1 - r1
    eps10 = 10 * np.finfo(np.float64).eps
    n0, n1 = r0.sum() + eps10, r1.sum() + eps10
    m0, m1 = (r0 * x).sum() / n0, (r1 * x).sum() / n1
    assert gmm.means_ == pytest.approx([m0, m1], abs=1e-12)
    assert m0 == pytest.approx(3 - m1) and m1 == pytest.approx((5 - r1[1] - 3 * r1[0]) / 2)   # symmetry, closed form
    v0 = (r0 * (x - m0) ** 2).sum() / n0 + 1e-6
    v1 = (r1 * (x - m1) ** 2).sum() / n1 + 1e-6
    assert gmm.covariances_ == pytest.approx([v0, v1], abs=1e-12)
    assert gmm.weights_ == pytest.approx([0.5, 0.5], abs=1e-12)
    # the lower bound is the mean log-likelihood under the *initial* parameters (computed before the M-step)
    ll = np.mean([math.log(0.5 * math.exp(-v ** 2 / 2) + 0.5 * math.exp(-(v - 3) ** 2 / 2))
                  - 0.5 * math.log(2 * math.pi) for v in x])
    assert gmm.lower_bound_ == pytest.approx(ll, abs=1e-12)
    assert gmm.n_iter_ == 1 and not gmm.converged_
    dens = lambda v: 0.5 * math.exp(-(v - m0) ** 2 / (2 * v0)) / math.sqrt(2 * math.pi * v0) \
        + 0.5 * math.exp(-(v - m1) ** 2 / (2 * v1)) / math.sqrt(2 * math.pi * v1)
    assert gmm.score_samples(np.array([1.5])) == pytest.approx([math.log(dens(1.5))], rel=1e-9)


def test_bad_inits_raise():
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture1D(2, weights_init=[0.5, 0.6], means_init=[0, 1], precisions_init=[1, 1])
    with pytest.raises(ValueError, match="2 values"):
        GaussianMixture1D(2, weights_init=[0.5, 0.5], means_init=[0, 1, 2], precisions_init=[1, 1])
    with pytest.raises(ValueError, match="at least"):
        GaussianMixture1D(2, weights_init=[0.5, 0.5], means_init=[0, 1], precisions_init=[1, 1]).fit([0.3])


def official_gmm_policy(scores, given_gt_thr=0.0, policy="high"):
    """ConsistentTeacher.gmm_policy (ssod/models/consistent_teacher.py) rewritten here on top of sklearn."""
    if len(scores) < 4:
        return given_gt_thr
    scores = np.asarray(scores)[:, None]
    gmm = sk_fit(scores[:, 0])
    assignment = gmm.predict(scores)
    density = gmm.score_samples(scores)
    if not (assignment == 1).any():
        return given_gt_thr
    if policy == "middle":
        return float(scores[assignment == 1].min())
    density[assignment == 0] = -np.inf
    best = np.argmax(density)
    return float(scores[(assignment == 1) & (scores >= scores[best]).squeeze()].min())


@pytest.mark.parametrize("policy", ["high", "middle"])
def test_threshold_matches_official_policy(policy):
    for x in mixtures():
        assert gmm_threshold(x, policy=policy) == official_gmm_policy(x, policy=policy)
        # a float32 torch tensor, as the official score queue is
        t = torch.from_numpy(x.astype(np.float32))
        assert gmm_threshold(t, policy=policy) == official_gmm_policy(t.numpy(), policy=policy)


def test_threshold_edge_cases():
    assert gmm_threshold(torch.tensor([0.9, 0.8, 0.7]), given_gt_thr=0.25) == 0.25          # < 4 scores
    assert gmm_threshold(np.full(6, 0.4), given_gt_thr=0.25) == 0.25                         # both components equal
    assert official_gmm_policy(np.full(6, 0.4), given_gt_thr=0.25) == 0.25
    # From unit variances EM stops (|change| < 1e-3) after 3 steps with two wide, nearly equal components (means .52
    # and .61, variances .12): the upper half is "positive" and the highest mixture density among it is at 0.9.
    x = np.array([0.2, 0.21, 0.22, 0.9, 0.91, 0.93])
    gmm = GaussianMixture1D(2, weights_init=[0.5, 0.5], means_init=[0.2, 0.93], precisions_init=[1, 1]).fit(x)
    assert gmm.n_iter_ == 3 and gmm.predict(x).tolist() == [0, 0, 0, 1, 1, 1]
    assert gmm.covariances_ == pytest.approx([0.1217, 0.1217], abs=1e-4)
    assert gmm_threshold(x) == 0.9 and gmm_threshold(x, policy="middle") == 0.9
    x = np.array([0.1, 0.12, 0.3, 0.5, 0.55, 0.6, 0.62, 0.9])
    assert gmm_threshold(x) == official_gmm_policy(x) == 0.55 and gmm_threshold(x, policy="middle") == 0.55
    with pytest.raises(ValueError, match="policy"):
        gmm_threshold(x, policy="low")


def test_larger_mean_guard_is_opt_in():
    x = np.array([0.1, 0.65, 0.76, 0.55, 0.58, 0.98, 0.6])
    gmm = GaussianMixture1D(2, weights_init=[0.5, 0.5], means_init=[0.1, 0.98], precisions_init=[1, 1]).fit(x)
    assert gmm.means_[1] < gmm.means_[0]                 # EM swapped the roles of the components
    assert gmm_threshold(x) == 0.6                       # official: component 1 stays "positive"
    assert gmm_threshold(x, larger_mean_positive=True) == 0.76
