"""The digital target as C for microcontrollers, proven equal to the twin with gcc.

``spikeforge mcu BUNDLE --out DIR`` writes portable C99 for a digital bundle
(docs/digital.md)::

    DIR/spikeforge_net.h   the API, the network's constants and the workspace struct
    DIR/spikeforge_net.c   integer weights and biases as const arrays (flash), the inference
    DIR/harness.c          a host test program: runs inputs from a file, prints every spike
    DIR/README.md          how to use it on a microcontroller and how to test it
    DIR/mcu_result.json    with --test: the comparison with the twin, sizes, host timing

The C code has no floating point, no malloc and no recursion: the caller owns the state
(``sf_workspace``, a fixed-size struct), weights are ``const`` integer arrays, membranes
are ``int32_t`` (``int64_t`` only where a layer's bound needs more). The arithmetic is the
contract's digital target exactly::

    I = W · s + b                                     (integers)
    U = floor(V · decay_num / 2^decay_shift) + I      (sf_floor_shift: no shift of a
                                                       negative number, which C leaves to
                                                       the compiler)
    s = U >= threshold;  V = 0 (or U - threshold) where s

A constant-current first layer computes its current once per inference (it is the same
every step); hidden layers add the weight column of each input that spiked (event-driven:
the work is proportional to spikes). The widths come from the same bounds as the RTL
(:func:`spikeforge.hardware.rtl.plan_layers`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.hardware.rtl import LayerPlan, plan_layers
from spikeforge.io import staged_dir
from spikeforge.spec import NetworkSpec

GCC_PACKAGE = "gcc"


class McuError(SpikeforgeError):
    """A bundle the C generator cannot build, or a missing or failing compiler."""


@dataclass(frozen=True)
class McuOptions:
    """What ``spikeforge mcu`` builds and checks.

    images:   test inputs the host harness runs (with ``test``).
    test:     compile the harness with ``cc`` and compare it with the twin, bit for bit.
    sanitize: compile the harness with ``-fsanitize=undefined,address``: any signed
              overflow or out-of-bounds access stops the test.
    cc:       the host C compiler.
    timeout:  seconds allowed for compiling and for running.
    progress: progress bar over the images.
    """

    images: int = 1000
    test: bool = False
    sanitize: bool = False
    cc: str = "gcc"
    timeout: float = 1800.0
    progress: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.images, int) and self.images >= 1):
            raise McuError(f"images = {self.images!r}: give at least 1 test input (--images)")


@dataclass(frozen=True)
class CTypes:
    """The C integer types of a network: weights, inputs, currents, membranes and the leak
    product ``V · decay_num`` (each the narrowest standard type that holds its bound)."""

    weight: str
    input: str
    current: str
    membrane: str
    wide: str
    refractory: str


def int_type(bits: int, signed: bool = True) -> str:
    """The narrowest of ``int8_t`` .. ``int64_t`` (``uint..`` unsigned) holding ``bits``."""
    for width in (8, 16, 32, 64):
        if bits <= width:
            return f"{'' if signed else 'u'}int{width}_t"
    raise McuError(f"a {bits}-bit integer does not fit a C integer type (64 bits at most): "
                   f"export the bundle with fewer --bits")


def c_types(spec: NetworkSpec, plans: Sequence[LayerPlan]) -> CTypes:
    """The types for ``plans`` (bounds from :func:`spikeforge.hardware.rtl.plan_layers`)."""
    d = spec.digital
    assert d is not None
    v_bits = max(32, max(p.v_bits for p in plans))  # int32_t membranes unless they need more
    x_bits = d.input_bits if spec.encoding.type == "constant_current" else 1
    return CTypes(
        weight=int_type(d.weight_bits),
        input=int_type(x_bits, signed=False),
        current=int_type(max(32, max(p.cur_bits for p in plans))),
        membrane=int_type(v_bits),
        wide=int_type(max(p.v_bits for p in plans) + d.decay_shift + 2),
        refractory=int_type(max(1, spec.neuron.refractory.bit_length()), signed=False))


# ------------------------------------------------------------------------ C text


def _array(values: np.ndarray, per_line: int = 16) -> str:
    """Integers as a C initializer body, ``per_line`` per line."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    return ",\n".join("    " + ", ".join(flat[i:i + per_line])
                      for i in range(0, len(flat), per_line))


