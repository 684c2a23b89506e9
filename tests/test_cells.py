"""The neuron cells (spikeforge.neurons.cells): short traces worked out by hand from the
equations, gradients, the LIF cell against the contract's fused loop, parameter checks and
what each hardware target can build."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch

from spikeforge.errors import ConfigError
from spikeforge.neurons.cells import (
    CELL_DESCRIPTIONS,
    CELLS,
    EXP_ARG_MAX,
    AdExParameters,
    ALIFParameters,
    AlphaParameters,
    ExpIFCell,
    ExpIFParameters,
    ExpIFState,
    IFCell,
    IFParameters,
    LapicqueParameters,
    LIFCell,
    LIFParameters,
    RecurrentLIFCell,
    RecurrentLIFParameters,
    SecondOrderLIFParameters,
    SynapticCell,
    SynapticParameters,
    adex_step,
    alif_step,
    alpha_step,
    check_target,
    describe_cells,
    expif_step,
    if_step,
    lapicque_step,
    lif_step,
    make_cell,
    recurrent_lif_step,
    run_cell,
    second_order_lif_step,
    synaptic_step,
)
from spikeforge.neurons.lif import lif_sequence, lif_sequence_unfused
from spikeforge.spec import NeuronSpec
from spikeforge.surrogates import FastSigmoid

NAMES = ["lif", "if", "synaptic", "alif", "expif", "adex", "lapicque", "alpha",
         "second_order_lif", "recurrent_lif"]
WITH_DECAY = ["lif", "synaptic", "alif", "lapicque", "alpha", "second_order_lif",
              "recurrent_lif"]
WITH_THRESHOLD = [name for name in NAMES if name not in ("expif", "adex")]


def test_registry_holds_the_ten_cells_with_explicit_states():
    assert list(CELLS) == NAMES
    assert list(CELL_DESCRIPTIONS) == NAMES
    for name, cls in CELLS.items():
        assert cls.name == name
        assert cls.State._fields[0] == "v", name
        assert dataclasses.is_dataclass(cls.Parameters)
        assert cls.Parameters.__dataclass_params__.frozen
        # The constructor's keyword defaults are the dataclass's.
        signature = inspect.signature(cls)
        for field in dataclasses.fields(cls.Parameters):
            assert signature.parameters[field.name].default == field.default, (name, field)
        assert CELL_DESCRIPTIONS[name].states == cls.State._fields
        assert f"`{name}`" in describe_cells()
    assert CELLS["lif"].targets == {"analog", "digital"}
    assert CELLS["if"].targets == {"digital"}
    assert all(not CELLS[name].targets for name in NAMES[2:])


# --------------------------------------------------------------------- hand-worked traces


def _set_recurrent(cell):
    # Neuron 0 hears neuron 1 with weight 0.5, neuron 1 hears neuron 0 with 0.25
    # (row j of nn.Linear's weight holds the weights onto neuron j).
    with torch.no_grad():
        cell.recurrent.weight.copy_(torch.tensor([[0.0, 0.5], [0.25, 0.0]], dtype=torch.float64))


# (cell, keywords, currents I[t] per neuron, expected spikes, expected U before reset,
#  expected final state), worked out by hand from the equations in the docstrings.
TRACES = {
    # U = 0.5·v + I: 0.6, 0.3 + 0.6 = 0.9, 0.45 + 0.6 = 1.05 >= 1 (fire, v = 0), 0.6.
    "lif_zero": ("lif", {"decay": 0.5}, [[0.6], [0.6], [0.6], [0.6]],
                 [[0], [0], [1], [0]], [[0.6], [0.9], [1.05], [0.6]], {"v": [0.6]}),
    # as above, but the reset leaves 1.05 - 1 = 0.05: U4 = 0.025 + 0.6 = 0.625.
    "lif_subtract": ("lif", {"decay": 0.5, "reset": "subtract"}, [[0.6]] * 4,
                     [[0], [0], [1], [0]], [[0.6], [0.9], [1.05], [0.625]], {"v": [0.625]}),
    # U = v + I: 0.4, 0.8, 1.2 (fire, v = 0), 0.4.
    "if": ("if", {}, [[0.4]] * 4, [[0], [0], [1], [0]], [[0.4], [0.8], [1.2], [0.4]],
           {"v": [0.4]}),
    # i = 0.5·i + I: 0.8, 0.8, 0.4, 0.2; U = 0.5·v + i: 0.8, 1.2 (fire, v = 0), 0.4, 0.4.
    "synaptic": ("synaptic", {"alpha": 0.5, "beta": 0.5}, [[0.8], [0.4], [0.0], [0.0]],
                 [[0], [1], [0], [0]], [[0.8], [1.2], [0.4], [0.4]],
                 {"v": [0.4], "i": [0.2]}),
    # θ = 1 + 0.5·a, U = 0.5·v + 1.2, a = 0.5·a + s:
    # t1 θ 1,     U 1.2 fire,  a 1;   t2 θ 1.5,   U 1.2 quiet,       a 0.5;
    # t3 θ 1.25,  U 0.6 + 1.2 = 1.8 fire, a 1.25; t4 θ 1.625, U 1.2 quiet, a 0.625.
    "alif": ("alif", {"decay": 0.5, "beta_a": 0.5, "rho": 0.5}, [[1.2]] * 4,
             [[1], [0], [1], [0]], [[1.2], [1.2], [1.8], [1.2]], {"v": [1.2], "a": [0.625]}),
    # dt/tau = 0.5, v_T = delta_T = 1, v_peak = 2, I = 1.5, v0 = 0:
    # U1 = 0.5·(e^-1 + 1.5) = 0.933940; U2 = U1 + 0.5·(-U1 + e^(U1 - 1) + 1.5) = 1.685007;
    # U3 = U2 + 0.5·(-U2 + e^(U2 - 1) + 1.5) = 2.584396 >= 2 (fire, v = 0); U4 = U1.
    "expif": ("expif", {"tau": 2.0, "delta_T": 1.0}, [[1.5]] * 4,
              [[0], [0], [1], [0]], [[0.933940], [1.685007], [2.584396], [0.933940]],
              {"v": [0.933940]}),
    # ExpIF as above with w (tau_w = 2, a = 0.5, b = 0.5), w' = w + 0.5·(0.5·v - w):
    # U1 = 0.933940, w1 = 0; U2 = 1.685007, w2 = 0.5·0.5·0.933940 = 0.233485;
    # U3 = U2 + 0.5·(-U2 + e^(U2 - 1) + 1.5 - w2) = 2.467654 (fire, v = 0),
    # w3 = w2 + 0.5·(0.5·U2 - w2) + b = 1.037994; U4 = 0.5·(e^-1 + 1.5 - w3) = 0.414943,
    # w4 = w3 + 0.5·(0 - w3) = 0.518997 (ExpIF's U4 was 0.933940: the neuron adapted).
    "adex": ("adex", {"tau": 2.0, "delta_T": 1.0, "tau_w": 2.0, "a": 0.5, "b": 0.5},
             [[1.5]] * 4, [[0], [0], [1], [0]],
             [[0.933940], [1.685007], [2.467654], [0.414943]],
             {"v": [0.414943], "w": [0.518997]}),
    # decay = 1 - 1/4 = 0.75, gain dt·R/tau = 0.5: U = 0.5, 0.875, 1.15625 (fire), 0.5.
    "lapicque": ("lapicque", {"tau": 4.0, "R": 2.0}, [[1.0]] * 4,
                 [[0], [0], [1], [0]], [[0.5], [0.875], [1.15625], [0.5]], {"v": [0.5]}),
    # exc = 0.5·exc + max(I, 0): 0.8, 0.4, 1.2, 0.6; inh = 0.5·inh + max(-I, 0): 0, 0.4,
    # 0.2, 0.1; U = 0.5·v + exc - inh: 0.8, 0.4 + 0.4 - 0.4 = 0.4, 0.2 + 1.2 - 0.2 = 1.2
    # (fire, v = 0), 0.6 - 0.1 = 0.5.
    "alpha": ("alpha", {"alpha_exc": 0.5, "alpha_inh": 0.5, "beta": 0.5},
              [[0.8], [-0.4], [1.0], [0.0]], [[0], [0], [1], [0]],
              [[0.8], [0.4], [1.2], [0.5]], {"v": [0.5], "i_exc": [0.6], "i_inh": [0.1]}),
    # a = 0.5·a + I - 0.5·v, U = 0.5·v + a: a 0.8, U 0.8; a 0.4 + 0.8 - 0.4 = 0.8,
    # U 0.4 + 0.8 = 1.2 (fire, v = 0); a 0.4 + 0.8 = 1.2, U 1.2 (fire); a 0.6, U 0.6.
    "second_order_lif": ("second_order_lif", {"alpha": 0.5, "beta": 0.5, "gamma": 0.5},
                         [[0.8], [0.8], [0.8], [0.0]], [[0], [1], [1], [0]],
                         [[0.8], [1.2], [1.2], [0.6]], {"v": [0.6], "a": [0.6]}),
    # An impulse well below threshold rings: a 1, 0, -0.25, -0.125; U 1, 0.5, 0, -0.125
    # (it undershoots rest; the synaptic cell's membrane would stay positive).
    "second_order_ringing": ("second_order_lif",
                             {"alpha": 0.5, "beta": 0.5, "gamma": 0.5, "threshold": 10.0},
                             [[1.0], [0.0], [0.0], [0.0]], [[0], [0], [0], [0]],
                             [[1.0], [0.5], [0.0], [-0.125]], {"v": [-0.125], "a": [-0.125]}),
    # U = 0.5·v + I + W·s_prev: t1 [1, 0.6] -> neuron 0 fires; t2 [0, 0.3 + 0.6 + 0.25]
    # = [0, 1.15] -> neuron 1 fires; t3 [0 + 0.5, 0] (neuron 0 hears neuron 1); t4 [0.25, 0].
    "recurrent_lif": ("recurrent_lif", {"decay": 0.5},
                      [[1.0, 0.6], [0.0, 0.6], [0.0, 0.0], [0.0, 0.0]],
                      [[1, 0], [0, 1], [0, 0], [0, 0]],
                      [[1.0, 0.6], [0.0, 1.15], [0.5, 0.0], [0.25, 0.0]],
                      {"v": [0.25, 0.0], "s_prev": [0.0, 0.0]}),
}


@pytest.mark.parametrize("case", list(TRACES))
def test_cell_follows_the_hand_worked_trace(case):
    name, keywords, currents, spikes, membrane, final = TRACES[case]
    cell = CELLS[name](len(currents[0]), **keywords).double()
    if name == "recurrent_lif":
        _set_recurrent(cell)
    current = torch.tensor(currents, dtype=torch.float64)[:, None, :]  # (T, batch 1, n)
    s, u, state = run_cell(cell, current, len(currents))
    assert s.dtype == torch.float64
    assert s[:, 0].tolist() == spikes
    torch.testing.assert_close(u[:, 0], torch.tensor(membrane, dtype=torch.float64),
                               rtol=0, atol=2e-6)
    assert state._fields == tuple(final)
    for field, value in final.items():
        torch.testing.assert_close(getattr(state, field)[0],
                                   torch.tensor(value, dtype=torch.float64), rtol=0, atol=2e-6)


STEPS = {
    "lif": (lif_step, LIFParameters), "if": (if_step, IFParameters),
    "synaptic": (synaptic_step, SynapticParameters), "alif": (alif_step, ALIFParameters),
    "expif": (expif_step, ExpIFParameters), "adex": (adex_step, AdExParameters),
    "lapicque": (lapicque_step, LapicqueParameters), "alpha": (alpha_step, AlphaParameters),
    "second_order_lif": (second_order_lif_step, SecondOrderLIFParameters),
    "recurrent_lif": (recurrent_lif_step, RecurrentLIFParameters),
}


@pytest.mark.parametrize("name", NAMES)
def test_module_is_its_pure_step_function(name):
    torch.manual_seed(0)
    cell = CELLS[name](5)
    step, params = STEPS[name]
    extra = {"recurrent_weight": cell.recurrent.weight} if name == "recurrent_lif" else {}
    state_a = state_b = cell.initial_state(3)
    for _ in range(4):
        current = torch.rand(3, 5) * 2.5
        s_a, state_a = cell(current, state_a)
        s_b, state_b = step(current, state_b, params(), FastSigmoid(), **extra)
        assert torch.equal(s_a, s_b)
        for a, b in zip(state_a, state_b, strict=True):
            assert torch.equal(a, b)
    assert isinstance(state_a, cell.State)


def test_held_current_equals_repeated_current():
    cell = SynapticCell(4)
    held = torch.rand(2, 4) * 2
    a = run_cell(cell, held, 6)
    b = run_cell(cell, held.expand(6, 2, 4), 6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="time steps"):
        run_cell(cell, held.expand(5, 2, 4), 6)


def test_state_starts_at_rest_and_carries_over():
    cell = ExpIFCell(3, v_rest=-0.5, v_reset=-0.5)
    assert torch.equal(cell.initial_state(2).v, torch.full((2, 3), -0.5))
    current = torch.rand(8, 2, 3)
    whole = run_cell(cell, current, 8)
    first = run_cell(cell, current[:5], 5)
    rest = run_cell(cell, current[5:], 3, first[2])
    assert torch.equal(whole[0], torch.cat([first[0], rest[0]]))


def test_exponential_term_cannot_overflow():
    # A seeded state far above v_peak: exp((v - v_T)/delta_T) would overflow float32.
    cell = ExpIFCell(2, delta_T=0.25)
    _, u, _ = cell.step(torch.zeros(1, 2), ExpIFState(torch.tensor([[40.0, 1e4]])))
    assert torch.isfinite(u).all()
    assert u[0, 0] < 40.0 + 0.1 * 0.25 * math.exp(EXP_ARG_MAX) * 1.001


# ------------------------------------------------------------------------------ gradients


def _learn_flags(name: str) -> dict[str, bool]:
    return {"learn_decay": name in WITH_DECAY, "learn_threshold": name in WITH_THRESHOLD}


@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow_to_input_and_learned_parameters(name):
    torch.manual_seed(3)
    faster = {"tau": 3.0} if name in ("expif", "adex") else {}  # spikes within 12 steps
    cell = CELLS[name](6, **faster, **_learn_flags(name)).double()
    # Mostly excitatory, partly inhibitory (the alpha cell's i_inh needs negative input).
    current = (torch.rand(12, 4, 6, dtype=torch.float64) * 4 - 1).requires_grad_()
    spikes, _, _ = run_cell(cell, current, 12)
    assert 0 < spikes.mean() < 1
    (spikes * torch.linspace(0.5, 1.5, 6, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(current.grad).all() and current.grad.abs().sum() > 0
    learned = dict(cell.named_parameters())
    expected = {f"{f}_logit" for f in cell.decay_fields} | (
        {"threshold_raw"} if name in WITH_THRESHOLD else set())
    if name == "recurrent_lif":
        expected.add("recurrent.weight")
    assert set(learned) == expected
    for key, parameter in learned.items():
        assert parameter.grad is not None, key
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, key
        if key != "recurrent.weight":
            assert parameter.shape == (6,)


@pytest.mark.parametrize("name", WITH_DECAY)
def test_learned_values_start_at_the_configured_ones_and_stay_in_range(name):
    cell = CELLS[name](3, threshold=0.7, **_learn_flags(name))
    values = cell.learned_values()
    assert set(values) == {*cell.decay_fields, "threshold"}
    for field, value in values.items():
        configured = getattr(cell.params, field)
        torch.testing.assert_close(value, torch.full((3,), configured), rtol=0, atol=1e-6)
    with torch.no_grad():  # far-off raw values still give decays in (0, 1), thresholds > 0
        for parameter in cell.parameters():
            parameter.copy_(torch.tensor([-15.0, 0.0, 15.0]).expand_as(parameter))
    for field, value in cell.learned_values().items():
        assert (value > 0).all(), field
        if field != "threshold":
            assert (value < 1).all(), field


# ------------------------------------------------------------ the contract's LIF, and IF


@pytest.mark.parametrize("backend", ["kernels", "torch"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("constant", [False, True])
def test_lif_cell_spikes_equal_the_fused_contract_loop(reset, backend, constant, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_KERNELS", backend)
    torch.manual_seed(4)
    neuron = NeuronSpec(decay=0.85, threshold=1.0, reset=reset)
    shape = (24, 20) if constant else (30, 24, 20)
    current = torch.randn(shape) * 0.7 + 0.3
    cell = make_cell("lif", 20, neuron)
    spikes, _, _ = run_cell(cell, current, 30)
    fused = lif_sequence(current, neuron, 30)
    assert 0.05 < fused.mean() < 0.95
    assert torch.equal(spikes, fused)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_cell_gradient_equals_the_plain_contract_loop(reset):
    torch.manual_seed(5)
    neuron = NeuronSpec(decay=0.8, threshold=1.0, reset=reset)
    current = torch.randn(12, 5, 7, dtype=torch.float64) * 0.7 + 0.3
    a = current.clone().requires_grad_()
    b = current.clone().requires_grad_()
    weight = torch.randn(12, 5, 7, dtype=torch.float64)
    (run_cell(make_cell("lif", 7, neuron), a, 12)[0] * weight).sum().backward()
    (lif_sequence_unfused(b, neuron, 12) * weight).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_if_cell_is_the_lif_cell_with_decay_one(reset):
    torch.manual_seed(6)
    current = torch.randn(20, 8, 10) * 0.5 + 0.2
    a = run_cell(IFCell(10, threshold=1.3, reset=reset), current, 20)
    b = run_cell(LIFCell(10, decay=1.0, threshold=1.3, reset=reset), current, 20)
    assert a[0].sum() > 0
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(("name", "flag", "word"), [
    ("if", "learn_decay", "decay"), ("expif", "learn_decay", "decay"),
    ("adex", "learn_decay", "decay"), ("expif", "learn_threshold", "threshold"),
    ("adex", "learn_threshold", "threshold")])
def test_learning_what_a_cell_does_not_have_is_refused(name, flag, word):
    with pytest.raises(ConfigError, match=rf"{flag}: the '{name}' cell has no {word}"):
        CELLS[name](4, **{flag: True})


@pytest.mark.parametrize(("build", "field"), [
    (lambda: LIFParameters(decay=1.5), "decay"),
    (lambda: LIFParameters(decay=0.0), "decay"),
    (lambda: LIFParameters(threshold=-1.0), "threshold"),
    (lambda: LIFParameters(reset="half"), "reset"),
    (lambda: SynapticParameters(alpha=1.0), "alpha"),
    (lambda: ALIFParameters(rho=float("nan")), "rho"),
    (lambda: ExpIFParameters(v_peak=0.5), "v_peak"),
    (lambda: ExpIFParameters(dt=10.0), "dt"),
    (lambda: AdExParameters(tau_w=0.5), "dt"),
    (lambda: LapicqueParameters(tau=1.0, dt=1.0), "dt"),
    (lambda: LapicqueParameters(tau=1.0, dt=2.0), "dt"),
    (lambda: SecondOrderLIFParameters(gamma=1.0), "gamma"),
    (lambda: LIFCell(4, decay=1.0, learn_decay=True), "decay"),
    (lambda: RecurrentLIFCell(0), "n"),
])
def test_bad_parameters_are_refused_by_name(build, field):
    with pytest.raises(ConfigError, match=rf"{field} = .* it must be"):
        build()


def test_make_cell_takes_the_network_constants_and_refuses_unknown_ones():
    neuron = NeuronSpec(decay=0.7, threshold=1.5, reset="subtract")
    assert make_cell("synaptic", 3, neuron).params == SynapticParameters(
        beta=0.7, threshold=1.5, reset="subtract")
    assert make_cell("alif", 3, neuron, params={"decay": 0.6}).params.decay == 0.6
    assert make_cell("adex", 3, neuron).params == AdExParameters()
    with pytest.raises(ConfigError, match="no parameter tau_m"):
        make_cell("lif", 3, params={"tau_m": 2.0})
    with pytest.raises(ConfigError, match="refractory"):
        make_cell("alif", 3, NeuronSpec(refractory=2))
    with pytest.raises(ConfigError, match="neuron = 'izhikevich' is unknown"):
        make_cell("izhikevich", 3)


# ------------------------------------------------------------------------ hardware targets


def test_check_target_builds_lif_everywhere_and_if_on_digital_only():
    check_target("lif", "analog")
    check_target("lif", "digital")
    check_target("if", "digital")
    with pytest.raises(ConfigError, match="leak resistor") as error:
        check_target("if", "analog")
    assert "--neuron lif" in str(error.value)


@pytest.mark.parametrize("target", ["analog", "digital"])
def test_check_target_refuses_other_cells_and_learned_parameters(target):
    with pytest.raises(ConfigError, match=rf"'alif' cannot be built on the {target} target: "
                                          r"the hardware contract is one LIF") as error:
        check_target("alif", target)
    assert "Retrain with --neuron lif" in str(error.value)
    for flags, option in [({"learn_decay": True}, "--learn-decay"),
                          ({"learn_threshold": True}, "--learn-threshold")]:
        with pytest.raises(ConfigError, match="single decay and threshold") as error:
            check_target("lif", target, **flags)
        assert f"without {option}" in str(error.value)
    with pytest.raises(ConfigError, match="unknown"):
        check_target("lif", "fpga")
