"""Data: the pipeline's first stage. Files, checks, downloads and in-memory datasets."""

from spikeforge.data.datasets import DATASETS, Dataset, load_dataset
from spikeforge.data.downloads import fetch
from spikeforge.data.files import resolve_data_dir

__all__ = ["DATASETS", "Dataset", "fetch", "load_dataset", "resolve_data_dir"]
