"""Every registered surrogate: exact step forward, its documented derivative backward
(written out again here, independently of the implementation), an input left untouched, the
same gradient through the fused LIF loop as through the plain autograd loop, and clear errors
from get_surrogate."""

from __future__ import annotations

import math

import pytest
import torch

from spikeforge import kernels
from spikeforge.errors import ConfigError
from spikeforge.neurons.lif import lif_sequence, lif_sequence_unfused
from spikeforge.spec import NeuronSpec
from spikeforge.surrogates import (
    SHAPE_PARAMETERS,
    SURROGATES,
    FastSigmoid,
    StraightThrough,
    Surrogate,
    get_surrogate,
)


def _sigma(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


#: name -> (default shape, ds/dx at x for shape p), from the formulas in the module docstring
FORMULAS = {
    "fast_sigmoid": (2.0, lambda x, p: 1.0 / (1.0 + p * abs(x)) ** 2),
    "superspike": (10.0, lambda x, p: 1.0 / (1.0 + p * abs(x)) ** 2),
    "atan": (2.0, lambda x, p: p / (2.0 * (1.0 + (math.pi / 2.0 * p * x) ** 2))),
    # σ(z)·(1 - σ(z)) written as σ(z)·σ(-z): the same function without cancellation
    "sigmoid": (5.0, lambda x, p: p * _sigma(p * x) * _sigma(-p * x)),
    "straight_through": (math.inf, lambda x, p: 1.0 if abs(x) < p / 2.0 else 0.0),
    "triangular": (1.0, lambda x, p: max(0.0, 1.0 - abs(x) / p) / p),
    "gaussian": (0.5, lambda x, p: math.exp(-x * x / (2.0 * p * p)) / (p * math.sqrt(2 * math.pi))),
}
#: a non-default shape per surrogate, to check the parameter is really used
OTHER_SHAPE = {"fast_sigmoid": 5.0, "superspike": 3.0, "atan": 3.5, "sigmoid": 2.0,
               "straight_through": 1.5, "triangular": 0.4, "gaussian": 1.3}
# Points on and off the grid of multiples of 1/8, both sides of the threshold, the
# threshold itself, and the edges of the windowed shapes (|x| = 0.75 is straight_through's
# edge at width 1.5; |x| = 0.4 and 1.0 the triangles' corners).
POINTS = [-3.0, -1.3, -1.0, -0.75, -0.4, -0.37, -0.1, -1e-3, 0.0, 1e-3, 0.05, 0.4, 0.5, 0.75,
          0.999, 1.0, 2.2, 5.0]


def test_every_surrogate_is_tested_and_has_a_shape_parameter():
    assert set(SURROGATES) == set(FORMULAS) == set(OTHER_SHAPE)
    assert "fast_sigmoid" in SURROGATES
    for name, cls in SURROGATES.items():
        parameter = SHAPE_PARAMETERS[name]
        assert getattr(cls(), parameter) == FORMULAS[name][0]
    assert SHAPE_PARAMETERS["fast_sigmoid"] == "slope" and SHAPE_PARAMETERS["atan"] == "alpha"


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_forward_is_the_exact_step(name):
    x = torch.tensor([-5.0, -1.0, -1e-12, -0.0, 0.0, 1e-12, 0.3, 1.0, 7.0], dtype=torch.float64)
    x = torch.cat([x, torch.linspace(-2, 2, 33, dtype=torch.float64)])
    for shape in (None, OTHER_SHAPE[name]):
        s = get_surrogate(name, shape)(x.clone().requires_grad_())
        assert s.dtype == x.dtype
        assert torch.equal(s.detach(), (x >= 0).double())
    assert get_surrogate(name)(torch.tensor([0.0]))[0] == 1.0  # a spike exactly at threshold


@pytest.mark.parametrize("shape_kind", ["default", "other"])
@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_backward_is_the_documented_formula(name, shape_kind):
    default, formula = FORMULAS[name]
    shape = default if shape_kind == "default" else OTHER_SHAPE[name]
    surrogate = get_surrogate(name) if shape_kind == "default" else get_surrogate(name, shape)
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    upstream = torch.linspace(0.5, 2.0, len(POINTS), dtype=torch.float64)
    (surrogate(x) * upstream).sum().backward()
    expected = torch.tensor([formula(p, shape) for p in POINTS], dtype=torch.float64)
    torch.testing.assert_close(x.grad, expected * upstream, rtol=1e-12, atol=1e-15)
    # float32 follows the same formula to float32 precision
    x32 = torch.tensor(POINTS, dtype=torch.float32, requires_grad=True)
    surrogate(x32).sum().backward()
    assert x32.grad.dtype == torch.float32
    torch.testing.assert_close(x32.grad, expected.float(), rtol=1e-5, atol=1e-6)


def test_straight_through_default_is_the_classic_estimator():
    x = torch.tensor([-1e6, -3.0, 0.0, 2.0, 1e6], requires_grad=True)
    get_surrogate("straight_through")(x).sum().backward()
    assert torch.equal(x.grad, torch.ones(5))
    assert StraightThrough().width == math.inf


def test_superspike_is_fast_sigmoid_with_slope_beta():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    assert torch.equal(get_surrogate("superspike", 2.0).derivative(x), FastSigmoid().derivative(x))


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_derivative_leaves_its_input_alone(name):
    x = torch.linspace(-2, 2, 41, dtype=torch.float64).reshape(41, 1).expand(41, 3)  # a view
    base = x.clone()
    for shape in (None, OTHER_SHAPE[name]):
        d = get_surrogate(name, shape).derivative(x)
        assert torch.equal(x, base)
        assert d.shape == x.shape and d.dtype == x.dtype
        assert d.data_ptr() != x.data_ptr()
        assert bool((d >= 0).all())


@pytest.fixture(params=["kernels", "torch"])
def backend(request, monkeypatch):
    """Both LIF backends: the Numba CPU kernel (which falls back to the torch derivative for
    every surrogate but the fast sigmoid) and the torch loop used on GPUs."""
    monkeypatch.setenv("SPIKEFORGE_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("constant", [True, False])
@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_fused_lif_gradient_equals_plain_autograd_loop(name, constant, backend):
    torch.manual_seed(7)
    neuron = NeuronSpec(decay=0.9, threshold=1.0)
    steps = 12
    shape = (6, 5) if constant else (steps, 6, 5)
    current = torch.randn(shape, dtype=torch.float64) * 0.6 + 0.3
    surrogate = get_surrogate(name, OTHER_SHAPE[name])
    a = current.clone().requires_grad_()
    b = current.clone().requires_grad_()
    fused = lif_sequence(a, neuron, steps, surrogate)
    plain = lif_sequence_unfused(b, neuron, steps, surrogate)
    assert torch.equal(fused, plain)
    assert 0.05 < float(fused.detach().mean()) < 0.95  # some neurons fire, some steps are silent
    weight = torch.randn_like(fused)
    (fused * weight).sum().backward()
    (plain * weight).sum().backward()
    assert a.grad.abs().sum() > 0
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-12)


def test_fast_sigmoid_and_superspike_are_inlined_in_the_kernel():
    # Same formula, 1/(1 + a|x|)^2, inlined; the others take the STORE_MEMBRANE path, whose
    # gradient the test above checks.
    assert kernels.surrogate_code(FastSigmoid(3.0)) == (0, 3.0)
    assert kernels.surrogate_code(get_surrogate("superspike", 7.0)) == (0, 7.0)
    for name in set(SURROGATES) - {"fast_sigmoid", "superspike"}:
        assert kernels.surrogate_code(get_surrogate(name))[0] == kernels.STORE_MEMBRANE


def test_get_surrogate_shape_positional_keyword_and_default():
    assert get_surrogate("atan", 3.0).alpha == 3.0
    assert get_surrogate("atan").alpha == 2.0
    assert get_surrogate("fast_sigmoid", slope=2.0) == FastSigmoid(2.0)
    assert get_surrogate("fast_sigmoid") == FastSigmoid()
    assert get_surrogate("gaussian", shape=0.25).sigma == 0.25
    assert get_surrogate("triangular", 2).width == 2
    assert get_surrogate("straight_through", 1.0).width == 1.0


def test_get_surrogate_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"surrogate = 'arctan' is unknown.*atan.*fast_sigmoid"):
        get_surrogate("arctan")


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, -math.inf, True, "2"])
@pytest.mark.parametrize("name", sorted(set(SURROGATES) - {"straight_through"}))
def test_get_surrogate_rejects_a_bad_shape(name, bad):
    parameter = SHAPE_PARAMETERS[name]
    with pytest.raises(ConfigError, match=rf"surrogate '{name}': {parameter} = .* > 0"):
        get_surrogate(name, bad)
    with pytest.raises(ConfigError, match=rf"surrogate '{name}': {parameter} ="):
        get_surrogate(name, **{parameter: bad})


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, -math.inf])
def test_straight_through_rejects_a_bad_width_but_allows_inf(bad):
    with pytest.raises(ConfigError, match="surrogate 'straight_through': width ="):
        get_surrogate("straight_through", bad)
    assert get_surrogate("straight_through", math.inf) == StraightThrough()


def test_get_surrogate_rejects_wrong_or_doubled_parameters():
    with pytest.raises(ConfigError, match=r"'atan' does not take slope.*'alpha'"):
        get_surrogate("atan", slope=2.0)
    with pytest.raises(ConfigError, match="slope given twice"):
        get_surrogate("fast_sigmoid", 2.0, slope=3.0)
    with pytest.raises(ConfigError):  # direct construction is checked too
        FastSigmoid(-1.0)
    assert isinstance(get_surrogate("sigmoid"), Surrogate)
