"""IDX files (the format of MNIST and Fashion-MNIST) and the Fashion-MNIST copy Debian installs.

Debian and Ubuntu ship the original Fashion-MNIST as a package (``apt-get install
dataset-fashion-mnist``): the four gzipped IDX files under :data:`FASHION_MNIST_FOLDER`.
:func:`fashion_mnist_folder` says where that copy is looked for (``$NCUTILS_FASHION_MNIST`` overrides
the Debian folder), :func:`read_idx` reads one IDX file (gzipped or not) with its header checked,
:func:`idx_header` checks a file against its header without reading its data (for the presence
checks of :mod:`ncutils.data.presence`), and :class:`FashionMNISTFolder` is torchvision's
``FashionMNIST`` read from such a folder: same images (uint8 28x28), labels (0-9), order, classes and
``(PIL image, label)`` items. :func:`ncutils.data.load` reads it when the data root holds no complete copy.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.datasets import VisionDataset

__all__ = [
    "FASHION_MNIST_ENV",
    "FASHION_MNIST_FOLDER",
    "FASHION_MNIST_PACKAGE",
    "FashionMNISTFolder",
    "fashion_mnist_files",
    "fashion_mnist_folder",
    "idx_header",
    "pair_problems",
    "read_idx",
    "split_stems",
]

#: Where Debian's package :data:`FASHION_MNIST_PACKAGE` installs the Fashion-MNIST IDX files.
FASHION_MNIST_FOLDER = Path("/usr/share/datasets/fashion-mnist")
#: Debian/Ubuntu package holding the original Fashion-MNIST files.
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
#: Environment variable naming another folder of Fashion-MNIST IDX files (replaces :data:`FASHION_MNIST_FOLDER`).
FASHION_MNIST_ENV = "NCUTILS_FASHION_MNIST"

# IDX type codes (third byte of the header); all multi-byte types are big-endian
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _parse_header(raw: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Type, shape and data offset announced by the first bytes ``raw`` of IDX file ``path``."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(f"{path} is not an IDX file: its header {raw[:4].hex(' ') or '(empty)'} is not "
                         "00 00 <type code> <number of dimensions>.")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"{path} is truncated: its header announces {ndim} dimensions but the file has "
                         f"only {len(raw)} bytes.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return dtype, shape, start


def _data_bytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _gzip_error(path: Path, err: Exception) -> ValueError:
    return ValueError(f"{path} is not a complete gzip file ({err}); it is truncated or corrupted.")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` files are decompressed), in native byte order.

    The header is checked against the data: two zero bytes, a known type code, the number of
    dimensions, then one big-endian 32-bit size per dimension, followed by exactly the
    ``prod(sizes)`` values these announce.

    Parameters
    ----------
    path:
        An IDX file such as ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    np.ndarray
        Of the file's shape and type (uint8 for the MNIST images and labels).

    Raises
    ------
    ValueError
        When the file is truncated, not gzip although named ``.gz``, or not an IDX file; the
        message names the file and what is wrong with it.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise _gzip_error(path, err) from err
    dtype, shape, start = _parse_header(raw, path)
    expected, found = _data_bytes(dtype, shape), len(raw) - start
    if found != expected:
        problem = "is truncated" if found < expected else "has extra bytes"
        raise ValueError(f"{path} {problem}: its header announces shape {shape} ({expected} bytes of data) but "
                         f"it holds {found} bytes.")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


_MAX_HEADER = 4 + 4 * 255  # the number of dimensions is one byte


def idx_header(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...]]:
    """Type and shape that an IDX file announces, checked against the file's size; its data are not read.

    A plain file must hold exactly the header plus ``prod(shape)`` values. Of a gzipped file (``.gz``)
    the header is decompressed and the uncompressed size recorded in the gzip trailer (its last four
    bytes, modulo 2**32) is compared with the size the header announces, which tells a truncated
    download from a complete one without decompressing it (a file damaged in the middle is only
    caught by :func:`read_idx`).

    Raises
    ------
    ValueError
        When the file is not an IDX file, is truncated or has extra bytes, or is not a complete gzip
        file although named ``.gz``; the message names the file. ``OSError`` when it cannot be opened.
    """
    path = Path(path)
    if path.suffix != ".gz":
        with open(path, "rb") as f:
            raw = f.read(_MAX_HEADER)
        dtype, shape, start = _parse_header(raw, path)
        expected, found = _data_bytes(dtype, shape), path.stat().st_size - start
        if found != expected:
            problem = "is truncated" if found < expected else "has extra bytes"
            raise ValueError(f"{path} {problem}: its header announces shape {shape} ({expected} bytes of data) "
                             f"but it holds {found} bytes.")
        return dtype, shape
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read(_MAX_HEADER)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise _gzip_error(path, err) from err
    dtype, shape, start = _parse_header(raw, path)
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        recorded = int.from_bytes(f.read(4), "little")
    expected = _data_bytes(dtype, shape)
    if recorded != (start + expected) % 2**32:
        raise ValueError(f"{path} is truncated or corrupted: its header announces shape {shape} ({expected} bytes "
                         "of data) but the file does not end with the gzip trailer of that many bytes.")
    return dtype, shape


def pair_problems(image_file: Path, images: tuple[np.dtype, tuple[int, ...]], label_file: Path,
                  labels: tuple[np.dtype, tuple[int, ...]]) -> list[str]:
    """What keeps an image file and a label file (each as its ``(dtype, shape)``) from forming an (Fashion-)MNIST split.

    Images must be uint8 of shape (N, height, width), labels uint8 of shape (N,), with the same N.
    """
    (image_type, image_shape), (label_type, label_shape) = images, labels
    out = []
    if image_type != np.uint8 or len(image_shape) != 3:
        out.append(f"{image_file} holds {image_type} data of shape {image_shape}, not uint8 images "
                   "(N, height, width): it is not an image file of (Fashion-)MNIST.")
    if label_type != np.uint8 or len(label_shape) != 1:
        out.append(f"{label_file} holds {label_type} data of shape {label_shape}, not uint8 labels (N,): "
                   "it is not a label file of (Fashion-)MNIST.")
    if not out and image_shape[0] != label_shape[0]:
        out.append(f"{image_file} holds {image_shape[0]} images but {label_file} {label_shape[0]} labels: the "
                   "two files do not belong together.")
    return out


def fashion_mnist_folder() -> Path:
    """Folder searched for Fashion-MNIST's IDX files: ``$NCUTILS_FASHION_MNIST``, else :data:`FASHION_MNIST_FOLDER`.

    The folder need not exist; see :func:`fashion_mnist_files`.
    """
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env).expanduser() if env else FASHION_MNIST_FOLDER


def split_stems(train: bool) -> tuple[str, str]:
    """Names (without ``.gz``) of the image and label files of the training or test split."""
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def fashion_mnist_files(folder: str | os.PathLike | None = None) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files of Fashion-MNIST in ``folder`` (default :func:`fashion_mnist_folder`).

    Each file may be gzipped (``train-images-idx3-ubyte.gz``, as in Debian's package) or not
    (``train-images-idx3-ubyte``, as in torchvision's ``raw`` folder). Nothing is read.

    Returns
    -------
    files, missing:
        ``{stem: path}`` of the files found and the names of those that are not there.
    """
    folder = fashion_mnist_folder() if folder is None else Path(folder)
    files, missing = {}, []
    for stem in (*split_stems(True), *split_stems(False)):
        found = [p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()]
        if found:
            files[stem] = found[0]
        else:
            missing.append(f"{stem}.gz")
    return files, missing


