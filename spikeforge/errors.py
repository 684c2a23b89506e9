"""Error types. Every error a user can cause is a :class:`SpikeforgeError`.

The CLI maps them to exit code 2 ("bad input") and prints only the message, which
names the problem and the fix; anything else is an internal error (exit code 1).
"""

from __future__ import annotations


class SpikeforgeError(Exception):
    """Bad input: a config, a file or a request that spikeforge cannot honour."""


class SpecError(SpikeforgeError, ValueError):
    """A hardware contract (spec) with a field outside its allowed range."""


class ConfigError(SpikeforgeError, ValueError):
    """A training config (TOML or command line) that cannot be run."""


class DatasetError(SpikeforgeError):
    """A dataset file that is missing, corrupt or of the wrong shape."""


class CheckpointError(SpikeforgeError):
    """A run directory or checkpoint that cannot be used as asked."""