def _guard(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def header_text(spec: NetworkSpec, plans: Sequence[LayerPlan], types: CTypes) -> str:
    """``spikeforge_net.h``: constants, types, the workspace and the API."""
    d = spec.digital
    assert d is not None
    spikes_in = spec.encoding.type == "spikes"
    out = plans[-1]
    spiking_inputs = [p.n_in for i, p in enumerate(plans) if i > 0 or spikes_in]
    max_n = max(max(p.n_out for p in plans), *spiking_inputs, 1)
    sizes = " -> ".join(str(n) for n in spec.layer_sizes)
    reset = "0" if spec.neuron.reset == "zero" else "U - threshold"
    state = []
    for p in plans:
        g = _guard(p.name)
        state.append(f"    sf_v_t v_{p.name}[SF_{g}_N];      /* membranes of {p.name} */")
        state.append(f"    uint8_t s_{p.name}[SF_{g}_N];     /* its spikes of this step */")
        if spec.neuron.refractory:
            state.append(f"    sf_r_t r_{p.name}[SF_{g}_N];      /* refractory clocks left */")
    if not spikes_in:
        state.append(f"    sf_cur_t held[SF_{_guard(plans[0].name)}_N];  /* {plans[0].name}'s "
                     f"held input current */")
    layer_defs = "\n".join(
        f"#define SF_{_guard(p.name)}_N {p.n_out}\n"
        f"#define SF_{_guard(p.name)}_THRESHOLD {p.threshold}" for p in plans)
    input_decl = ("const sf_in_t input[SF_TIMESTEPS][SF_N_INPUTS]" if spikes_in
                  else "const sf_in_t input[SF_N_INPUTS]")
    input_doc = ("input[t][j] is 1 where input line j spikes at step t, else 0" if spikes_in
                 else f"input[j] = round(x_j * {d.input_max}), x_j in [0, 1] (the pixel byte "
                      f"for MNIST)")
    return f"""/* spikeforge_net.h: {sizes} spiking network (spikeforge digital bundle).
 * Written by spikeforge (hardware/mcu.py). Integer arithmetic only, no malloc.
 *
 *   I = W . s + b;  U = floor(V * {d.decay_num} / 2^{d.decay_shift}) + I;  s = U >= threshold;
 *   V = {reset} where s; {spec.neuron.refractory} refractory steps;
 *   prediction = argmax of output spike counts, ties to the lowest index.
 */
#ifndef SPIKEFORGE_NET_H
#define SPIKEFORGE_NET_H

#include <stdint.h>

#define SF_TIMESTEPS {spec.timesteps}
#define SF_N_LAYERS {len(plans)}
#define SF_N_INPUTS {spec.layer_sizes[0]}
#define SF_N_OUTPUTS {out.n_out}
#define SF_MAX_NEURONS {max_n}
#define SF_INPUT_SPIKES {int(spikes_in)}
#define SF_DECAY_NUM {d.decay_num}
#define SF_DECAY_SHIFT {d.decay_shift}
#define SF_RESET_SUBTRACT {int(spec.neuron.reset == 'subtract')}
#define SF_REFRACTORY {spec.neuron.refractory}
{layer_defs}

typedef {types.weight} sf_w_t;     /* weights ({d.weight_bits}-bit) */
typedef {types.input} sf_in_t;    /* inputs */
typedef {types.current} sf_cur_t;   /* currents */
typedef {types.membrane} sf_v_t;     /* membranes */
typedef {types.wide} sf_wide_t;  /* V * decay_num */
typedef {types.refractory} sf_r_t;     /* refractory counters */

/* Everything an inference changes; the caller owns it (static or on the stack). */
typedef struct {{
{chr(10).join(state)}
    sf_cur_t cur[SF_MAX_NEURONS];     /* a layer's input current of this step */
    uint16_t active[SF_MAX_NEURONS];  /* indices of the inputs that spiked */
}} sf_workspace;

/* One inference: {input_doc}.
 * Fills counts (output spike counts) and returns the predicted class. */
int sf_infer({input_decl}, uint16_t counts[SF_N_OUTPUTS], sf_workspace *ws);

#ifdef SF_TRACE
/* Defined by the application when compiled with -DSF_TRACE: called after every layer's
 * step with its spikes (0/1 bytes). */
void sf_trace(int layer, int step, const uint8_t *spikes, int n);
#endif

#endif /* SPIKEFORGE_NET_H */
"""


def source_text(spec: NetworkSpec, plans: Sequence[LayerPlan], weights: Sequence[np.ndarray],
                biases: Sequence[np.ndarray | None]) -> str:
    """``spikeforge_net.c``: the weights as const arrays and the inference."""
    spikes_in = spec.encoding.type == "spikes"
    arrays = []
    for p, w, b in zip(plans, weights, biases, strict=True):
        arrays.append(f"/* {p.name}: {p.n_out} x {p.n_in}, row i = neuron i's weights */\n"
                      f"static const sf_w_t sf_{p.name}_w[{p.n_out * p.n_in}] = {{\n"
                      f"{_array(w)}\n}};")
        if b is not None:
            arrays.append(f"static const sf_cur_t sf_{p.name}_b[{p.n_out}] = {{\n{_array(b)}\n}};")
    calls = []
    refr = spec.neuron.refractory > 0
    for i, p in enumerate(plans):
        g = _guard(p.name)
        bias = f"sf_{p.name}_b" if p.has_bias else "0"
        r_arg = f"ws->r_{p.name}" if refr else "0"
        if i == 0 and not spikes_in:
            current = "ws->held"
        else:
            source = "input[t]" if i == 0 else f"ws->s_{plans[i - 1].name}"
            calls.append(f"        sf_spike_currents(sf_{p.name}_w, {bias}, {p.n_in}, "
                         f"SF_{g}_N, {source}, ws->cur, ws->active);")
            current = "ws->cur"
        calls.append(f"        sf_lif(ws->v_{p.name}, {r_arg}, {current}, ws->s_{p.name}, "
                     f"SF_{g}_N, SF_{g}_THRESHOLD);")
        calls.append(f"#ifdef SF_TRACE\n        sf_trace({i}, t, ws->s_{p.name}, SF_{g}_N);\n"
                     f"#endif")
    out = plans[-1]
    clears = []
    for p in plans:
        g = _guard(p.name)
        clears.append(f"    for (i = 0; i < SF_{g}_N; i++) ws->v_{p.name}[i] = 0;")
        if refr:
            clears.append(f"    for (i = 0; i < SF_{g}_N; i++) ws->r_{p.name}[i] = 0;")
    held = ""
    if not spikes_in:
        p = plans[0]
        bias = f"sf_{p.name}_b" if p.has_bias else "0"
        held = (f"    /* the input is a constant current: {p.name}'s current is the same at "
                f"every step */\n    sf_code_currents(sf_{p.name}_w, {bias}, {p.n_in}, "
                f"SF_{_guard(p.name)}_N, input, ws->held);\n")
    input_decl = ("const sf_in_t input[SF_TIMESTEPS][SF_N_INPUTS]" if spikes_in
                  else "const sf_in_t input[SF_N_INPUTS]")
    sizes = " -> ".join(str(n) for n in spec.layer_sizes)
    return f"""/* spikeforge_net.c: {sizes} spiking network (spikeforge digital bundle).
 * Written by spikeforge (hardware/mcu.py). C99; no floating point, no malloc. */
#include "spikeforge_net.h"

{chr(10).join(arrays)}

/* floor(p / 2^SF_DECAY_SHIFT) without shifting a negative number (implementation-defined
 * in C): for p < 0 it is -ceil(-p / 2^s). */
static sf_wide_t sf_floor_shift(sf_wide_t p)
{{
    const sf_wide_t round_up = ((sf_wide_t)1 << SF_DECAY_SHIFT) - 1;
    return p >= 0 ? p >> SF_DECAY_SHIFT : -((-p + round_up) >> SF_DECAY_SHIFT);
}}

#if !SF_INPUT_SPIKES
/* cur_i = b_i + sum_j w_ij x_j for integer input codes x (a held input current) */
static void sf_code_currents(const sf_w_t *w, const sf_cur_t *b, int n_in, int n_out,
                             const sf_in_t *x, sf_cur_t *cur)
{{
    int i, j;
    for (i = 0; i < n_out; i++) {{
        const sf_w_t *row = w + (long)i * n_in;
        sf_cur_t acc = b ? (sf_cur_t)b[i] : 0;
        for (j = 0; j < n_in; j++) acc += (sf_cur_t)row[j] * (sf_cur_t)x[j];
        cur[i] = acc;
    }}
}}
#endif

#if SF_INPUT_SPIKES || SF_N_LAYERS > 1
/* cur_i = b_i + sum of w_ij over the inputs j that spiked (event-driven) */
static void sf_spike_currents(const sf_w_t *w, const sf_cur_t *b, int n_in, int n_out,
                              const uint8_t *s, sf_cur_t *cur, uint16_t *active)
{{
    int i, j, k, n_active = 0;
    for (j = 0; j < n_in; j++)
        if (s[j]) active[n_active++] = (uint16_t)j;
    for (i = 0; i < n_out; i++) {{
        const sf_w_t *row = w + (long)i * n_in;
        sf_cur_t acc = b ? (sf_cur_t)b[i] : 0;
        for (k = 0; k < n_active; k++) acc += row[active[k]];
        cur[i] = acc;
    }}
}}
#endif

/* one clock of a layer's LIF neurons (the contract's lif_step in integers) */
static void sf_lif(sf_v_t *v, sf_r_t *r, const sf_cur_t *cur, uint8_t *s, int n,
                   sf_v_t threshold)
{{
    int i;
    for (i = 0; i < n; i++) {{
        int listening = 1;
        sf_v_t u;
#if SF_REFRACTORY > 0
        listening = r[i] == 0;
#else
        (void)r;
#endif
        u = (sf_v_t)sf_floor_shift((sf_wide_t)v[i] * SF_DECAY_NUM);
        if (listening) u += (sf_v_t)cur[i];
        s[i] = (uint8_t)(listening && u >= threshold);
#if SF_RESET_SUBTRACT
        v[i] = s[i] ? u - threshold : u;
#else
        v[i] = s[i] ? 0 : u;
#endif
#if SF_REFRACTORY > 0
        r[i] = s[i] ? (sf_r_t)SF_REFRACTORY : (sf_r_t)(r[i] > 0 ? r[i] - 1 : 0);
#endif
    }}
}}

int sf_infer({input_decl}, uint16_t counts[SF_N_OUTPUTS], sf_workspace *ws)
{{
    int i, t, best = 0;
{chr(10).join(clears)}
    for (i = 0; i < SF_N_OUTPUTS; i++) counts[i] = 0;
{held}    for (t = 0; t < SF_TIMESTEPS; t++) {{
{chr(10).join(calls)}
        for (i = 0; i < SF_N_OUTPUTS; i++) counts[i] += ws->s_{out.name}[i];
    }}
    for (i = 1; i < SF_N_OUTPUTS; i++)  /* strict >: ties go to the lowest index */
        if (counts[i] > counts[best]) best = i;
    return best;
}}
"""


HARNESS_C = r"""/* harness.c: host test of spikeforge_net.c (written by spikeforge, mcu.py).
 * Usage: harness INPUTS.bin N [timing_passes]
 * INPUTS.bin holds N inputs as sf_in_t values (little-endian), one sf_infer input each.
 * Prints, per input: "S layer step <spikes as hex, neuron 0 in the lowest bit>" for every
 * layer and step, then "P image prediction count_0 ... count_K". Then "W bytes" (the
 * workspace) and, with timing_passes > 0, "T microseconds_per_inference": the mean over
 * timing_passes passes over all N inputs, without tracing. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "spikeforge_net.h"

static int tracing = 1;

void sf_trace(int layer, int step, const uint8_t *spikes, int n)
{
    int k, nibble;
    if (!tracing) return;
    printf("S %d %d ", layer, step);
    for (k = ((n + 3) / 4) * 4 - 4; k >= 0; k -= 4) {
        nibble = 0;
        if (k < n && spikes[k]) nibble |= 1;
        if (k + 1 < n && spikes[k + 1]) nibble |= 2;
        if (k + 2 < n && spikes[k + 2]) nibble |= 4;
        if (k + 3 < n && spikes[k + 3]) nibble |= 8;
        putchar("0123456789abcdef"[nibble]);
    }
    putchar('\n');
}

#if SF_INPUT_SPIKES
#define SF_INPUT_VALUES (SF_TIMESTEPS * SF_N_INPUTS)
#define SF_INFER(x, counts, ws) sf_infer((const sf_in_t (*)[SF_N_INPUTS])(x), counts, ws)
#else
#define SF_INPUT_VALUES SF_N_INPUTS
#define SF_INFER(x, counts, ws) sf_infer(x, counts, ws)
#endif

int main(int argc, char **argv)
{
    static sf_workspace ws;
    uint16_t counts[SF_N_OUTPUTS];
    sf_in_t *inputs;
    FILE *f;
    long n, image, passes = 0, pass;
    int k, prediction;
    if (argc < 3) {
        fprintf(stderr, "usage: %s INPUTS.bin N [timing_passes]\n", argv[0]);
        return 2;
    }
    n = atol(argv[2]);
    if (argc > 3) passes = atol(argv[3]);
    inputs = malloc(sizeof(sf_in_t) * SF_INPUT_VALUES * (size_t)(n > 0 ? n : 1));
    f = fopen(argv[1], "rb");
    if (!f || !inputs) {
        perror(argv[1]);
        return 2;
    }
    if (fread(inputs, sizeof(sf_in_t) * SF_INPUT_VALUES, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: fewer than %ld inputs\n", argv[1], n);
        return 2;
    }
    fclose(f);
    for (image = 0; image < n; image++) {
        prediction = SF_INFER(inputs + image * SF_INPUT_VALUES, counts, &ws);
        printf("P %ld %d", image, prediction);
        for (k = 0; k < SF_N_OUTPUTS; k++) printf(" %u", (unsigned)counts[k]);
        putchar('\n');
    }
    printf("W %lu\n", (unsigned long)sizeof(sf_workspace));
    if (passes > 0 && n > 0) {
        clock_t start;
        double seconds;
        volatile int sink = 0;
        tracing = 0;
        start = clock();
        for (pass = 0; pass < passes; pass++)
            for (image = 0; image < n; image++)
                sink += SF_INFER(inputs + image * SF_INPUT_VALUES, counts, &ws);
        seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
        printf("T %.3f\n", 1e6 * seconds / ((double)passes * (double)n));
        (void)sink;
    }
    free(inputs);
    return 0;
}
"""


def readme_text(spec: NetworkSpec, plans: Sequence[LayerPlan], types: CTypes,
                flash: int) -> str:
    sizes = " -> ".join(str(n) for n in spec.layer_sizes)
    spikes_in = spec.encoding.type == "spikes"
    call = ("static sf_in_t input[SF_TIMESTEPS][SF_N_INPUTS];  /* 0/1 per line and step */"
            if spikes_in else
            "static sf_in_t input[SF_N_INPUTS];  /* pixel codes 0..255 */")
    return f"""# C for microcontrollers: {sizes} spiking network

Written by `spikeforge mcu`. Portable C99: integer arithmetic only, no floating point, no
malloc; the weights are `const` arrays (flash, {flash} bytes with the biases); the state is
an `sf_workspace` the caller owns. Bit-exact with spikeforge's twin (docs/digital.md).

```c
#include "spikeforge_net.h"

static sf_workspace ws;          /* sizeof(sf_workspace) bytes of RAM */
{call}
uint16_t counts[SF_N_OUTPUTS];
int digit = sf_infer(input, counts, &ws);
```

Types: weights `{types.weight}`, membranes `{types.membrane}`, currents `{types.current}`,
leak product `{types.wide}`.

Test on a host (what `spikeforge mcu BUNDLE --out DIR --test` does):

    gcc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -DSF_TRACE \\
        -o harness harness.c spikeforge_net.c
    ./harness inputs.bin N        # every layer's spikes, counts and predictions
"""


# ------------------------------------------------------------------------ writing


@dataclass
class McuDesign:
    """A generated C project: folder, plans, types and the bytes of flash it needs."""

    folder: Path
    plans: list[LayerPlan]
    types: CTypes
    flash_bytes: int


_SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4,
          "uint32_t": 4, "int64_t": 8, "uint64_t": 8}


