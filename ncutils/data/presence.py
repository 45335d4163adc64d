"""Whether a dataset of the catalog is on disk in full, file by file, and which copy of it is read.

A dataset counts as present only when the files torchvision reads are there and, as far as a quick
look can tell, intact. What is checked, per dataset (:data:`VERIFIERS`):

* **CIFAR-10, CIFAR-100**: every file of torchvision's own lists (``train_list``, ``test_list``,
  ``meta``) matches its md5 checksum, the check torchvision itself makes at every load (about 0.3 s
  for each dataset's 180 MB; a file's result is remembered while it is unchanged).
* **MNIST, Fashion-MNIST**: the four IDX files are complete (each header announces the file's size,
  :func:`ncutils.data.idx.idx_header`; gzipped files by their gzip trailer), the images are uint8
  ``(N, height, width)`` and the labels uint8 ``(N,)`` with as many labels as images. (torchvision's
  checksums are those of the ``.gz`` archives it downloads, not of the unpacked files it reads, nor
  of Debian's files.)
* **FGVC-Aircraft, DTD, Oxford-IIIT Pets, Flowers-102**: the class and split files torchvision reads
  are there (Flowers-102's two ``.mat`` files by torchvision's md5 checksums), and every image
  these files list exists and is not empty. The images are not decoded: a JPEG damaged inside
  passes.
* **SUN397**: ``ClassName.txt`` is there and each class it lists has a folder with at least
  :data:`SUN397_MIN_PER_CLASS` non-empty ``sun_*.jpg`` images (:func:`ncutils.data.load` draws 50
  training and 50 test images per class). The 108,754 images are counted, not opened.

Nothing is hashed beyond the small files named above, so checking every dataset takes seconds.

A dataset may have several copies (:class:`Copy`): torchvision's layout under the data root, and
for Fashion-MNIST the folder of IDX files that Debian's package ``dataset-fashion-mnist`` installs
(or the folder ``$NCUTILS_FASHION_MNIST`` names). :func:`locate` checks them all; the first complete
one is used (:attr:`Presence.used`), so a partial copy under the data root does not hide a complete
one elsewhere. Each copy carries the fix that suits where it came from (delete and download again,
replace the file, reinstall the package).
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import scipy.io

from ncutils.data import idx


class DatasetInfo(Protocol):
    """The fields of :class:`ncutils.data.catalog.DatasetInfo` this module reads (a protocol, so that the catalog,
    which asks this module, is not imported by it)."""

    name: str
    title: str
    folder: str
    tv_class: type
    splits: dict[str, tuple[dict[str, Any], ...]]

__all__ = ["SUN397_MIN_PER_CLASS", "VERIFIERS", "Copy", "Presence", "Problem", "idx_problems", "locate",
           "root_copy", "system_copy"]

#: Images a SUN397 class needs: :func:`ncutils.data.load` draws 50 training and 50 test images per class.
SUN397_MIN_PER_CLASS = 100
#: Files listed in a message before the rest are counted ("and 12 more").
SHOWN = 3


class Problem(NamedTuple):
    """What is wrong with one file (or one group of files) of a copy.

    ``text`` is a sentence that names the file; ``missing`` tells a file that is not there (a
    download can add it) from one that is there but damaged (it must be deleted or replaced first).
    """

    path: Path
    text: str
    missing: bool = False

    def __str__(self) -> str:
        return self.text


# --------------------------------------------------------------------------- file-level checks
def _is_nonempty_file(path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0


def _need(path: Path) -> Problem | None:
    """A problem when ``path`` is not a non-empty file."""
    if not path.exists():
        return Problem(path, f"{path} is missing", missing=True)
    if not _is_nonempty_file(path):
        return Problem(path, f"{path} is empty or not a file")
    return None


@functools.lru_cache(maxsize=64)
def _md5_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _md5_matches(path: Path, md5: str) -> bool:
    """Whether file ``path`` has checksum ``md5`` (remembered per path, size and modification time)."""
    st = path.stat()
    return _md5_of(str(path), st.st_size, st.st_mtime_ns) == md5


def _need_md5(path: Path, md5: str) -> Problem | None:
    """A problem when ``path`` is missing or does not match torchvision's checksum ``md5``."""
    problem = _need(path)
    if problem is None and not _md5_matches(path, md5):
        problem = Problem(path, f"{path} does not match torchvision's md5 checksum {md5} (truncated or corrupted)")
    return problem


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _listed(files: list[Path], listing: Path) -> list[Problem]:
    """One problem naming the first few of ``files`` (the images ``listing`` names) that are missing or empty."""
    bad = [f for f in files if not _is_nonempty_file(f)]
    if not bad:
        return []
    shown = ", ".join(str(f) for f in bad[:SHOWN]) + (f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else "")
    return [Problem(bad[0], f"{len(bad)} of the {len(files)} images listed in {listing} are missing or empty: "
                            f"{shown}", missing=not any(f.exists() for f in bad))]


