"""Learning-rule baselines: what else could train the network, and how well it does.

The source project tried several ways to learn MNIST before settling on surrogate
gradients; ``spikeforge compare`` reruns them on one protocol (train on the training set,
choose only on a validation split held out of it, score the test set once) on Iris, MNIST
and MNIST 0-vs-1 (``mnist-binary``):

============  ==========================================  ==================================
method        what it is                                  what the source found
============  ==========================================  ==================================
ann-sigmoid   MLP, sigmoid hidden layer, softmax output,  works ("standard supervised
              cross-entropy, backpropagation              learning works well")
ann-relu      ReLU MLP 784-128-10, softmax,               works ("good accuracy on MNIST")
              cross-entropy, Adam
reinforce     softmax policy over the classes, reward     works on simple tasks
              ±1, REINFORCE with a baseline, entropy
              regularisation and several samples
surrogate     the contract's LIF 784-128-10, T = 25,      works: 97.76 % (this project's
              surrogate gradients through time            recipe: about 98.2 %)
r-stdp        reward-modulated STDP on LIF neurons        fails: ~10 % on MNIST, 45 % on
                                                          0-vs-1, always one class (the
                                                          baseline absorbs the sparse ±1
                                                          reward and winner-take-all locks
                                                          in whichever class wins early)
bp-stdp       STDP driven by a backpropagated error       works on Iris; 50 % on MNIST for
              (Tavanaei & Maida 2017)                     the other team (the paper: ~97 %)
============  ==========================================  ==================================

The STDP rules live in :mod:`spikeforge.baselines.stdp`, imported only when asked for; the
registry (:data:`~spikeforge.baselines.compare.METHODS`) reports them as unavailable while
that module cannot be imported.
"""

from __future__ import annotations

from spikeforge.baselines.ann import train_ann_relu, train_ann_sigmoid
from spikeforge.baselines.common import (
    COMPARE_DATASETS,
    BaselineResult,
    BaselineSettings,
    Method,
    load_compare_dataset,
)
from spikeforge.baselines.compare import (
    METHODS,
    MethodInfo,
    MethodUnavailableError,
    format_table,
    load_results,
    plot_class_histogram,
    plot_comparison,
    resolve_methods,
    run_comparison,
    save_results,
    write_outputs,
)
from spikeforge.baselines.reinforce import reinforce_loss, train_reinforce
from spikeforge.baselines.surrogate import train_surrogate

__all__ = [
    "COMPARE_DATASETS",
    "METHODS",
    "BaselineResult",
    "BaselineSettings",
    "Method",
    "MethodInfo",
    "MethodUnavailableError",
    "format_table",
    "load_compare_dataset",
    "load_results",
    "plot_class_histogram",
    "plot_comparison",
    "reinforce_loss",
    "resolve_methods",
    "run_comparison",
    "save_results",
    "train_ann_relu",
    "train_ann_sigmoid",
    "train_reinforce",
    "train_surrogate",
    "write_outputs",
]