def check_mcu_buildable(bundle: Any) -> None:
    """Refuse, with the fix, a bundle the C generator cannot build."""
    if bundle.target != "digital" or bundle.spec.digital is None:
        raise McuError(f"the C generator builds digital bundles (integer weights); this "
                       f"bundle's target is {bundle.target!r}. Export the run with `spikeforge "
                       f"export RUN --target digital --out BUNDLE` and generate C from that")
    if max(bundle.spec.layer_sizes) > 65535:
        raise McuError("a layer wider than 65,535 neurons or inputs does not fit the C "
                       "code's uint16_t spike lists")
    if bundle.spec.timesteps > 65535:
        raise McuError(f"T = {bundle.spec.timesteps} does not fit the uint16_t spike counts")


def write_c(bundle: Any, folder: str | os.PathLike) -> McuDesign:
    """Write ``spikeforge_net.h``, ``spikeforge_net.c``, ``harness.c`` and ``README.md``."""
    check_mcu_buildable(bundle)
    spec: NetworkSpec = bundle.spec
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plans = plan_layers(spec, bundle.weights, bundle.biases, bundle.layer_names, 1)
    types = c_types(spec, plans)
    flash = sum(w.size * _SIZES[types.weight] + (0 if b is None else _SIZES[types.current] * b.size)
                for w, b in zip(bundle.weights, bundle.biases, strict=True))
    (folder / "spikeforge_net.h").write_text(header_text(spec, plans, types))
    (folder / "spikeforge_net.c").write_text(
        source_text(spec, plans, bundle.weights, bundle.biases))
    (folder / "harness.c").write_text(HARNESS_C)
    (folder / "README.md").write_text(readme_text(spec, plans, types, flash))
    return McuDesign(folder, plans, types, flash)