def _checked(checks: Iterable[Problem | None]) -> list[Problem]:
    return [p for p in checks if p is not None]


# --------------------------------------------------------------------------- per-dataset checks
def _cifar(info: DatasetInfo, folder: Path) -> list[Problem]:
    cls = info.tv_class
    files = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
    return _checked(_need_md5(folder / name, md5) for name, md5 in files)


def idx_problems(files: dict[str, Path]) -> list[Problem]:
    """Problems of (Fashion-)MNIST's IDX files ``{stem: path}`` (:func:`ncutils.data.idx.split_stems`), from their
    headers: each file complete, images and labels of each split of the right kinds and numbers."""
    out = []
    for train in (True, False):
        headers = {}
        for stem in idx.split_stems(train):
            if stem not in files:
                continue
            try:
                headers[stem] = idx.idx_header(files[stem])
            except (ValueError, OSError) as err:
                out.append(Problem(files[stem], str(err)))
        if len(headers) == 2:
            image_stem, label_stem = idx.split_stems(train)
            out += [Problem(files[image_stem], text) for text in
                    idx.pair_problems(files[image_stem], headers[image_stem], files[label_stem], headers[label_stem])]
    return out


def _mnist(info: DatasetInfo, folder: Path) -> list[Problem]:
    """torchvision's layout: the four unpacked IDX files in ``folder/raw``."""
    stems = (*idx.split_stems(True), *idx.split_stems(False))
    missing = _checked(_need(folder / "raw" / stem) for stem in stems)
    present = {stem: folder / "raw" / stem for stem in stems if (folder / "raw" / stem).is_file()}
    return missing + idx_problems(present)


_AIRCRAFT_CLASS_FILES = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}


def _split_kwargs(info: DatasetInfo) -> list[dict]:
    return [kwargs for parts in info.splits.values() for kwargs in parts]


def _images_listed_in(listing: Path, image: Callable[[str], Path]) -> list[Problem]:
    """The split file ``listing`` must be there, and ``image(line)`` for each of its lines too."""
    problem = _need(listing)
    return [problem] if problem else _listed([image(line) for line in _lines(listing)], listing)


def _aircraft(info: DatasetInfo, folder: Path) -> list[Problem]:
    data, splits = folder / "data", _split_kwargs(info)
    levels = sorted({kwargs["annotation_level"] for kwargs in splits})
    out = _checked(_need(data / _AIRCRAFT_CLASS_FILES[level]) for level in levels)
    for kwargs in splits:
        out += _images_listed_in(data / f"images_{kwargs['annotation_level']}_{kwargs['split']}.txt",
                                 lambda line: data / "images" / f"{line.split(' ', 1)[0]}.jpg")
    return out