class FashionMNISTFolder(torchvision.datasets.FashionMNIST):
    """torchvision's ``FashionMNIST`` read from a folder of IDX files, e.g. Debian's :data:`FASHION_MNIST_FOLDER`.

    Items, ``data`` (uint8 tensor of shape (N, 28, 28)), ``targets`` (int64 tensor), ``classes`` and
    transforms are those of ``torchvision.datasets.FashionMNIST``; only the files are found elsewhere
    (see :func:`fashion_mnist_files`). Nothing is downloaded.

    Parameters
    ----------
    folder:
        Folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.
    train:
        The 60,000 training images, or the 10,000 test images.
    transform, target_transform:
        As for torchvision's datasets.

    Raises
    ------
    FileNotFoundError
        When a file of the split is missing.
    ValueError
        When a file is not a complete IDX file of the expected kind (:func:`read_idx`), or the
        images and labels do not match.
    """

    def __init__(self, folder: str | os.PathLike, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None):
        # torchvision's MNIST.__init__ only looks under root/FashionMNIST/raw: set up what it would
        VisionDataset.__init__(self, str(folder), transform=transform, target_transform=target_transform)
        self.train = train
        files, _ = fashion_mnist_files(folder)
        image_stem, label_stem = split_stems(train)
        absent = [f"{s}.gz" for s in (image_stem, label_stem) if s not in files]
        if absent:
            raise FileNotFoundError(f"Fashion-MNIST files {absent} are missing from {folder}.")
        images, labels = read_idx(files[image_stem]), read_idx(files[label_stem])
        problems = pair_problems(files[image_stem], (images.dtype, images.shape),
                                 files[label_stem], (labels.dtype, labels.shape))
        if problems:
            raise ValueError(" ".join(problems))
        if len(labels) and labels.max() >= len(self.classes):
            raise ValueError(f"{files[label_stem]} holds label {int(labels.max())}; Fashion-MNIST has "
                             f"{len(self.classes)} classes (0-{len(self.classes) - 1}).")
        self.data = torch.from_numpy(images)
        self.targets = torch.from_numpy(labels).long()

    @property
    def raw_folder(self) -> str:
        return self.root

    @property
    def processed_folder(self) -> str:
        return self.root
