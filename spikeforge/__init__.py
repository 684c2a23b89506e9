"""spikeforge: train spiking neural networks and deploy them to hardware from discrete parts.

The pipeline, one module each::

    data -> encoders -> train (models, neurons, surrogates, losses) -> [quantise -> export
    -> simulate / verify]

:mod:`spikeforge.spec` is the hardware contract that every stage imports.
"""

__version__ = "0.1.0"