def _dtd(info: DatasetInfo, folder: Path) -> list[Problem]:
    return [problem for kwargs in _split_kwargs(info) for problem in _images_listed_in(
        folder / "labels" / f"{kwargs['split']}{kwargs['partition']}.txt", lambda line: folder / "images" / line)]


def _pets(info: DatasetInfo, folder: Path) -> list[Problem]:
    return [problem for kwargs in _split_kwargs(info) for problem in _images_listed_in(
        folder / "annotations" / f"{kwargs['split']}.txt", lambda line: folder / "images" / f"{line.split()[0]}.jpg")]


def _flowers(info: DatasetInfo, folder: Path) -> list[Problem]:
    cls = info.tv_class
    out = _checked(_need_md5(folder / name, md5) for key, (name, md5) in cls._file_dict.items() if key != "image")
    if out:
        return out
    setid = folder / cls._file_dict["setid"][0]
    ids = scipy.io.loadmat(setid, squeeze_me=True)
    for kwargs in _split_kwargs(info):
        numbers = ids[cls._splits_map[kwargs["split"]]].reshape(-1).tolist()
        out += _listed([folder / "jpg" / f"image_{int(n):05d}.jpg" for n in numbers], setid)
    return out


def _sun397(info: DatasetInfo, folder: Path) -> list[Problem]:
    names = folder / "ClassName.txt"
    problem = _need(names)
    if problem:
        return [problem]
    short = [(f, n) for f in (folder / line.lstrip("/") for line in _lines(names))
             if (n := _sun_images(f)) < SUN397_MIN_PER_CLASS]
    if not short:
        return []
    shown = ", ".join(f"{f} ({n})" for f, n in short[:SHOWN])
    more = f" and {len(short) - SHOWN} more" if len(short) > SHOWN else ""
    return [Problem(short[0][0], f"{len(short)} of the classes listed in {names} have fewer than "
                                 f"{SUN397_MIN_PER_CLASS} non-empty images: {shown}{more}", missing=True)]


def _sun_images(class_folder: Path) -> int:
    """Non-empty ``sun_*.jpg`` files directly in ``class_folder`` (0 when it does not exist)."""
    try:
        with os.scandir(class_folder) as entries:
            return sum(1 for e in entries if e.name.startswith("sun_") and e.name.endswith(".jpg")
                       and e.is_file() and e.stat().st_size > 0)
    except OSError:
        return 0


#: For each dataset of :data:`ncutils.data.DATASETS`, the check of its folder in torchvision's layout.
VERIFIERS: dict[str, Callable[[DatasetInfo, Path], list[Problem]]] = {
    "cifar10": _cifar, "cifar100": _cifar, "aircraft": _aircraft, "dtd": _dtd, "pets": _pets,
    "flowers102": _flowers, "sun397": _sun397, "mnist": _mnist, "fashionmnist": _mnist,
}


# --------------------------------------------------------------------------- copies
@dataclass(frozen=True)
class Copy:
    """One place a dataset can be read from, and what is wrong with it.

    Attributes
    ----------
    folder:
        The folder checked (the dataset's folder under the data root, or a system folder).
    origin:
        Where the copy comes from, in words ("the data root", "Debian's package ...").
    problems:
        What is missing or damaged; empty when the copy is complete.
    fix:
        How to repair this copy, fitting its origin.
    system:
        True for a folder of IDX files read by :class:`ncutils.data.idx.FashionMNISTFolder`, False for
        torchvision's layout under the data root.
    """

    folder: Path
    origin: str
    problems: tuple[Problem, ...]
    fix: str
    system: bool = False

    @property
    def complete(self) -> bool:
        return not self.problems

    @property
    def exists(self) -> bool:
        return self.folder.is_dir()

    @property
    def damaged(self) -> list[Problem]:
        """The problems of files that are there but wrong (a download does not replace them)."""
        return [p for p in self.problems if not p.missing]

    def describe(self) -> str:
        """``folder (origin)`` followed by its first problems, if any."""
        where = f"{self.folder} ({self.origin})"
        if self.complete:
            return where
        if not self.exists:
            return f"{where}: not there"
        inside = f"{self.folder}{os.sep}"  # files are named relative to the folder shown first
        shown = "; ".join(p.text.replace(inside, "") for p in self.problems[:SHOWN])
        more = f" (and {len(self.problems) - SHOWN} more)" if len(self.problems) > SHOWN else ""
        return f"{where}: {shown}{more}"


