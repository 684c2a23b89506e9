"""The digital target as Verilog RTL, proven equal to the twin in Icarus Verilog.

``spikeforge rtl BUNDLE --out DIR`` writes synthesizable Verilog-2005 for a digital bundle
and a self-checking testbench (docs/digital.md)::

    DIR/rtl/sf_layer.v      one fully connected LIF layer (parameterised, the same text for
                            every bundle)
    DIR/rtl/sf_top.v        the network: one sf_layer per layer, the time-step controller,
                            the output spike counters and the lowest-index argmax
    DIR/rtl/<layer>_w.hex   weight ROMs ($readmemh), <layer>_b.hex bias ROMs
    DIR/tb/sf_tb.v          testbench: feeds the test inputs (tb/inputs.hex) and compares
                            every layer's spikes at every step with the twin's
                            (tb/expect_<layer>.hex), then counts and predictions
    DIR/synth.ys            the Yosys script of the resource estimate
    DIR/README.md           how to simulate and synthesise it
    DIR/rtl_result.json     what was checked: passed, images, cycles, mismatch, synthesis

The arithmetic is the contract's digital target (:class:`spikeforge.spec.DigitalSpec`),
exactly: integer currents ``I = W·s + b``; the leak ``floor(V · decay_num / 2^decay_shift)``
as a signed multiply and an arithmetic right shift (``>>>`` rounds toward minus infinity,
as the twin's ``floor`` does for negative membranes); ``U >= threshold`` fires; reset to zero
or by subtraction; refractory counters.

Architecture (``LANES`` neurons of a layer in parallel): the ``N_out`` neurons of a layer
form ``G = ceil(N_out / LANES)`` groups. For each group the layer reads ``N_in`` ROM words
(one per input, the group's ``LANES`` weights side by side), multiplies each by the input
(an input code, or a spike: an AND) and accumulates, then updates the group's membranes in
one clock. A constant-current input layer computes its current once per inference and
keeps it (a held current, as the twin does); every later clock only leaks, adds and
compares. Layers run one after another within a clock step, so::

    cycles = [G_1 (N_0 + 2) + 2]                      (held input current, if any)
           + T · sum_l (W_l + 2)                       W_l = 2 G_l (held) or G_l (N_{l-1} + 2)
           + N_L + 2                                   (argmax and done)

(:func:`cycles_per_inference`; the testbench measures it and the tests hold the two equal.)
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.io import staged_dir
from spikeforge.spec import NetworkSpec

IVERILOG_PACKAGE = "iverilog"
YOSYS_PACKAGE = "yosys"


class RtlError(SpikeforgeError):
    """A bundle the RTL generator cannot build, or a missing or failing tool."""


@dataclass(frozen=True)
class RtlOptions:
    """What ``spikeforge rtl`` builds and checks.

    lanes:    neurons computed in parallel per layer (multipliers/adders per layer).
    images:   test inputs the testbench feeds (their twin vectors are written too).
    simulate: run the testbench in Icarus Verilog.
    synth:    run Yosys for a resource estimate (None: when yosys is installed).
    timeout:  seconds allowed for each of the simulation and the synthesis.
    progress: progress bar over the simulated images.
    """

    lanes: int = 16
    images: int = 100
    simulate: bool = False
    synth: bool | None = None
    timeout: float = 3600.0
    progress: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.lanes, int) and self.lanes >= 1):
            raise RtlError(f"lanes = {self.lanes!r}: give an integer >= 1 (--lanes)")
        if not (isinstance(self.images, int) and self.images >= 1):
            raise RtlError(f"images = {self.images!r}: give at least 1 test input (--images)")


# ---------------------------------------------------------------------- widths, plan


def signed_bits(m: int) -> int:
    """Smallest two's-complement width holding every integer in ``[-m, m]``:
    ``ceil(log2(m + 1)) + 1`` (at least 2)."""
    return max(2, int(m).bit_length() + 1)


def unsigned_bits(m: int) -> int:
    """Smallest unsigned width holding ``0..m`` (at least 1)."""
    return max(1, int(m).bit_length())


def current_bound(w: np.ndarray, b: np.ndarray | None, x_max: int) -> int:
    """Largest ``|I|`` and largest partial sum of a layer::

        max_i  sum_j |w_ij| · x_max + |b_i|

    with inputs in ``[0, x_max]`` (``x_max`` = 2^input_bits - 1 for codes, 1 for spikes)."""
    w = np.abs(np.asarray(w, dtype=np.int64))
    total = w.sum(1) * int(x_max)
    if b is not None:
        total = total + np.abs(np.asarray(b, dtype=np.int64))
    return int(total.max()) if total.size else 0


def membrane_bound(i_max: int, threshold: int, decay_num: int, decay_shift: int,
                   timesteps: int, subtract: bool) -> int:
    """A bound on ``|U|`` and ``|V|`` (and on ``U - threshold``) over an inference.

    ``|floor(d·V)| <= d·|V| + 1`` (the floor moves negative values away from zero by less
    than 1), so with ``c = 1 + i_max + threshold·[subtract]``::

        |V_t| <= d·|V_{t-1}| + c  =>  |V_t| <= min(c / (1 - d), c · T)

    and ``|U_t|`` and ``|U_t - threshold|`` stay below that plus ``c + threshold``.
    """
    d = decay_num / 2**decay_shift
    c = 1 + i_max + (threshold if subtract else 0)
    steady = c * timesteps if d >= 1 else min(math.ceil(c / (1 - d)), c * timesteps)
    return int(steady + c + threshold)


@dataclass(frozen=True)
class LayerPlan:
    """One layer as hardware: sizes, parallelism and every register width.

    x_bits:   input width (the input code's bits, or 1 for spikes).
    held:     the layer's input is a constant current: ``I`` is computed once per inference.
    cur_bits: signed width of currents and accumulators (:func:`current_bound`).
    v_bits:   signed width of membranes (:func:`membrane_bound`, and at least ``cur_bits``).
    r_bits:   width of the refractory counters.
    """

    name: str
    n_in: int
    n_out: int
    lanes: int
    weight_bits: int
    x_bits: int
    held: bool
    cur_bits: int
    v_bits: int
    bias_bits: int
    has_bias: bool
    threshold: int
    refractory: int

    @property
    def groups(self) -> int:
        return -(-self.n_out // self.lanes)

    @property
    def r_bits(self) -> int:
        return unsigned_bits(self.refractory)

    @property
    def in_aw(self) -> int:
        return unsigned_bits(self.n_in - 1)

    @property
    def rom_aw(self) -> int:
        return unsigned_bits(self.groups * self.n_in - 1)

    @property
    def g_aw(self) -> int:
        return unsigned_bits(self.groups - 1)

    @property
    def step_cycles(self) -> int:
        """Clocks of one time step of this layer (from leaving idle to done)::

            W = 2 G (held: read, update per group)   or   G (N_in + 2) (accumulate, update)
        """
        return 2 * self.groups if self.held else self.groups * (self.n_in + 2)

    @property
    def hold_cycles(self) -> int:
        """Clocks of computing the held current: ``G (N_in + 2)``."""
        return self.groups * (self.n_in + 2)

    @property
    def weight_rom_bits(self) -> int:
        return self.groups * self.n_in * self.lanes * self.weight_bits


def plan_layers(spec: NetworkSpec, weights: Sequence[np.ndarray],
                biases: Sequence[np.ndarray | None], names: Sequence[str],
                lanes: int) -> list[LayerPlan]:
    """Each layer's hardware plan for a digital network (widths from the actual weights)."""
    d = spec.digital
    if d is None:
        raise RtlError("the RTL generator builds digital bundles; this one has no integer "
                       "arithmetic: export it with `spikeforge export RUN --target digital`")
    plans = []
    for layer, (name, w, b) in enumerate(zip(names, weights, biases, strict=True)):
        codes = layer == 0 and spec.encoding.type == "constant_current"
        x_max = d.input_max if codes else 1
        i_max = current_bound(w, b, x_max)
        threshold = int(d.thresholds[layer])
        cur_bits = signed_bits(i_max)
        v_bound = membrane_bound(i_max, threshold, d.decay_num, d.decay_shift,
                                 spec.timesteps, spec.neuron.reset == "subtract")
        b_max = 0 if b is None else int(np.abs(b).max(initial=0))
        plans.append(LayerPlan(
            name=name, n_in=int(w.shape[1]), n_out=int(w.shape[0]),
            lanes=min(lanes, int(w.shape[0])), weight_bits=d.weight_bits,
            x_bits=d.input_bits if codes else 1, held=codes, cur_bits=cur_bits,
            v_bits=max(signed_bits(v_bound), cur_bits), bias_bits=signed_bits(b_max),
            has_bias=b is not None, threshold=threshold,
            refractory=spec.neuron.refractory))
    return plans


def cycles_per_inference(plans: Sequence[LayerPlan], timesteps: int) -> int:
    """Clocks from the clock edge that takes ``start`` to the edge at which ``done`` is seen
    (module docstring): the held-current pass, T steps of every layer, each hand-over
    between layers costing 2 clocks, then the argmax over the N_L outputs and 2 clocks."""
    held = plans[0].hold_cycles + 2 if plans[0].held else 0
    per_step = sum(p.step_cycles + 2 for p in plans)
    return held + timesteps * per_step + plans[-1].n_out + 2


# ---------------------------------------------------------------------- hex files


def _hex_digits(bits: int) -> int:
    return max(1, -(-bits // 4))


def rom_lines(w: np.ndarray, lanes: int, bits: int) -> list[str]:
    """Weight ROM contents, one hex word per line: word ``g·N_in + j`` holds
    ``w[g·lanes + k, j]`` for ``k = 0..lanes-1`` as ``bits``-bit two's complement, lane 0 in
    the low bits (missing neurons of the last group are 0)."""
    n_out, n_in = w.shape
    groups = -(-n_out // lanes)
    padded = np.zeros((groups * lanes, n_in), dtype=np.int64)
    padded[:n_out] = w
    unsigned = padded & ((1 << bits) - 1)  # two's complement in `bits` bits
    digits = _hex_digits(lanes * bits)
    lines = []
    for g in range(groups):
        block = unsigned[g * lanes:(g + 1) * lanes]  # (lanes, n_in)
        for j in range(n_in):
            word = 0
            for k in range(lanes - 1, -1, -1):
                word = (word << bits) | int(block[k, j])
            lines.append(f"{word:0{digits}x}")
    return lines


def vector_lines(values: np.ndarray, bits: int) -> list[str]:
    """One hex word per row of ``values`` ``(rows, k)``: element ``k`` as ``bits``-bit two's
    complement at bit ``k·bits`` (element 0 lowest), as ``$readmemh`` fills a
    ``reg [k·bits-1:0]``."""
    values = np.asarray(values, dtype=np.int64)
    digits = _hex_digits(values.shape[1] * bits)
    out = []
    mask = (1 << bits) - 1
    for row in values:
        word = 0
        for v in row[::-1]:
            word = (word << bits) | (int(v) & mask)
        out.append(f"{word:0{digits}x}")
    return out


def bit_lines(spikes: np.ndarray) -> list[str]:
    """Boolean rows ``(rows, n)`` as hex words with element ``k`` at bit ``k`` (vectorised:
    nibbles of four elements, most significant first)."""
    rows, n = spikes.shape
    pad = (-n) % 4
    a = np.concatenate([spikes.astype(np.uint8), np.zeros((rows, pad), np.uint8)], axis=1)
    nibbles = a.reshape(rows, -1, 4) @ np.array([1, 2, 4, 8], dtype=np.uint8)
    chars = np.array(list("0123456789abcdef"))[nibbles[:, ::-1]]
    return ["".join(r) for r in chars]


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------- Verilog text

LAYER_V = r"""// sf_layer: one fully connected LIF layer of a spikeforge digital bundle.
// Verilog-2005, written by spikeforge (hardware/rtl.py); the same module serves every layer.
//
// LANES neurons are computed in parallel; the N_OUT neurons form GROUPS groups of LANES,
// handled one after another. For group g the layer reads the weight ROM word g*N_IN + j
// (LANES signed weights, lane 0 in the low bits) for every input j = 0..N_IN-1 and adds
// w * x_j to each lane's accumulator, then updates the group's membranes in one clock:
//
//   I  = acc + b                                  (HELD layers: computed once, stored)
//   U  = floor(V * DECAY_NUM / 2^DECAY_SHIFT) + I (signed multiply, arithmetic shift >>>:
//                                                  rounds toward minus infinity)
//   s  = U >= THRESH;  V' = s ? (RESET_SUB ? U - THRESH : 0) : U
//   refractory: for REFRACTORY steps after a spike, I counts as 0 and s = 0
//   at step t = 0 (`first`), V and the refractory counter read as 0: no clearing pass
//
// Inputs are read through in_addr / in_data with one clock of latency (a synchronous
// memory). Every memory is a synchronous-read array (block RAM / ROM).
// Clocks: hold = GROUPS*(N_IN+2); step = 2*GROUPS (HELD) or GROUPS*(N_IN+2).
`timescale 1ns / 1ps
module sf_layer #(
    parameter N_IN = 4, parameter N_OUT = 4, parameter LANES = 4, parameter GROUPS = 1,
    parameter IN_AW = 2, parameter ROM_AW = 2, parameter G_AW = 1,
    parameter W_BITS = 8, parameter X_BITS = 8, parameter HELD = 0,
    parameter CUR_BITS = 24, parameter V_BITS = 24, parameter B_BITS = 8,
    parameter HAS_BIAS = 1, parameter THRESH = 1,
    parameter DECAY_NUM = 230, parameter DECAY_SHIFT = 8,
    parameter RESET_SUB = 0, parameter REFRACTORY = 0, parameter R_BITS = 1,
    parameter WFILE = "w.hex", parameter BFILE = "b.hex"
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              hold,     // pulse: compute and store the held current
    input  wire              step,     // pulse: run one time step
    input  wire              first,    // level: this is step t = 0
    output wire [IN_AW-1:0]  in_addr,
    input  wire [X_BITS-1:0] in_data,  // the input at the previous clock's in_addr
    output wire [N_OUT-1:0]  spikes,
    output reg               done      // one clock: hold or step finished
);
    localparam S_IDLE = 3'd0, S_ACC = 3'd1, S_LAST = 3'd2, S_UPD = 3'd3,
               S_STORE = 3'd4, S_READ = 3'd5;
    localparam PW = V_BITS + DECAY_SHIFT + 3;            // leak product width
    localparam signed [DECAY_SHIFT+2:0] DN = DECAY_NUM;  // positive
    localparam signed [V_BITS-1:0] TH = THRESH;
    localparam [R_BITS-1:0] RMAX = REFRACTORY;

    reg [2:0]       state;
    reg             holding;  // this pass computes the held current
    reg [G_AW-1:0]  g;        // group
    reg [IN_AW-1:0] j;        // input being issued
    reg             acc_v;    // rom_q and in_data belong to an issued input

    reg [LANES*W_BITS-1:0]   rom [0:GROUPS*N_IN-1];  // weights
    reg [LANES*W_BITS-1:0]   rom_q;
    reg [LANES*B_BITS-1:0]   brom [0:GROUPS-1];      // biases
    reg [LANES*B_BITS-1:0]   b_q;
    reg [LANES*CUR_BITS-1:0] imem [0:GROUPS-1];      // held currents
    reg [LANES*CUR_BITS-1:0] i_q;
    reg [LANES*V_BITS-1:0]   vmem [0:GROUPS-1];      // membranes
    reg [LANES*V_BITS-1:0]   v_q;
    reg [LANES*R_BITS-1:0]   rmem [0:GROUPS-1];      // refractory counters
    reg [LANES*R_BITS-1:0]   r_q;
    reg [GROUPS*LANES-1:0]   spk;

    initial $readmemh(WFILE, rom);
    generate
        if (HAS_BIAS) begin : bias_rom
            initial $readmemh(BFILE, brom);
        end
    endgenerate

    wire [ROM_AW-1:0] rom_addr = g * N_IN + j;
    assign in_addr = j;
    assign spikes = spk[N_OUT-1:0];

    always @(posedge clk) begin
        rom_q <= rom[rom_addr];
        b_q <= HAS_BIAS ? brom[g] : {LANES*B_BITS{1'b0}};
        i_q <= imem[g];
        v_q <= vmem[g];
        r_q <= rmem[g];
    end

    wire [LANES*CUR_BITS-1:0] cur_all;   // acc + b of every lane
    wire [LANES*V_BITS-1:0]   v_next;
    wire [LANES*R_BITS-1:0]   r_next;
    wire [LANES-1:0]          s_next;
    wire clear = (state != S_ACC) && (state != S_LAST);

    genvar k;
    generate
        for (k = 0; k < LANES; k = k + 1) begin : lane
            wire signed [W_BITS-1:0] w = rom_q[k*W_BITS +: W_BITS];
            wire signed [CUR_BITS-1:0] w_ext = w;
            wire signed [CUR_BITS-1:0] term;
            if (X_BITS == 1) begin : gate        // a spike: add the weight or nothing
                assign term = in_data[0] ? w_ext : {CUR_BITS{1'b0}};
            end else begin : mul                 // an input code: unsigned times signed
                assign term = w * $signed({1'b0, in_data});
            end
            reg signed [CUR_BITS-1:0] acc;
            always @(posedge clk) begin
                if (clear) acc <= {CUR_BITS{1'b0}};
                else if (acc_v) acc <= acc + term;
            end
            wire signed [B_BITS-1:0] b = b_q[k*B_BITS +: B_BITS];
            wire signed [CUR_BITS-1:0] cur_acc = acc + b;
            assign cur_all[k*CUR_BITS +: CUR_BITS] = cur_acc;
            wire signed [CUR_BITS-1:0] cur_held = i_q[k*CUR_BITS +: CUR_BITS];
            wire signed [V_BITS-1:0] cur = HELD ? cur_held : cur_acc;

            wire signed [V_BITS-1:0] v_prev = first ? {V_BITS{1'b0}} : v_q[k*V_BITS +: V_BITS];
            wire [R_BITS-1:0] r_prev = first ? {R_BITS{1'b0}} : r_q[k*R_BITS +: R_BITS];
            wire active = (REFRACTORY == 0) || (r_prev == {R_BITS{1'b0}});
            wire signed [PW-1:0] prod = v_prev * DN;
            wire signed [PW-1:0] leaked = prod >>> DECAY_SHIFT;
            wire signed [V_BITS-1:0] gated = active ? cur : {V_BITS{1'b0}};
            wire signed [V_BITS-1:0] u = leaked[V_BITS-1:0] + gated;
            wire s = active && (u >= TH);
            assign s_next[k] = s;
            assign v_next[k*V_BITS +: V_BITS] = s ? (RESET_SUB ? u - TH : {V_BITS{1'b0}}) : u;
            assign r_next[k*R_BITS +: R_BITS] = s ? RMAX
                : (r_prev != {R_BITS{1'b0}} ? r_prev - 1'b1 : {R_BITS{1'b0}});
        end
    endgenerate

    always @(posedge clk) begin
        done <= 1'b0;
        acc_v <= (state == S_ACC);
        if (rst) begin
            state <= S_IDLE;
            g <= {G_AW{1'b0}};
            j <= {IN_AW{1'b0}};
            acc_v <= 1'b0;
            holding <= 1'b0;
        end else begin
            case (state)
                S_IDLE: begin
                    g <= {G_AW{1'b0}};
                    j <= {IN_AW{1'b0}};
                    if (hold) begin
                        holding <= 1'b1;
                        state <= S_ACC;
                    end else if (step) begin
                        holding <= 1'b0;
                        state <= HELD ? S_READ : S_ACC;
                    end
                end
                S_ACC: begin                     // issue input j of group g
                    if (j == N_IN - 1) begin
                        j <= {IN_AW{1'b0}};
                        state <= S_LAST;
                    end else begin
                        j <= j + 1'b1;
                    end
                end
                S_LAST: state <= holding ? S_STORE : S_UPD;  // the last product is added
                S_READ: state <= S_UPD;                      // held: the group is read
                S_STORE: begin
                    imem[g] <= cur_all;
                    if (g == GROUPS - 1) begin
                        done <= 1'b1;
                        state <= S_IDLE;
                    end else begin
                        g <= g + 1'b1;
                        state <= S_ACC;
                    end
                end
                S_UPD: begin
                    vmem[g] <= v_next;
                    if (REFRACTORY != 0) rmem[g] <= r_next;
                    spk[g*LANES +: LANES] <= s_next;
                    if (g == GROUPS - 1) begin
                        done <= 1'b1;
                        state <= S_IDLE;
                    end else begin
                        g <= g + 1'b1;
                        state <= HELD ? S_READ : S_ACC;
                    end
                end
                default: state <= S_IDLE;
            endcase
        end
    end
endmodule
"""


def _layer_instance(i: int, p: LayerPlan, spec: NetworkSpec) -> str:
    d = spec.digital
    assert d is not None
    params = {
        "N_IN": p.n_in, "N_OUT": p.n_out, "LANES": p.lanes, "GROUPS": p.groups,
        "IN_AW": p.in_aw, "ROM_AW": p.rom_aw, "G_AW": p.g_aw, "W_BITS": p.weight_bits,
        "X_BITS": p.x_bits, "HELD": int(p.held), "CUR_BITS": p.cur_bits, "V_BITS": p.v_bits,
        "B_BITS": p.bias_bits, "HAS_BIAS": int(p.has_bias), "THRESH": p.threshold,
        "DECAY_NUM": d.decay_num, "DECAY_SHIFT": d.decay_shift,
        "RESET_SUB": int(spec.neuron.reset == "subtract"), "REFRACTORY": p.refractory,
        "R_BITS": p.r_bits, "WFILE": f'"rtl/{p.name}_w.hex"', "BFILE": f'"rtl/{p.name}_b.hex"',
    }
    plist = ",\n".join(f"        .{k}({v})" for k, v in params.items())
    source = "in_data" if i == 0 else f"x{i}_q"
    hold = "hold_p" if i == 0 else "1'b0"
    return (f"    sf_layer #(\n{plist}\n    ) {p.name}_layer (\n"
            f"        .clk(clk), .rst(rst), .hold({hold}), .step(step_p[{i}]), "
            f".first(first),\n"
            f"        .in_addr(addr{i}), .in_data({source}), .spikes({p.name}_spikes), "
            f".done(layer_done[{i}])\n    );\n")


def top_verilog(plans: Sequence[LayerPlan], spec: NetworkSpec) -> str:
    """``sf_top``: the layers, the time-step controller, output counters and argmax."""
    n_layers = len(plans)
    out = plans[-1]
    t_aw = unsigned_bits(spec.timesteps - 1)
    c_bits = unsigned_bits(spec.timesteps)
    k_aw = unsigned_bits(out.n_out - 1)
    l_aw = unsigned_bits(n_layers - 1)
    held = plans[0].held
    sizes = " -> ".join(str(n) for n in spec.layer_sizes)
    ports = [f"    output wire [{p.n_out - 1}:0] {p.name}_spikes," for p in plans]
    wires = [f"    wire [{p.in_aw - 1}:0] addr{i};" for i, p in enumerate(plans)]
    feeds = []
    for i, p in enumerate(plans[1:], start=1):
        prev = plans[i - 1]
        feeds.append(f"    reg x{i}_q;  // {p.name} reads {prev.name}'s spikes (1 clock "
                     f"latency)\n    always @(posedge clk) x{i}_q <= {prev.name}_spikes"
                     f"[addr{i}];")
    instances = [_layer_instance(i, p, spec) for i, p in enumerate(plans)]
    start_next = ("hold_p <= 1'b1;\n                        state <= S_HOLD;" if held else
                  "step_p <= 1;\n                        state <= S_RUN;")
    return f"""// sf_top: {sizes} spiking network of a spikeforge digital bundle (Verilog-2005).
// Written by spikeforge (hardware/rtl.py). T = {spec.timesteps} clock steps per inference,
// layers in order within a step; prediction = argmax of output spike counts, ties to the
// lowest index. Clocks per inference (start taken -> done seen):
// {cycles_per_inference(plans, spec.timesteps)}.
`timescale 1ns / 1ps
module sf_top (
    input  wire clk,
    input  wire rst,
    input  wire start,                       // pulse: begin an inference
    output wire [{plans[0].in_aw - 1}:0] in_addr,               // input being read
    output wire [{t_aw - 1}:0] in_step,               // its time step (spike inputs)
    input  wire [{plans[0].x_bits - 1}:0] in_data,               // in_addr's, one clock later
{chr(10).join(ports)}
    output wire [{n_layers - 1}:0] spike_valid,           // layer l's spikes hold step `t`
    output reg  [{t_aw - 1}:0] t,
    output wire [{out.n_out * c_bits - 1}:0] counts,    // spike counts, neuron k at k*{c_bits}
    output reg  [{k_aw - 1}:0] prediction,
    output reg  done                         // one clock: prediction and counts valid
);
    localparam T = {spec.timesteps}, N_LAYERS = {n_layers}, N_OUT = {out.n_out}, C_BITS = {c_bits};
    localparam S_IDLE = 3'd0, S_HOLD = 3'd1, S_RUN = 3'd2, S_ARG = 3'd3, S_FIN = 3'd4;

    reg [2:0] state;
    reg [{l_aw - 1}:0] layer;
    reg [{k_aw - 1}:0] k;
    reg [C_BITS-1:0] best;
    reg hold_p;
    reg [N_LAYERS-1:0] step_p;
    wire [N_LAYERS-1:0] layer_done;
    wire first = (t == 0);
{chr(10).join(wires)}
    assign in_addr = addr0;
    assign in_step = t;
    assign spike_valid = (state == S_RUN) ? layer_done : {{N_LAYERS{{1'b0}}}};
{chr(10).join(feeds)}

{chr(10).join(instances)}
    // output spike counters: cleared by the first step
    genvar n;
    generate
        for (n = 0; n < N_OUT; n = n + 1) begin : counter
            reg [C_BITS-1:0] cnt;
            assign counts[n*C_BITS +: C_BITS] = cnt;
            always @(posedge clk)
                if (state == S_RUN && layer == N_LAYERS - 1 && layer_done[N_LAYERS-1])
                    cnt <= (first ? {{C_BITS{{1'b0}}}} : cnt) + {out.name}_spikes[n];
        end
    endgenerate
    wire [C_BITS-1:0] cnt_k = counts[k*C_BITS +: C_BITS];

    always @(posedge clk) begin
        hold_p <= 1'b0;
        step_p <= {{N_LAYERS{{1'b0}}}};
        done <= 1'b0;
        if (rst) begin
            state <= S_IDLE;
            t <= 0;
            layer <= 0;
            k <= 0;
        end else begin
            case (state)
                S_IDLE:
                    if (start) begin
                        t <= 0;
                        layer <= 0;
                        {start_next}
                    end
                S_HOLD:
                    if (layer_done[0]) begin
                        step_p <= 1;
                        state <= S_RUN;
                    end
                S_RUN:
                    if (layer_done[layer]) begin
                        if (layer == N_LAYERS - 1) begin
                            layer <= 0;
                            if (t == T - 1) begin
                                k <= 0;
                                state <= S_ARG;
                            end else begin
                                t <= t + 1'b1;
                                step_p <= 1;
                            end
                        end else begin
                            layer <= layer + 1'b1;
                            step_p <= 1 << (layer + 1);
                        end
                    end
                S_ARG: begin  // strict > keeps the lowest index on ties
                    if (k == 0 || cnt_k > best) begin
                        best <= cnt_k;
                        prediction <= k;
                    end
                    if (k == N_OUT - 1) state <= S_FIN;
                    else k <= k + 1'b1;
                end
                S_FIN: begin
                    done <= 1'b1;
                    state <= S_IDLE;
                end
                default: state <= S_IDLE;
            endcase
        end
    end
endmodule
"""


def testbench_verilog(plans: Sequence[LayerPlan], spec: NetworkSpec, n_images: int) -> str:
    """``sf_tb``: feeds ``n_images`` inputs, checks every layer's spikes at every step, the
    counts and the prediction against the twin's vectors; prints ``SF PASS`` or the first
    mismatch as ``SF FAIL`` and stops with ``$fatal`` (exit code 1)."""
    T = spec.timesteps
    out = plans[-1]
    c_bits = unsigned_bits(T)
    k_aw = unsigned_bits(out.n_out - 1)
    spike_input = not plans[0].held
    in_words = T * plans[0].n_in if spike_input else plans[0].n_in
    expected = cycles_per_inference(plans, T)
    max_n = max(p.n_out for p in plans)
    index = (f"image * {in_words} + in_step * {plans[0].n_in} + in_addr" if spike_input
             else f"image * {in_words} + in_addr")
    decl, checks = [], []
    for i, p in enumerate(plans):
        decl.append(f"    wire [{p.n_out - 1}:0] {p.name}_spikes;\n"
                    f"    reg [{p.n_out - 1}:0] expect_{p.name} [0:{n_images * T - 1}];\n"
                    f"    integer steps_{p.name};\n"
                    f"    initial $readmemh(\"tb/expect_{p.name}.hex\", expect_{p.name});")
        checks.append(f"""        if (spike_valid[{i}]) begin
            if ({p.name}_spikes !== expect_{p.name}[image * T + steps_{p.name}])
                mismatch("{p.name}", {p.name}_spikes, expect_{p.name}[image * T + steps_{p.name}],
                         steps_{p.name});
            steps_{p.name} = steps_{p.name} + 1;
        end""")
    spike_ports = ", ".join(f".{p.name}_spikes({p.name}_spikes)" for p in plans)
    resets = " ".join(f"steps_{p.name} = 0;" for p in plans)
    step_checks = "\n".join(
        f"            if (steps_{p.name} != T) begin\n"
        f"                $display(\"SF FAIL steps layer=%s image=%0d: %0d steps checked, "
        f"expected %0d\", \"{p.name}\", image, steps_{p.name}, T);\n"
        f"                $fatal(1, \"layer {p.name} ran the wrong number of steps\");\n"
        f"            end" for p in plans)
    return f"""// sf_tb: self-checking testbench (written by spikeforge, hardware/rtl.py).
// Feeds {n_images} test inputs (tb/inputs.hex) and compares every layer's spikes at every
// step, the output spike counts and the prediction with the vectors spikeforge's twin wrote
// (tb/expect_*.hex). Prints "SF PASS ..." or the first mismatch "SF FAIL ..." and stops
// with $fatal (vvp exits with 1). Run from the folder above rtl/ and tb/.
`timescale 1ns/1ps
module sf_tb;
    localparam N_IMAGES = {n_images}, T = {T}, C_BITS = {c_bits}, N_OUT = {out.n_out};
    localparam EXPECTED_CYCLES = {expected}, MAX_N = {max_n};
    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg rst = 1'b1;
    reg start = 1'b0;
    integer image = 0;
    integer cycle = 0;
    integer started = 0;
    integer cycles = 0;
    integer waited;

    reg [{plans[0].x_bits - 1}:0] inputs [0:{n_images * in_words - 1}];
    initial $readmemh("tb/inputs.hex", inputs);
    reg [{out.n_out * c_bits - 1}:0] expect_counts [0:{n_images - 1}];
    initial $readmemh("tb/expect_counts.hex", expect_counts);
    reg [{k_aw - 1}:0] expect_pred [0:{n_images - 1}];
    initial $readmemh("tb/expect_pred.hex", expect_pred);
{chr(10).join(decl)}

    wire [{plans[0].in_aw - 1}:0] in_addr;
    wire [{unsigned_bits(T - 1) - 1}:0] in_step;
    reg [{plans[0].x_bits - 1}:0] in_data;
    wire [{len(plans) - 1}:0] spike_valid;
    wire [{unsigned_bits(T - 1) - 1}:0] t;
    wire [{out.n_out * c_bits - 1}:0] counts;
    wire [{k_aw - 1}:0] prediction;
    wire done;

    sf_top dut (.clk(clk), .rst(rst), .start(start), .in_addr(in_addr), .in_step(in_step),
                .in_data(in_data), {spike_ports},
                .spike_valid(spike_valid), .t(t), .counts(counts), .prediction(prediction),
                .done(done));

    always @(posedge clk) in_data <= inputs[{index}];  // a synchronous input memory

    task mismatch(input [8*32-1:0] name, input [MAX_N-1:0] rtl, input [MAX_N-1:0] twin,
                  input integer step);
        integer n, bad;
        begin
            bad = -1;
            for (n = MAX_N - 1; n >= 0; n = n - 1)
                if (rtl[n] !== twin[n]) bad = n;
            $display("SF FAIL layer=%0s neuron=%0d step=%0d image=%0d rtl=%b twin=%b", name,
                     bad, step, image, rtl[bad], twin[bad]);
            $fatal(1, "RTL spikes differ from the twin's");
        end
    endtask

    always @(posedge clk) begin  // clocks from the edge taking start to the edge seeing done
        cycle <= cycle + 1;
        if (start) started <= cycle;
        if (done) cycles <= cycle - started;
{chr(10).join(checks)}
    end

    initial begin
        repeat (3) @(posedge clk);
        @(negedge clk) rst = 1'b0;
        for (image = 0; image < N_IMAGES; image = image + 1) begin
            {resets}
            @(negedge clk) start = 1'b1;
            @(negedge clk) start = 1'b0;
            waited = 0;
            while (done !== 1'b1) begin
                @(posedge clk);
                waited = waited + 1;
                if (waited > 2 * EXPECTED_CYCLES + 100) begin
                    $display("SF FAIL timeout image=%0d after %0d clocks", image, waited);
                    $fatal(1, "no done");
                end
            end
            @(negedge clk);  // the clock's updates (cycles) have settled
{step_checks}
            if (counts !== expect_counts[image]) begin
                $display("SF FAIL counts image=%0d rtl=%h twin=%h", image, counts,
                         expect_counts[image]);
                $fatal(1, "output spike counts differ");
            end
            if (prediction !== expect_pred[image]) begin
                $display("SF FAIL prediction image=%0d rtl=%0d twin=%0d", image, prediction,
                         expect_pred[image]);
                $fatal(1, "prediction differs");
            end
            $display("SF IMAGE %0d cycles=%0d prediction=%0d", image, cycles, prediction);
            $fflush;  // one line per inference, as it happens (a progress bar reads it)
        end
        $display("SF PASS images=%0d cycles_per_inference=%0d", N_IMAGES, cycles);
        $finish;
    end
endmodule
"""


SYNTH_YS = """# Yosys resource estimate (run from this folder: yosys -q -s synth.ys).
# Memories stay memories (block RAM / ROM: counted as memory bits, not mapped to
# flip-flops); the logic is mapped to generic gates by ABC.
read_verilog -defer rtl/sf_layer.v rtl/sf_top.v
synth -top sf_top -flatten -run begin:fine
opt -fast -full
opt -full
techmap
opt -fast
abc -fast
opt -fast
tee -o synth_stat.txt stat
dump -o synth_mem.il t:$mem_v2
"""


def readme_text(plans: Sequence[LayerPlan], spec: NetworkSpec, n_images: int) -> str:
    sizes = " -> ".join(str(n) for n in spec.layer_sizes)
    rows = "\n".join(
        f"| {p.name} | {p.n_in} | {p.n_out} | {p.lanes} | {p.groups} | {p.x_bits} | "
        f"{'yes' if p.held else 'no'} | {p.cur_bits} | {p.v_bits} | {p.threshold} | "
        f"{p.weight_rom_bits} |" for p in plans)
    d = spec.digital
    assert d is not None
    header = ("| layer | inputs | neurons | lanes | groups | input bits | held current | "
              "current bits | membrane bits | threshold | weight ROM bits |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    return f"""# Verilog RTL: {sizes} spiking network

Written by `spikeforge rtl`. Verilog-2005, synthesizable; the arithmetic is the bundle's
digital target exactly (docs/digital.md in spikeforge).

- `rtl/sf_top.v`, `rtl/sf_layer.v`: the design (top module `sf_top`); the weight and bias
  ROMs are initialised from `rtl/*.hex` with `$readmemh` (paths relative to this folder).
- `tb/sf_tb.v`: a self-checking testbench for {n_images} test inputs: every layer's spikes
  at every step, the output spike counts and the prediction against spikeforge's twin.
- `synth.ys`: a Yosys resource estimate.

Simulate (from this folder):

    iverilog -g2005 -o sim.vvp -s sf_tb rtl/sf_layer.v rtl/sf_top.v tb/sf_tb.v
    vvp -n sim.vvp          # prints SF PASS ..., or SF FAIL with the first mismatch

Synthesise: `yosys -q -s synth.ys` (statistics in `synth_stat.txt`).

## Interface

`start` (one clock) begins an inference; the design reads input `in_addr` (of step
`in_step` for spike inputs) and expects it on `in_data` one clock later; `done` (one clock)
says `prediction` and `counts` (output spike counts, {unsigned_bits(spec.timesteps)} bits
each) are valid. `<layer>_spikes` with `spike_valid[l]` show every layer's spikes of step
`t`. Clocks per inference: **{cycles_per_inference(plans, spec.timesteps)}**.

## Arithmetic

```
I = W · s + b                                  (integers)
U = floor(V · {d.decay_num} / 2^{d.decay_shift}) + I     (signed multiply, >>> {d.decay_shift})
s = U >= threshold;   V = {'0' if spec.neuron.reset == 'zero' else 'U - threshold'} where s
```

{header}
{rows}
"""


# ---------------------------------------------------------------------- writing


@dataclass
class RtlDesign:
    """A generated design: its folder, layer plans and the cycles one inference takes."""

    folder: Path
    plans: list[LayerPlan]
    cycles_per_inference: int
    images: int


def check_rtl_buildable(bundle: Any) -> None:
    """Refuse, with the fix, a bundle the RTL generator cannot build."""
    if bundle.target != "digital" or bundle.spec.digital is None:
        raise RtlError(f"the RTL generator builds digital bundles; this bundle's target is "
                       f"{bundle.target!r}. Export the run with `spikeforge export RUN "
                       f"--target digital --out BUNDLE` and generate RTL from that")


def write_design(bundle: Any, folder: str | os.PathLike, x: np.ndarray,
                 options: RtlOptions) -> RtlDesign:
    """Write the RTL, the testbench and its vectors for inputs ``x`` (the twin's layout:
    ``(n, features)`` in [0, 1], or spikes ``(T, n, features)``) into ``folder``."""
    from spikeforge.hardware.simulate import encode_inputs, run_twin

    check_rtl_buildable(bundle)
    spec: NetworkSpec = bundle.spec
    folder = Path(folder)
    plans = plan_layers(spec, bundle.weights, bundle.biases, bundle.layer_names,
                        options.lanes)
    (folder / "rtl").mkdir(parents=True, exist_ok=True)
    (folder / "tb").mkdir(exist_ok=True)
    (folder / "rtl" / "sf_layer.v").write_text(LAYER_V)
    (folder / "rtl" / "sf_top.v").write_text(top_verilog(plans, spec))
    for p, w, b in zip(plans, bundle.weights, bundle.biases, strict=True):
        _write_lines(folder / "rtl" / f"{p.name}_w.hex", rom_lines(w, p.lanes, p.weight_bits))
        if b is not None:
            padded = np.zeros(p.groups * p.lanes, dtype=np.int64)
            padded[:p.n_out] = b
            _write_lines(folder / "rtl" / f"{p.name}_b.hex",
                         vector_lines(padded.reshape(p.groups, p.lanes), p.bias_bits))
    spike_input = spec.encoding.type == "spikes"
    n = x.shape[1] if spike_input else x.shape[0]
    twin = run_twin(spec, bundle.weights, bundle.biases, x, record=True)
    s0 = encode_inputs(spec, x)
    if spike_input:  # image-major: (n, T, features)
        words = np.asarray(s0, dtype=np.int64).transpose(1, 0, 2).reshape(n, -1)
    else:
        words = np.asarray(s0, dtype=np.int64)
    digits = _hex_digits(plans[0].x_bits)
    _write_lines(folder / "tb" / "inputs.hex",
                 [f"{int(v):0{digits}x}" for v in words.reshape(-1)])
    for p, spikes in zip(plans, twin.spikes or [], strict=True):
        rows = np.asarray(spikes).transpose(1, 0, 2).reshape(n * spec.timesteps, p.n_out)
        _write_lines(folder / "tb" / f"expect_{p.name}.hex", bit_lines(rows))
    c_bits = unsigned_bits(spec.timesteps)
    _write_lines(folder / "tb" / "expect_counts.hex", vector_lines(twin.counts, c_bits))
    _write_lines(folder / "tb" / "expect_pred.hex",
                 [f"{int(k):x}" for k in twin.predictions])
    (folder / "tb" / "sf_tb.v").write_text(testbench_verilog(plans, spec, n))
    (folder / "synth.ys").write_text(SYNTH_YS)
    (folder / "README.md").write_text(readme_text(plans, spec, n))
    return RtlDesign(folder, plans, cycles_per_inference(plans, spec.timesteps), n)


# ---------------------------------------------------------------------- tools


def tool_path(name: str, package: str) -> str:
    """The executable ``name``, or an :class:`RtlError` that says how to install it."""
    exe = shutil.which(name)
    if exe is None:
        raise RtlError(f"{name} is not installed (no `{name}` on PATH): install the "
                       f"Debian/Ubuntu package `{package}` (`sudo apt-get install {package}`)")
    return exe


_FAIL = re.compile(r"SF FAIL layer=(\S+) neuron=(-?\d+) step=(\d+) image=(\d+) rtl=(\S+) "
                   r"twin=(\S+)")


def parse_simulation(log: str) -> dict[str, Any]:
    """``passed``, ``images`` (checked and passed), ``cycles_per_inference`` and the first
    ``mismatch`` (layer, neuron, step, image) from the testbench's output."""
    passed = re.search(r"SF PASS images=(\d+) cycles_per_inference=(\d+)", log)
    images = re.findall(r"SF IMAGE (\d+) cycles=(\d+)", log)
    cycles = int(images[-1][1]) if images else None
    if passed:
        return {"passed": True, "images": int(passed.group(1)),
                "cycles_per_inference": int(passed.group(2)), "mismatch": None}
    fail = _FAIL.search(log)
    if fail:
        layer, neuron, step, image, rtl, twin = fail.groups()
        mismatch = (f"layer {layer}, neuron {neuron}, step {step}, image {image}: RTL spike "
                    f"{rtl}, twin spike {twin}")
        where = {"layer": layer, "neuron": int(neuron), "step": int(step),
                 "image": int(image)}
    else:
        other = re.search(r"SF FAIL (.*)", log)
        mismatch = other.group(1) if other else "the testbench stopped without a verdict"
        where = None
    return {"passed": False, "images": len(images), "cycles_per_inference": cycles,
            "mismatch": mismatch, "first_mismatch": where}


def simulate(design: RtlDesign, timeout: float = 3600.0,
             progress: bool = False) -> dict[str, Any]:
    """Compile the design with ``iverilog -g2005`` and run the testbench with ``vvp``
    (in the design's folder); the result of :func:`parse_simulation` plus timings."""
    from tqdm.auto import tqdm

    iverilog = tool_path("iverilog", IVERILOG_PACKAGE)
    vvp = tool_path("vvp", IVERILOG_PACKAGE)
    folder = design.folder
    start = time.perf_counter()
    try:
        compiled = subprocess.run(
            [iverilog, "-g2005", "-Wall", "-o", "sim.vvp", "-s", "sf_tb", "rtl/sf_layer.v",
             "rtl/sf_top.v", "tb/sf_tb.v"], cwd=folder, capture_output=True, text=True,
            check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RtlError(f"iverilog did not compile the design within {timeout:g} s; raise "
                       f"--timeout") from None
    if compiled.returncode != 0:  # a bug of the generator, or an iverilog without -g2005
        raise RtlError(f"iverilog could not compile the generated design (exit code "
                       f"{compiled.returncode}):\n{(compiled.stdout + compiled.stderr)[-3000:]}")
    compile_seconds = time.perf_counter() - start
    lines: list[str] = []
    start = time.perf_counter()
    with subprocess.Popen([vvp, "-n", "sim.vvp"], cwd=folder, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc, \
            tqdm(total=design.images, desc="Icarus Verilog", unit="image",
                 disable=not progress, leave=False) as bar:
        assert proc.stdout is not None
        watchdog = threading.Timer(timeout, proc.kill)  # also when vvp prints nothing
        watchdog.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("SF IMAGE"):
                    bar.update(1)
        finally:
            watchdog.cancel()
            returncode = proc.wait()
    if returncode < 0 and time.perf_counter() - start >= timeout:
        raise RtlError(f"the simulation did not finish within {timeout:g} s "
                       f"({len(lines)} lines of output): simulate fewer images (--images) or "
                       f"raise --timeout")
    log = "".join(lines)
    (folder / "sim.log").write_text(log)
    result = parse_simulation(log)
    if result["passed"] and returncode != 0:
        result.update(passed=False, mismatch=f"vvp exited with code {returncode}")
    result.update(compile_seconds=round(compile_seconds, 3),
                  simulate_seconds=round(time.perf_counter() - start, 3),
                  vvp_exit_code=returncode)
    return result


_FF = re.compile(r"^\s+(\$_(?:S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DFFSR|DFFSRE|DLATCH)\w*)\s+(\d+)",
                 re.MULTILINE)


def parse_stat(text: str) -> dict[str, int]:
    """Cells, flip-flops (single-bit register cells), memories and memory bits from Yosys's
    ``stat`` output (the last module printed: the flattened top)."""
    section = text[text.rfind("=== "):] if "=== " in text else text

    def number(label: str) -> int:
        m = re.search(rf"Number of {label}:\s+(\d+)", section)
        return int(m.group(1)) if m else 0

    return {"cells": number("cells"),
            "flip_flops": sum(int(n) for _, n in _FF.findall(section)),
            "memories": number("memories"), "memory_bits": number("memory bits")}


def parse_memories(text: str) -> list[dict[str, Any]]:
    """Every memory (``$mem_v2`` cell) of a Yosys RTLIL dump: name, width, words, bits.
    (Yosys's ``stat`` counts only memories not yet collected into ``$mem_v2`` cells.)"""
    memories = []
    for block in re.split(r"\n\s*cell \$mem_v2 ", "\n" + text)[1:]:
        name = block.split("\n", 1)[0].strip().lstrip("\\")
        width = re.search(r"parameter \\WIDTH (\d+)", block)
        size = re.search(r"parameter \\SIZE (\d+)", block)
        if width and size:
            w, n = int(width.group(1)), int(size.group(1))
            memories.append({"name": name, "width": w, "words": n, "bits": w * n})
    return memories


def synthesize(design: RtlDesign, timeout: float = 3600.0) -> dict[str, Any]:
    """Run ``synth.ys`` with Yosys in the design's folder; cells, flip-flops, memory bits
    (every memory kept as a memory: ROM / block RAM) and the time it took."""
    yosys = tool_path("yosys", YOSYS_PACKAGE)
    start = time.perf_counter()
    try:
        proc = subprocess.run([yosys, "-q", "-l", "synth.log", "-s", "synth.ys"],
                              cwd=design.folder, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RtlError(f"yosys did not finish within {timeout:g} s; run it without "
                       f"synthesis (--no-synth)") from None
    seconds = time.perf_counter() - start
    stat = design.folder / "synth_stat.txt"
    if proc.returncode != 0 or not stat.is_file():
        raise RtlError(f"yosys failed (exit code {proc.returncode}); run without synthesis "
                       f"(--no-synth), or see its output:\n"
                       f"{(proc.stdout + proc.stderr)[-3000:]}")
    result: dict[str, Any] = dict(parse_stat(stat.read_text()))
    dump = design.folder / "synth_mem.il"  # holds the ROM contents again: read, then drop
    if dump.is_file():
        memories = parse_memories(dump.read_text())
        dump.unlink()
        result.update(memories=len(memories), memory_bits=sum(m["bits"] for m in memories),
                      memory_list=memories)
    return {**result, "seconds": round(seconds, 2), "yosys": "yosys " + _yosys_version(yosys)}


def _yosys_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "-V"], capture_output=True, text=True, check=False,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(r"Yosys (\S+)", out)
    return m.group(1) if m else "?"


# ---------------------------------------------------------------------- the command


def rtl_check(bundle: Any, x: np.ndarray, out: str | os.PathLike, options: RtlOptions,
              force: bool = False) -> dict[str, Any]:
    """Generate the design for ``bundle`` and inputs ``x`` into the folder ``out``, optionally
    simulate and synthesise it there, and write ``rtl_result.json``; the folder is built
    beside ``out`` and moved into place whole (:func:`spikeforge.io.staged_dir`)."""
    check_rtl_buildable(bundle)
    out = Path(out)
    if out.exists() and not force:
        raise RtlError(f"{out} exists; pass --force to replace it, or choose another --out")
    synth = options.synth
    if synth is None:
        synth = shutil.which("yosys") is not None
    if options.simulate:  # fail before the work when a tool is missing
        tool_path("iverilog", IVERILOG_PACKAGE)
    if synth:
        tool_path("yosys", YOSYS_PACKAGE)
    with staged_dir(out) as tmp:
        start = time.perf_counter()
        design = write_design(bundle, tmp, x, options)
        result: dict[str, Any] = {
            "passed": None, "images": design.images,
            "cycles_per_inference": design.cycles_per_inference, "mismatch": None,
            "synthesis": None, "simulated": False,
            "expected_cycles_per_inference": design.cycles_per_inference,
            "lanes": options.lanes, "layers": [asdict(p) for p in design.plans],
            "generate_seconds": round(time.perf_counter() - start, 3)}
        if options.simulate:
            sim = simulate(design, options.timeout, options.progress)
            result.update(sim, simulated=True)
            if sim["passed"] and sim["cycles_per_inference"] != design.cycles_per_inference:
                result.update(passed=False, mismatch=(
                    f"the design took {sim['cycles_per_inference']} clocks per inference, "
                    f"not the {design.cycles_per_inference} of the cycle formula"))
        if synth:
            result["synthesis"] = synthesize(design, options.timeout)
        (tmp / "rtl_result.json").write_text(json.dumps(result, indent=2) + "\n")
    result["out"] = str(out)
    return result


def rtl_bundle(path: str | os.PathLike, out: str | os.PathLike, options: RtlOptions,
               dataset: str | None = None, data_dir: str | None = None,
               force: bool = False) -> dict[str, Any]:
    """:func:`rtl_check` on a bundle folder and the first ``options.images`` test samples
    of its dataset (what ``spikeforge rtl BUNDLE --out DIR`` runs)."""
    from spikeforge.hardware.bundle import load_bundle
    from spikeforge.hardware.export import bundle_dataset
    from spikeforge.hardware.simulate import twin_inputs

    bundle = load_bundle(path)
    check_rtl_buildable(bundle)
    data = bundle_dataset(bundle, dataset, data_dir, limit=options.images)
    x = twin_inputs(bundle.spec, data.test_x[:options.images])
    result = rtl_check(bundle, x, out, options, force)
    return {"bundle": str(path), "dataset": data.name, **result}
