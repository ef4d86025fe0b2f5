"""Classification losses and building blocks: identities, torch.nn.functional, closed forms, stability."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from losslab.errors import UserError
from losslab.losses import classification as C
from losslab.losses.classification import CLASSIFICATION_LOSSES, ClassificationLoss

EXTREME = torch.tensor([-1000.0, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1000.0])


def _randn(*shape: int, seed: int, scale: float = 3.0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=dtype)


def _grad(fn, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x), x)
    return g


# --------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_softplus_log_sigmoid_match_torch_with_gradients(dtype):
    z = torch.cat([EXTREME.to(dtype), _randn(50, seed=0, scale=10.0, dtype=dtype)])
    tiny = torch.finfo(dtype).tiny  # torch flushes sigmoid(-100) to 0 in float32, we keep the denormal
    assert_close(C.sigmoid(z), torch.sigmoid(z), atol=tiny, rtol=1e-6)
    assert_close(C.softplus(z), F.softplus(z))
    assert_close(C.log_sigmoid(z), F.logsigmoid(z))
    # sigmoid' = sigmoid(z) sigmoid(-z), written so that it is accurate in the tails (torch's autograd
    # uses y (1 - y), which rounds to 0 once y rounds to 1)
    exact = torch.sigmoid(z) * torch.sigmoid(-z)
    assert_close(_grad(lambda t: C.sigmoid(t).sum(), z), exact, atol=tiny, rtol=1e-5)
    assert_close(_grad(lambda t: C.softplus(t).sum(), z), torch.sigmoid(z), atol=tiny, rtol=1e-6)


def test_derivatives_at_zero_are_exact():
    # -|z| has derivative 0 at 0 in torch; the stable forms must still give sigmoid'(0) = 1/4, softplus'(0) = 1/2
    z = torch.zeros(1, dtype=torch.float64)
    assert_close(_grad(lambda t: C.sigmoid(t).sum(), z), torch.tensor([0.25], dtype=torch.float64))
    assert_close(_grad(lambda t: C.softplus(t).sum(), z), torch.tensor([0.5], dtype=torch.float64))


def test_logit_inverts_sigmoid_and_matches_torch():
    p = torch.linspace(1e-6, 1 - 1e-6, 101, dtype=torch.float64)
    assert_close(C.sigmoid(C.logit(p)), p, rtol=1e-12, atol=0.0)
    assert_close(C.logit(p), torch.logit(p))
    # logit(sigmoid(z)) = z as long as 1 - sigmoid(z) is resolved (float64: z up to ~15 to 1e-6)
    z = torch.linspace(-30.0, 15.0, 46, dtype=torch.float64)
    assert_close(C.logit(C.sigmoid(z)), z, rtol=1e-6, atol=1e-9)
    assert_close(C.logit(p, eps=1e-3), torch.logit(p, eps=1e-3))
    ends = C.logit(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert ends.tolist() == [-math.inf, math.inf]
    with pytest.raises(ValueError):
        C.logit(torch.tensor([1.5]))
    with pytest.raises(UserError):
        C.logit(p, eps=0.7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_and_log_softmax(dtype):
    extreme_row = torch.tensor([[100.0, -100.0, 0.0, 1000.0, -1000.0]], dtype=dtype)
    z = torch.cat([_randn(8, 5, seed=1, dtype=dtype), extreme_row])
    p = C.softmax(z, dim=1)
    assert_close(p.sum(dim=1), torch.ones(9, dtype=dtype))
    assert_close(p, torch.softmax(z, dim=1))
    assert_close(C.log_softmax(z, dim=1), F.log_softmax(z, dim=1))
    assert torch.isfinite(C.log_softmax(z, dim=1)).all()
    # shift invariance and another class dimension
    assert_close(C.softmax(z + 7.0, dim=1), p)
    assert_close(C.softmax(z.T, dim=0), p.T)
    w = _randn(9, 5, seed=2, dtype=dtype)
    assert_close(
        _grad(lambda t: (C.log_softmax(t, dim=1) * w).sum(), z), _grad(lambda t: (F.log_softmax(t, dim=1) * w).sum(), z)
    )


# --------------------------------------------------------------------------- binary losses


def test_bce_matches_torch_inside_the_clamp_and_caps_outside():
    p = torch.sigmoid(_randn(40, seed=3, scale=4.0))
    y = torch.rand(40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)  # soft targets
    assert_close(C.bce(probs=p, target=y), F.binary_cross_entropy(p, y))
    assert_close(_grad(lambda t: C.bce(probs=t, target=y), p), _grad(lambda t: F.binary_cross_entropy(t, y), p))
    # p = 0 with target 1 and p = 1 with target 0: the loss is capped at -log(eps), the gradient is 0
    p_bad = torch.tensor([0.0, 1.0], dtype=torch.float64)
    y_bad = torch.tensor([1.0, 0.0], dtype=torch.float64)
    cap = -math.log1p(-(1.0 - 1e-7)) / 2 - math.log(1e-7) / 2  # mean of the two clamped terms
    assert_close(C.bce(probs=p_bad, target=y_bad), torch.tensor(cap, dtype=torch.float64))
    assert_close(_grad(lambda t: C.bce(probs=t, target=y_bad), p_bad), torch.zeros(2, dtype=torch.float64))


def test_bce_with_logits_matches_torch_everywhere():
    z = torch.cat([EXTREME.double(), _randn(40, seed=5)])
    y = (torch.arange(len(z)) % 2).double()
    assert_close(C.bce_with_logits(logits=z, target=y), F.binary_cross_entropy_with_logits(z, y))
    assert_close(
        _grad(lambda t: C.bce_with_logits(logits=t, target=y), z),
        _grad(lambda t: F.binary_cross_entropy_with_logits(t, y), z),
    )
    # closed form: d/dz = (sigmoid(z) - y) / N
    assert_close(_grad(lambda t: C.bce_with_logits(logits=t, target=y), z), (torch.sigmoid(z) - y) / len(z))


def test_bce_with_logits_equals_bce_on_sigmoid_where_both_are_finite():
    z = torch.linspace(-12.0, 12.0, 97, dtype=torch.float64)
    y = torch.rand(97, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert_close(C.bce_with_logits(logits=z, target=y), C.bce(probs=torch.sigmoid(z), target=y), rtol=1e-9, atol=0.0)
    assert_close(
        _grad(lambda t: C.bce_with_logits(logits=t, target=y), z),
        _grad(lambda t: C.bce(probs=torch.sigmoid(t), target=y), z),
        rtol=1e-7,
        atol=1e-12,
    )


# --------------------------------------------------------------------------- focal


def test_focal_reduces_to_bce_with_gamma_0_and_no_alpha():
    z = torch.cat([EXTREME.double(), _randn(30, seed=7)])
    y = (torch.arange(len(z)) % 3 == 0).double()
    assert_close(C.focal(logits=z, target=y, gamma=0.0, alpha=None), F.binary_cross_entropy_with_logits(z, y))


def test_focal_matches_eq5_directly():
    z = _randn(60, seed=8, scale=2.0)
    y = (torch.arange(60) % 2).double()
    gamma, alpha = 2.0, 0.25
    p = torch.sigmoid(z)
    p_t = torch.where(y == 1, p, 1 - p)
    alpha_t = torch.where(y == 1, torch.full_like(p, alpha), torch.full_like(p, 1 - alpha))
    expected = (-alpha_t * (1 - p_t) ** gamma * torch.log(p_t)).mean()
    assert_close(C.focal(logits=z, target=y, gamma=gamma, alpha=alpha), expected)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_focal_gradient_matches_the_papers_closed_form(gamma):
    # Lin et al. 2017, appendix: dFL/dx = y (1 - p_t)^gamma (gamma p_t log(p_t) + p_t - 1), y in {-1, +1}, alpha_t = 1
    z = _randn(40, seed=9, scale=2.0)
    y01 = (torch.arange(40) % 2).double()
    s = 2 * y01 - 1
    p_t = torch.sigmoid(s * z)
    closed = s * (1 - p_t) ** gamma * (gamma * p_t * torch.log(p_t) + p_t - 1) / len(z)
    assert_close(_grad(lambda t: C.focal(logits=t, target=y01, gamma=gamma, alpha=None), z), closed)


def test_focal_down_weights_easy_examples_as_in_sec_3_2():
    # with gamma = 2: p_t = 0.9 -> 100x lower loss than CE; p_t ~ 0.968 -> ~1000x lower
    for p_t, ratio in ((0.9, 100.0), (1 - 1 / math.sqrt(1000), 1000.0)):
        z = torch.tensor([math.log(p_t / (1 - p_t))], dtype=torch.float64)
        one = torch.ones(1, dtype=torch.float64)
        ce = C.bce_with_logits(logits=z, target=one)
        fl = C.focal(logits=z, target=one, gamma=2.0, alpha=None)
        assert_close(ce / fl, torch.tensor(ratio, dtype=torch.float64))


# --------------------------------------------------------------------------- multi-class


def test_cce_matches_torch_with_probability_targets_and_smoothing():
    z = _randn(12, 6, seed=10)
    q = torch.softmax(_randn(12, 6, seed=11), dim=1)
    for e in (0.0, 0.1, 0.5):
        assert_close(C.cce(logits=z, target=q, label_smoothing=e), F.cross_entropy(z, q, label_smoothing=e))
        assert_close(
            _grad(lambda t: C.cce(logits=t, target=q, label_smoothing=e), z),
            _grad(lambda t: F.cross_entropy(t, q, label_smoothing=e), z),
        )


def test_sparse_cce_matches_torch_and_equals_cce_on_one_hot():
    z = _randn(15, 7, seed=12)
    y = torch.randint(0, 7, (15,), generator=torch.Generator().manual_seed(13))
    one_hot = F.one_hot(y, 7).double()
    for e in (0.0, 0.1, 1.0):
        sparse = C.sparse_cce(logits=z, target=y, label_smoothing=e)
        assert_close(sparse, F.cross_entropy(z, y, label_smoothing=e))
        assert_close(sparse, C.cce(logits=z, target=one_hot, label_smoothing=e))
        assert_close(
            _grad(lambda t: C.sparse_cce(logits=t, target=y, label_smoothing=e), z),
            _grad(lambda t: C.cce(logits=t, target=one_hot, label_smoothing=e), z),
        )


def test_label_smoothing_has_a_finite_optimum_at_the_closed_form_gap():
    k, e = 10, 0.1
    gap = C.smoothed_optimal_logit_gap(k, e)
    assert_close(torch.tensor(gap), torch.tensor(math.log((1 - e + e / k) / (e / k))))
    y = torch.zeros(1, dtype=torch.int64)

    def loss_at(g: torch.Tensor) -> torch.Tensor:
        return C.sparse_cce(logits=torch.cat([g.reshape(1, 1), torch.zeros(1, k - 1, dtype=g.dtype)], 1), target=y,
                            label_smoothing=e)

    g = torch.tensor([gap], dtype=torch.float64)
    assert_close(_grad(loss_at, g), torch.zeros(1, dtype=torch.float64), atol=1e-12, rtol=0)
    # without smoothing the derivative stays negative: the optimum is at infinity
    assert C.smoothed_optimal_logit_gap(k, 0.0) == math.inf
    assert _grad(lambda t: C.sparse_cce(logits=torch.cat([t.reshape(1, 1), torch.zeros(1, k - 1, dtype=t.dtype)], 1),
                                        target=y), g).item() < 0


# --------------------------------------------------------------------------- stability at |z| = 100


def _extreme_cases():
    z = torch.tensor([-100.0, -30.0, 0.0, 30.0, 100.0])  # float32, as a model would produce
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    z2 = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]])
    y2 = torch.tensor([1, 2])
    return {
        "bce": (lambda t: C.bce(probs=C.sigmoid(t), target=y), z),
        "bce-with-logits": (lambda t: C.bce_with_logits(logits=t, target=y), z),
        "focal": (lambda t: C.focal(logits=t, target=y), z),
        "focal gamma 0.5": (lambda t: C.focal(logits=t, target=y, gamma=0.5), z),
        "cce": (lambda t: C.cce(logits=t, target=F.one_hot(y2, 3).float(), label_smoothing=0.1), z2),
        "sparse-cce": (lambda t: C.sparse_cce(logits=t, target=y2), z2),
    }


@pytest.mark.parametrize("case", list(_extreme_cases()))
def test_losses_and_gradients_are_finite_at_extreme_logits(case):
    fn, z = _extreme_cases()[case]
    z = z.clone().requires_grad_(True)
    loss = fn(z)
    (g,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(loss) and torch.isfinite(g).all(), (loss, g)


def test_extreme_values_are_the_exact_ones():
    # a confidently wrong logit of -100 costs 100 nats and gets the full gradient -1 per element
    z = torch.tensor([-100.0], requires_grad=True)
    one = torch.ones(1)
    loss = C.bce_with_logits(logits=z, target=one)
    (g,) = torch.autograd.grad(loss, z)
    assert_close(loss, torch.tensor(100.0))
    assert_close(g, torch.tensor([-1.0]))
    z2 = torch.tensor([[100.0, -100.0]])
    assert_close(C.sparse_cce(logits=z2, target=torch.tensor([1])), torch.tensor(200.0))


# --------------------------------------------------------------------------- registry and errors


def test_registry():
    assert list(CLASSIFICATION_LOSSES) == ["bce", "bce-with-logits", "cce", "sparse-cce", "focal"]
    for name, spec in CLASSIFICATION_LOSSES.items():
        assert isinstance(spec, ClassificationLoss) and spec.name == name
        assert spec.input in ("logits", "probabilities") and spec.target in ("binary", "one-hot", "index")
        assert spec.summary and spec.source
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.name = "x"  # type: ignore[misc]
        with pytest.raises(TypeError):  # keyword-only: inputs and targets cannot be swapped by position
            spec.fn(torch.zeros(2), torch.zeros(2))
    assert CLASSIFICATION_LOSSES["focal"].defaults == {"gamma": 2.0, "alpha": 0.25}
    assert "1708.02002" in CLASSIFICATION_LOSSES["focal"].source
    assert "1512.00567" in CLASSIFICATION_LOSSES["cce"].source


def test_bad_inputs_raise():
    z = torch.zeros(3)
    with pytest.raises(ValueError):
        C.bce(probs=torch.tensor([0.5, 1.5, 0.2]), target=torch.ones(3))  # logits passed as probabilities
    with pytest.raises(ValueError):
        C.bce_with_logits(logits=z, target=torch.ones(4))
    with pytest.raises(ValueError):
        C.focal(logits=z, target=torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(UserError):
        C.focal(logits=z, target=torch.ones(3), gamma=-1.0)
    with pytest.raises(UserError):
        C.focal(logits=z, target=torch.ones(3), alpha=1.5)
    with pytest.raises(UserError):
        C.cce(logits=torch.zeros(2, 3), target=torch.zeros(2, 3), label_smoothing=1.5)
    with pytest.raises(ValueError):
        C.cce(logits=torch.zeros(2, 3), target=torch.zeros(2, 4))
    with pytest.raises(ValueError):
        C.sparse_cce(logits=torch.zeros(2, 3), target=torch.tensor([0, 3]))
    with pytest.raises(ValueError):
        C.sparse_cce(logits=torch.zeros(2, 3), target=torch.tensor([0.0, 1.0]))
    with pytest.raises(UserError):
        C.smoothed_optimal_logit_gap(1, 0.1)