def root_copy(info: DatasetInfo, root: Path) -> Copy:
    """The copy in torchvision's layout under the data root ``root``, checked by :data:`VERIFIERS`."""
    folder = root / info.folder
    fix = (f"delete {folder} and run: python -m ncutils.data download {info.name} --root {root} "
           "(or put a complete copy there)")
    if not folder.is_dir():
        return Copy(folder, "the data root", (Problem(folder, f"{folder} does not exist", missing=True),), fix)
    return Copy(folder, "the data root", tuple(VERIFIERS[info.name](info, folder)), fix)


def system_copy(info: DatasetInfo) -> Copy | None:
    """Fashion-MNIST's copy outside the data root (:func:`ncutils.data.idx.fashion_mnist_folder`), checked; else None.

    Its origin and fix depend on where it is: the folder ``$NCUTILS_FASHION_MNIST`` names (replace
    a damaged file), or Debian's package (reinstall it).
    """
    if info.name != "fashionmnist":
        return None
    folder = idx.fashion_mnist_folder()
    if os.environ.get(idx.FASHION_MNIST_ENV):
        origin = f"the folder ${idx.FASHION_MNIST_ENV} names"
        fix = (f"replace the files named with complete copies of Fashion-MNIST's IDX files (in {folder}), or "
               f"unset {idx.FASHION_MNIST_ENV}")
    else:
        origin = f"Debian's package {idx.FASHION_MNIST_PACKAGE}"
        fix = f"apt-get install --reinstall {idx.FASHION_MNIST_PACKAGE}"
    if not folder.is_dir():
        install = f"apt-get install {idx.FASHION_MNIST_PACKAGE}" if "Debian" in origin else fix
        return Copy(folder, origin, (Problem(folder, f"{folder} does not exist", missing=True),), install, True)
    files, missing = idx.fashion_mnist_files(folder)
    problems = [Problem(folder / name, f"{folder / name} is missing", missing=True) for name in missing]
    return Copy(folder, origin, tuple(problems + idx_problems(files)), fix, True)


@dataclass(frozen=True)
class Presence:
    """Every copy of a dataset that was checked, in the order they are tried; :attr:`used` is the first complete one."""

    name: str
    title: str
    copies: tuple[Copy, ...]

    @property
    def used(self) -> Copy | None:
        return next((c for c in self.copies if c.complete), None)

    def describe(self) -> str:
        """One line: the copy used and the incomplete copies passed over, or every copy and what it lacks."""
        used = self.used
        others = [c for c in self.copies if c is not used and c.exists]
        if used is not None:
            skipped = "".join(f"; passed over the incomplete copy at {c.describe()}" for c in others)
            return f"{self.title}: using {used.describe()}{skipped}"
        return f"{self.title} has no complete copy: " + "; ".join(c.describe() for c in self.copies)

    def problem_lines(self) -> list[str]:
        """For each copy, a line with what it lacks, followed by an indented line with its fix if the copy exists
        (an absent copy's fix is one of the ways to get the dataset)."""
        lines = []
        for copy in self.copies:
            lines.append(copy.describe())
            if copy.exists and not copy.complete:
                lines.append(f"  fix: {copy.fix}")
        return lines


def locate(info: DatasetInfo, root: Path) -> Presence:
    """The copies of dataset ``info`` (under the data root ``root``, then any system copy), each checked."""
    copies = [root_copy(info, root), system_copy(info)]
    return Presence(info.name, info.title, tuple(c for c in copies if c is not None))
