"""A network for a part budget: ``spikeforge train --part-budget N``.

A builder states how many synapse resistors the board may have; this module chooses the
input front-end (``downsample``) and the hidden width of a network that is then pruned to
``max_synapses = N`` (:mod:`spikeforge.pruning`). A ``fan_in`` limit, if given, is the
board's constraint and is kept; the search does not loosen or tighten it.

Candidates (:func:`candidate_designs`): one hidden layer of width ``N/32``, ``N/16`` or
``N/8`` (at least 16, at most 256 neurons: every neuron is a comparator, a capacitor and a
switch more), fed by the two largest pooled inputs that keep at least 7 pixels a side (4 for
small images) and have at most ``N/2`` input lines. Settings the user chose
(``downsample`` other than 1, ``hidden`` other than the default) stay fixed; the training-
only regularisers ``dropout`` and ``augment_shift``, if left at their defaults, are switched
off: a network of a few thousand synapses underfits rather than overfits (14x14-64-10 at
1,000 synapses on MNIST: 95.8 % without, 92.0 % with a one-pixel shift).

Search (:func:`choose_design`): every candidate trains for a quarter of the run's epochs
(at least 2, at most 10) on the training set minus a held-out validation split (its last
sixth), with the run's own settings (series, tolerance noise, fan-in); each is scored on the
validation split with its realised weights (the median over a few tolerance draws when
``weight_noise`` is set). The smallest network within 0.25 percentage points of the best
wins. The test set is never looked at. The chosen design is written into the config
(``downsample``, ``hidden``, ``max_synapses = N``, and the regularisers), so the run's
checkpoint and metrics say exactly what was trained; the search itself is recorded under
``hardware.part_budget_search`` in ``metrics.json``.

Measured on MNIST (E24, 10k-1M, 1 % tolerance, 30 epochs): at 1,000 synapses 14x14 input
with 64-128 hidden neurons reaches 95.8-95.9 %, 7x7 input 94.4 %, the full 28x28 93.3 %;
at 5,000 synapses 14x14-256 reaches 98.1 %, 14x14-128 97.9 %, 28x28-128 97.4 %.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from spikeforge.config import TrainConfig
from spikeforge.data.datasets import IMAGE_SHAPES, divisors
from spikeforge.errors import ConfigError

#: fraction of the training set held out to compare candidates
VALIDATION_FRACTION = 1 / 6
#: tolerance draws per candidate when the run trains with weight noise
SEARCH_DRAWS = 5
#: a larger network must beat the smallest candidate by more than this to be chosen
SIGNIFICANT = 0.0025
#: hidden widths the search considers, as budget fractions, and their bounds
WIDTH_FRACTIONS, MIN_WIDTH, MAX_WIDTH = (1 / 32, 1 / 16, 1 / 8), 16, 256
DEFAULTS = TrainConfig()


def candidate_designs(budget: int, image_shape: tuple[int, ...] | None,
                      downsample: int | None = None, hidden: tuple[int, ...] | None = None
                      ) -> list[dict[str, Any]]:
    """The designs the search compares for ``budget`` synapses (module docstring), smallest
    first. ``downsample`` / ``hidden`` fix those choices."""
    if image_shape is None:
        pools = [1]
    elif downsample is not None:
        pools = [downsample]
    else:
        height, width = image_shape[-2:]  # event frames: (polarity, height, width)
        least = min(7, height // 2, width // 2)
        fits = [k for k in divisors(height, width) if min(height // k, width // k) >= least]
        small = [k for k in fits if (height // k) * (width // k) <= budget / 2]
        pools = small[:2] or fits[-1:]
    if hidden is not None:
        widths = [tuple(hidden)]
    else:
        widths = sorted({(min(MAX_WIDTH, max(MIN_WIDTH, round(budget * f))),)
                         for f in WIDTH_FRACTIONS})
    return [{"downsample": k, "hidden": list(h)} for h in widths
            for k in sorted(pools, reverse=True)]


def choose_design(config: TrainConfig, progress: bool = False, device: str = "auto"
                  ) -> tuple[TrainConfig, dict[str, Any]]:
    """The config with the design for ``config.part_budget`` filled in, and a record of the
    search (module docstring)."""
    from spikeforge.train import (
        _log,
        evaluate,
        evaluate_with_tolerance,
        hardware_counts,
        prepare_dataset,
        train_model,
    )

    budget = config.part_budget
    if budget is None:
        raise ConfigError("part_budget is not set: give the number of synapse resistors")
    raw = prepare_dataset(config.replace(downsample=1, limit_test=1), progress=progress)
    n_validation = max(1, math.floor(len(raw.train_x) * VALIDATION_FRACTION))
    split = raw.hold_out(n_validation)
    designs = candidate_designs(
        budget, IMAGE_SHAPES[config.dataset],
        downsample=None if config.downsample == DEFAULTS.downsample else config.downsample,
        hidden=None if config.hidden == DEFAULTS.hidden else config.hidden)
    regularisers = {name: 0 if getattr(config, name) == getattr(DEFAULTS, name)
                    else getattr(config, name) for name in ("dropout", "augment_shift")}
    epochs = min(10, max(2, config.epochs // 4))
    results = []
    for design in designs:
        start = time.perf_counter()
        trial = config.replace(**design, **regularisers, max_synapses=budget, epochs=epochs,
                               init_from=None)
        data = split.downsample(trial.downsample)
        model = train_model(trial, data, device)
        dev = next(model.parameters()).device
        x = torch.from_numpy(data.test_x).to(dev)
        y = torch.from_numpy(data.test_y).to(dev)
        if config.weight_noise > 0:
            accuracy = evaluate_with_tolerance(model, x, y, config.weight_noise, SEARCH_DRAWS,
                                               seed=config.seed)["median"]
        else:
            accuracy = evaluate(model, x, y, config.eval_batch_size).accuracy
        results.append({**design, "validation_accuracy": accuracy,
                        "synapses": hardware_counts(model)["synapses"],
                        "seconds": round(time.perf_counter() - start, 1)})
        if progress:
            _log(f"part budget {budget}: downsample {design['downsample']}, hidden "
                 f"{design['hidden']}: validation accuracy {accuracy:.2%}")
    top = max(r["validation_accuracy"] for r in results)
    best = next(r for r in results if r["validation_accuracy"] >= top - SIGNIFICANT)
    chosen = {"downsample": best["downsample"], "hidden": best["hidden"], **regularisers}
    return (config.replace(**chosen, max_synapses=budget),
            {"budget": budget, "validation_samples": n_validation, "search_epochs": epochs,
             "candidates": results, "chosen": chosen})