def input_bytes(spec: NetworkSpec, x: np.ndarray, types: CTypes) -> bytes:
    """The harness's input file for ``x`` (the twin's layout): per input, the integer
    codes (or the ``(T, features)`` spike lines) as little-endian ``sf_in_t``."""
    from spikeforge.hardware.simulate import encode_inputs

    s0 = np.asarray(encode_inputs(spec, x))
    if spec.encoding.type == "spikes":
        s0 = s0.transpose(1, 0, 2)  # (n, T, features)
    dtype = {"uint8_t": "<u1", "uint16_t": "<u2", "uint32_t": "<u4"}[types.input]
    return np.ascontiguousarray(s0.astype(np.int64).astype(dtype)).tobytes()


def compile_harness(design: McuDesign, cc: str = "gcc", sanitize: bool = False,
                    timeout: float = 1800.0) -> Path:
    """Compile ``harness`` with all warnings as errors (and sanitizers if asked)."""
    exe = shutil.which(cc)
    if exe is None:
        raise McuError(f"{cc} is not installed (no `{cc}` on PATH): install the Debian/Ubuntu "
                       f"package `{GCC_PACKAGE}` (`sudo apt-get install {GCC_PACKAGE}`), or "
                       f"pass another host compiler (--cc)")
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-DSF_TRACE"]
    if sanitize:
        flags += ["-fsanitize=undefined,address", "-fno-sanitize-recover=all", "-g"]
    proc = subprocess.run([exe, *flags, "-o", "harness", "harness.c", "spikeforge_net.c"],
                          cwd=design.folder, capture_output=True, text=True, check=False,
                          timeout=timeout)
    if proc.returncode != 0:
        raise McuError(f"{cc} could not compile the generated C (exit code "
                       f"{proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return design.folder / "harness"


@dataclass
class HarnessOutput:
    """What the harness printed: predictions ``(n,)``, counts ``(n, outputs)``, every
    layer's spikes ``(T, n, neurons)``, the workspace size and the host time."""

    predictions: np.ndarray
    counts: np.ndarray
    spikes: list[np.ndarray]
    workspace_bytes: int
    us_per_inference: float | None


def hex_bits(words: Sequence[str], k: int) -> np.ndarray:
    """Hex words (element 0 in the lowest bit) as booleans ``(len(words), k)``."""
    if not words:
        return np.zeros((0, k), dtype=bool)
    digits = -(-k // 4)
    text = np.frombuffer("".join(w.rjust(digits, "0") for w in words).encode(), np.uint8)
    nibbles = np.where(text >= ord("a"), text - ord("a") + 10, text - ord("0"))
    nibbles = nibbles.reshape(len(words), digits)[:, ::-1]  # least significant first
    bits = (nibbles[:, :, None] >> np.arange(4)) & 1
    return bits.reshape(len(words), digits * 4)[:, :k].astype(bool)


def parse_harness(text: str, spec: NetworkSpec, n: int) -> HarnessOutput:
    """Parse the harness's output (format in ``harness.c``): trace lines come before the
    ``P`` line of their input."""
    T = spec.timesteps
    sizes = spec.layer_sizes[1:]
    spikes = [np.zeros((T, n, k), dtype=bool) for k in sizes]
    where: list[list[tuple[int, int]]] = [[] for _ in sizes]
    words: list[list[str]] = [[] for _ in sizes]
    predictions = np.full(n, -1, dtype=np.int64)
    counts = np.zeros((n, sizes[-1]), dtype=np.int64)
    workspace, micros = 0, None
    image = 0
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "S":
            layer, step, bits = rest.split()
            where[int(layer)].append((int(step), image))
            words[int(layer)].append(bits)
        elif kind == "P":
            fields = [int(v) for v in rest.split()]
            predictions[fields[0]] = fields[1]
            counts[fields[0]] = fields[2:]
            image = fields[0] + 1
        elif kind == "W":
            workspace = int(rest)
        elif kind == "T":
            micros = float(rest)
    for layer, k in enumerate(sizes):
        if words[layer]:
            index = np.array(where[layer])
            spikes[layer][index[:, 0], index[:, 1]] = hex_bits(words[layer], k)
    return HarnessOutput(predictions, counts, spikes, workspace, micros)


def run_harness(design: McuDesign, spec: NetworkSpec, x: np.ndarray, timing_passes: int = 0,
                timeout: float = 1800.0) -> HarnessOutput:
    """Run the compiled harness on inputs ``x`` (the twin's layout) and parse its output."""
    n = x.shape[1] if spec.encoding.type == "spikes" else x.shape[0]
    (design.folder / "inputs.bin").write_bytes(input_bytes(spec, x, design.types))
    try:
        proc = subprocess.run(["./harness", "inputs.bin", str(n), str(timing_passes)],
                              cwd=design.folder, capture_output=True, text=True, check=False,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise McuError(f"the C harness did not finish within {timeout:g} s: test fewer "
                       f"images (--images)") from None
    if proc.returncode != 0:
        raise McuError(f"the C harness failed (exit code {proc.returncode}): "
                       f"{proc.stderr[-3000:]}")
    return parse_harness(proc.stdout, spec, n)


def compare(harness: HarnessOutput, twin: Any, names: Sequence[str] | None = None
            ) -> dict[str, Any]:
    """The harness against the twin: identical predictions, counts and spike trains (per
    input, all layers), and the first differing spike in the order they happen (image,
    step, layer, then the lowest neuron), as the RTL testbench reports it."""
    n = len(harness.predictions)
    same_trains = np.ones(n, dtype=bool)
    candidates = []
    for layer, (c, s) in enumerate(zip(harness.spikes, twin.spikes, strict=True)):
        differ = c != s  # (T, n, k)
        same_trains &= ~differ.any(axis=(0, 2))
        if differ.any():
            step, image, neuron = (int(v) for v in np.argwhere(differ.transpose(1, 0, 2))[0]
                                   [[1, 0, 2]])
            candidates.append((image, step, layer, neuron))
    first = None
    if candidates:
        image, step, layer, neuron = min(candidates)
        first = {"layer": layer, "step": step, "image": image, "neuron": neuron}
    same_counts = (harness.counts == twin.counts).all(axis=1)
    same_pred = harness.predictions == twin.predictions
    passed = bool(same_trains.all() and same_counts.all() and same_pred.all())
    mismatch = None
    if first is not None:
        layer = names[first["layer"]] if names else first["layer"]
        mismatch = (f"layer {layer}, neuron {first['neuron']}, step {first['step']}, "
                    f"image {first['image']}")
    elif not passed:
        mismatch = f"image {int(np.argmin(same_counts & same_pred))}: counts or prediction"
    return {"passed": passed, "images": n,
            "identical_predictions": int(same_pred.sum()),
            "identical_counts": int(same_counts.sum()),
            "identical_spike_trains": int(same_trains.sum()),
            "mismatch": mismatch, "first_mismatch": first}


def mcu_check(bundle: Any, x: np.ndarray | None, out: str | os.PathLike, options: McuOptions,
              force: bool = False) -> dict[str, Any]:
    """Write the C for ``bundle`` into the folder ``out`` and, with ``options.test``,
    compile the harness and compare it with the twin on inputs ``x`` (spike by spike);
    ``mcu_result.json`` records it. The folder is built beside ``out`` and moved into
    place whole."""
    from spikeforge.hardware.simulate import run_twin

    check_mcu_buildable(bundle)
    out = Path(out)
    if out.exists() and not force:
        raise McuError(f"{out} exists; pass --force to replace it, or choose another --out")
    with staged_dir(out) as tmp:
        design = write_c(bundle, tmp)
        result: dict[str, Any] = {
            "passed": None, "tested": False, "images": 0, "mismatch": None,
            "flash_bytes": design.flash_bytes,
            "types": {k: getattr(design.types, k) for k in design.types.__dataclass_fields__}}
        if options.test:
            if x is None:
                raise McuError("testing the C code needs test inputs")
            start = time.perf_counter()
            compile_harness(design, options.cc, options.sanitize, options.timeout)
            compile_seconds = time.perf_counter() - start
            twin = run_twin(bundle.spec, bundle.weights, bundle.biases, x, record=True)
            start = time.perf_counter()
            # one timing pass over all inputs (not under sanitizers: they slow it down)
            harness = run_harness(design, bundle.spec, x, 0 if options.sanitize else 1,
                                  options.timeout)
            result.update(compare(harness, twin, bundle.layer_names), tested=True,
                          sanitized=options.sanitize, compiler=options.cc,
                          ram_bytes=harness.workspace_bytes,
                          host_us_per_inference=harness.us_per_inference,
                          compile_seconds=round(compile_seconds, 3),
                          run_seconds=round(time.perf_counter() - start, 3))
            for name in ("harness", "inputs.bin"):  # build products, not deliverables
                (tmp / name).unlink(missing_ok=True)
        (tmp / "mcu_result.json").write_text(json.dumps(result, indent=2) + "\n")
    result["out"] = str(out)
    return result


def mcu_bundle(path: str | os.PathLike, out: str | os.PathLike, options: McuOptions,
               dataset: str | None = None, data_dir: str | None = None,
               force: bool = False) -> dict[str, Any]:
    """:func:`mcu_check` on a bundle folder and (with ``--test``) the first
    ``options.images`` test samples of its dataset (``spikeforge mcu BUNDLE --out DIR``)."""
    from spikeforge.hardware.bundle import load_bundle
    from spikeforge.hardware.export import bundle_dataset
    from spikeforge.hardware.simulate import twin_inputs

    bundle = load_bundle(path)
    check_mcu_buildable(bundle)
    x, name = None, None
    if options.test:
        data = bundle_dataset(bundle, dataset, data_dir, limit=options.images)
        x, name = twin_inputs(bundle.spec, data.test_x[:options.images]), data.name
    result = mcu_check(bundle, x, out, options, force)
    return {"bundle": str(path), "dataset": name, **result}
