"""Glyphs: a 100-class image classification task rendered offline from the fonts matplotlib ships.

A stand-in for Cifar-100 as the *source* task of the ``cpu`` profile (paper Section 3.1): many
classes, real shapes with within-class variation, generated deterministically in a few seconds
with no download. The downstream tasks of that profile are handwritten digits, so the classes
contain **no digits**.

Classes (:func:`glyph_classes`, 100 in all)
    26 Latin capitals, 14 Latin small letters, 10 Greek capitals, 11 Greek small letters,
    8 Cyrillic capitals and 31 symbols. Letters that the image transforms below make
    indistinguishable from another class are left out: case pairs that differ only in size
    (``o/O``, ``c/C``, ``s/S``, ``u/U``, ``v/V``, ``w/W``, ``x/X``, ``z/Z``, ``k/K``, ``p/P``),
    bars (``l``, ``|``, Greek ``Ι``), Greek and Cyrillic letters that look Latin (``Α, Β, ... ο, ν,
    κ, χ, ι, υ``; ``α ~ ɑ``, ``γ ~ y``, ``θ ~ Θ``, ``π ~ Π``, ``τ ~ T``, ``φ ~ Φ``, ``ψ ~ Ψ``,
    ``Л ~ Λ``, ``Щ ~ Ш``), and one glyph of every pair that a horizontal flip (augmentation level 3
    of Fig. 4) maps onto each other (``b/d``, ``E/∃``, ``N/И``, ``R/Я``, ``</>``, ``(/)``, ...).

Fonts (:func:`font_names`)
    Only the TrueType files inside matplotlib's own data folder, so that the images depend on the
    matplotlib version and nothing else: DejaVu Sans, Sans Mono and Serif (regular, bold,
    oblique/italic, bold oblique), STIX General (same four) and the Computer Modern fonts ``cmr10``,
    ``cmb10``, ``cmss10``, ``cmti10``, ``cmtt10`` (Latin letters, Greek capitals) and ``cmmi10``
    (Latin letters, Greek small letters). A class uses every font that has its glyph (6 to 22).

Images (:func:`glyphs`)
    Every (class, font) glyph is rasterised once by FreeType (:class:`matplotlib.ft2font.FT2Font`),
    cropped to its ink and centred on a 64-px canvas with its longer side at 72% of the canvas, in
    three stroke weights (as drawn, dilated by 1 and by 2 master pixels). Each image then draws,
    batch-wise in torch: a font and a stroke weight; a random affine map (rotation within
    +-15 degrees, scale 0.8-1.1, aspect 0.85-1.15, horizontal shear +-0.3, shift +-12% of the
    side), applied with :func:`torch.nn.functional.grid_sample` at ``ceil(64 / image_size)`` x the
    output resolution and box-filtered down (anti-aliased); a random foreground and background colour with enough
    contrast (by default the glyph is the brighter, as in the MNIST digits downstream); and mild
    Gaussian pixel noise. All draws of a class come from a generator seeded by
    ``(seed, split, class)``, so a class's images do not depend on which other classes are
    requested, and ``"train"``/``"test"``/``"val"`` draw from independent streams.

Speed: the first call renders the masters (about 2,000 glyphs, ~1 s); 100 classes x 60 images
at 16 px then take well under a second.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

__all__ = ["EXCLUDED", "GLYPH_CLASSES", "font_names", "glyph_classes", "glyphs", "meta_split", "render_masters"]

# --------------------------------------------------------------------------- classes
_LATIN_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LATIN_LOWER = "abefghijmnqrty"
_GREEK_UPPER = "ΓΔΘΛΞΠΣΦΨΩ"
_GREEK_LOWER = "βδεζηλμξρσω"
_CYRILLIC = "ЖДЧШЫЮБЭ"
_SYMBOLS = "&@#$%?!*+×÷=≠±∞∇∫√§€£¥©♠♣♥♦⊕⊗∀∅"

#: The 100 classes, in label order.
GLYPH_CLASSES: tuple[str, ...] = tuple(
    _LATIN_UPPER + _LATIN_LOWER + _GREEK_UPPER + _GREEK_LOWER + _CYRILLIC + _SYMBOLS
)

#: Characters deliberately left out (see the module docstring); digits are never classes.
EXCLUDED: str = "0123456789" + "ocsuvwxzkpld|" + "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαγθικνοπτυφχψ" + "ЛЩИЯ" + "∃∂∩∪≡≈†‡¶®★ℵ<>()[]{}/\\"

_SPLIT_IDS = {"train": 0, "test": 1, "val": 2}

# --------------------------------------------------------------------------- fonts
#: Unicode fonts among matplotlib's own files (file stem -> short name).
_UNICODE_FONTS: dict[str, str] = {
    "DejaVuSans": "DejaVu Sans", "DejaVuSans-Bold": "DejaVu Sans Bold",
    "DejaVuSans-Oblique": "DejaVu Sans Oblique", "DejaVuSans-BoldOblique": "DejaVu Sans Bold Oblique",
    "DejaVuSansMono": "DejaVu Sans Mono", "DejaVuSansMono-Bold": "DejaVu Sans Mono Bold",
    "DejaVuSansMono-Oblique": "DejaVu Sans Mono Oblique",
    "DejaVuSansMono-BoldOblique": "DejaVu Sans Mono Bold Oblique",
    "DejaVuSerif": "DejaVu Serif", "DejaVuSerif-Bold": "DejaVu Serif Bold",
    "DejaVuSerif-Italic": "DejaVu Serif Italic", "DejaVuSerif-BoldItalic": "DejaVu Serif Bold Italic",
    "STIXGeneral": "STIX", "STIXGeneralBol": "STIX Bold", "STIXGeneralItalic": "STIX Italic",
    "STIXGeneralBolIta": "STIX Bold Italic",
}
#: Computer Modern (BaKoMa) fonts: their character codes are TeX positions, not Unicode, so each
#: has an explicit table. In cmr10/cmb10/cmss10/cmti10/cmtt10 (OT1) and cmmi10 (OML) the Latin
#: letters sit at their ASCII codes; the Greek codes are those matplotlib's mathtext uses.
_CM_GREEK_UPPER = dict(zip("ΓΔΘΛΞΠΣΦΨΩ", (161, 162, 163, 164, 165, 166, 167, 169, 170, 173)))
_CM_GREEK_LOWER = dict(zip("βδεζηλμξρσω", (175, 177, 34, 179, 180, 184, 185, 187, 189, 190, 33)))  # ε: \varepsilon
_CM_LATIN = {c: ord(c) for c in _LATIN_UPPER + _LATIN_LOWER}
_CM_FONTS: dict[str, tuple[str, dict[str, int]]] = {
    "cmr10": ("CM Roman", {**_CM_LATIN, **_CM_GREEK_UPPER}),
    "cmb10": ("CM Bold", {**_CM_LATIN, **_CM_GREEK_UPPER}),
    "cmss10": ("CM Sans", {**_CM_LATIN, **_CM_GREEK_UPPER}),
    "cmti10": ("CM Text Italic", {**_CM_LATIN, **_CM_GREEK_UPPER}),
    "cmtt10": ("CM Typewriter", {**_CM_LATIN, **_CM_GREEK_UPPER}),
    "cmmi10": ("CM Math Italic", {**_CM_LATIN, **_CM_GREEK_LOWER}),
}

_MASTER = 64          # side of the master canvas (px)
_FILL = 0.72          # longer side of the ink box / canvas side
_RENDER_PT = 96       # FreeType size at 72 dpi (px per em) before cropping and rescaling


def _font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def font_names() -> list[str]:
    """Short names of all fonts the glyphs are drawn from, in a fixed order (22 fonts)."""
    return list(_UNICODE_FONTS.values()) + [name for name, _ in _CM_FONTS.values()]


def glyph_classes() -> list[str]:
    """The 100 class characters, in label order (label ``k`` is ``glyph_classes()[k]``)."""
    return list(GLYPH_CLASSES)


def meta_split(seed: int = 0, sizes: Sequence[int] = (64, 16, 20)) -> dict[str, list[str]]:
    """Split the classes into meta-train / meta-val / meta-test, like CIFAR-FS's 64/16/20.

    A seeded permutation of :data:`GLYPH_CLASSES` (``seed=0`` is the book's split). Pass a part
    to :func:`glyphs` as ``classes=`` to get its images (labelled ``0..len(part)-1``).

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}`` of disjoint class characters.
    """
    if sum(sizes) != len(GLYPH_CLASSES) or len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"sizes must be three positive numbers adding up to {len(GLYPH_CLASSES)}; got {sizes}.")
    perm = np.random.default_rng([int(seed), 4242]).permutation(len(GLYPH_CLASSES))
    chars = [GLYPH_CLASSES[i] for i in perm]
    a, b, _ = sizes
    return {"train": chars[:a], "val": chars[a : a + b], "test": chars[a + b :]}


# --------------------------------------------------------------------------- masters
@functools.cache
def _font(path: str):
    from matplotlib.ft2font import FT2Font

    font = FT2Font(path)
    return font, frozenset(font.get_charmap())


def _rasterise(path: str, code: int) -> np.ndarray | None:
    """FreeType bitmap of one character (float32 in [0, 1], cropped to its ink), or ``None``."""
    font, codes = _font(path)
    if code not in codes:
        return None
    font.set_size(_RENDER_PT, 72)
    font.set_text(chr(code))
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(img.max(1) > 0.05), np.flatnonzero(img.max(0) > 0.05)
    if rows.size < 2 or cols.size < 1:
        return None
    return img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _centre(ink: np.ndarray) -> torch.Tensor:
    """Rescale cropped ink so that its longer side is ``_FILL`` of the canvas; centre it."""
    h, w = ink.shape
    s = _FILL * _MASTER / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    t = torch.from_numpy(ink)[None, None]
    t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    canvas = torch.zeros(_MASTER, _MASTER)
    top, left = (_MASTER - nh) // 2, (_MASTER - nw) // 2
    canvas[top : top + nh, left : left + nw] = t[0, 0].clamp(0, 1)
    return canvas


@functools.lru_cache(maxsize=1)
def render_masters() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render every (class, font) glyph once; cached for the process.

    Returns
    -------
    masters : (P, 3, 64, 64) float tensor
        Glyph ``p`` in three stroke weights (as drawn, dilated by 1 px, dilated by 2 px).
    class_of : (P,) int64 tensor
        Index into :data:`GLYPH_CLASSES` of each glyph.
    font_of : (P,) int64 tensor
        Index into :func:`font_names` of each glyph.
    """
    d = _font_dir()
    fonts: list[tuple[str, dict[str, int] | None]] = [(stem, None) for stem in _UNICODE_FONTS]
    fonts += [(stem, table) for stem, (_, table) in _CM_FONTS.items()]
    out, cls, fnt = [], [], []
    for k, ch in enumerate(GLYPH_CLASSES):
        for f, (stem, table) in enumerate(fonts):
            if table is not None and ch not in table:
                continue
            code = ord(ch) if table is None else table[ch]
            ink = _rasterise(os.path.join(d, stem + ".ttf"), code)
            if ink is None:
                continue
            out.append(_centre(ink))
            cls.append(k)
            fnt.append(f)
    m = torch.stack(out)[:, None]                       # (P, 1, M, M)
    dil1 = F.max_pool2d(m, 3, stride=1, padding=1)      # stroke + 1 px each side
    dil2 = F.max_pool2d(m, 5, stride=1, padding=2)      # stroke + 2 px each side
    masters = torch.cat([m, dil1, dil2], 1).contiguous()
    return masters, torch.tensor(cls), torch.tensor(fnt)


# --------------------------------------------------------------------------- sampling
def _class_generator(seed: int, split: str, char: str) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), _SPLIT_IDS[split], ord(char)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]) >> 1)


def _draw(n: int, g: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _class_params(n: int, glyph_ids: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
    """All random draws for ``n`` images of one class, from that class's generator."""
    p = {
        "glyph": glyph_ids[torch.randint(len(glyph_ids), (n,), generator=g)],
        "stroke": torch.multinomial(torch.tensor([0.45, 0.35, 0.20]), n, replacement=True, generator=g),
        "angle": _draw(n, g, -15.0, 15.0) * math.pi / 180,
        "scale": _draw(n, g, 0.80, 1.10),
        "aspect": torch.exp(_draw(n, g, math.log(0.85), math.log(1.15))),
        "shear": _draw(n, g, -0.30, 0.30),
        "shift": _draw(2 * n, g, -0.12, 0.12).reshape(n, 2),
        "colours": torch.rand(n, 2, 3, generator=g),
        "noise_std": _draw(n, g, 0.0, 0.04),
        "noise_seed": torch.randint(0, 2**31 - 1, (1,), generator=g),
    }
    return p


def _inverse_affine(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """``theta`` for ``affine_grid``: output coordinates -> master coordinates, (N, 2, 3)."""
    c, s = torch.cos(p["angle"]), torch.sin(p["angle"])
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    sx, sy = p["scale"] * p["aspect"].sqrt(), p["scale"] / p["aspect"].sqrt()
    scale = torch.diag_embed(torch.stack([sx, sy], -1))
    shear = torch.eye(2).repeat(len(sx), 1, 1)
    shear[:, 0, 1] = p["shear"]
    forward = rot @ shear @ scale                      # glyph -> image
    inv = torch.linalg.inv(forward)
    t = -(inv @ p["shift"][:, :, None])                # image point x maps back to inv (x - shift)
    return torch.cat([inv, t], 2)


def _warp(masters: torch.Tensor, glyph: torch.Tensor, stroke: torch.Tensor, theta: torch.Tensor,
          image_size: int, chunk: int = 1024) -> torch.Tensor:
    """Sample the posed glyphs at ``ss`` x the output size and box-filter down, in chunks."""
    ss = max(1, math.ceil(_MASTER / image_size))
    big = image_size * ss
    lin = (torch.arange(big, dtype=torch.float32) * 2 + 1) / big - 1    # pixel centres, align_corners=False
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    base = torch.stack([xx, yy, torch.ones_like(xx)], -1).reshape(1, big * big, 3)
    out = []
    for i in range(0, len(glyph), chunk):
        sl = slice(i, i + chunk)
        src = masters[glyph[sl], stroke[sl]][:, None]                  # (n, 1, M, M)
        grid = torch.matmul(base, theta[sl].transpose(1, 2)).reshape(-1, big, big, 2)
        a = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out.append(F.avg_pool2d(a, ss) if ss > 1 else a)
    return torch.cat(out).clamp_(0, 1)


def _colours(raw: torch.Tensor, style: str = "random") -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background colours with enough contrast (as :func:`ncutils.data.colorize`).

    ``style``: ``"random"`` (either may be the brighter), ``"light_on_dark"`` (the same colours,
    swapped where needed so that the glyph is brighter than its background, like MNIST), or
    ``"white_on_black"``.
    """
    if style == "white_on_black":
        return torch.ones(len(raw), 3), torch.zeros(len(raw), 3)
    fg, bg = raw[:, 0].clone(), raw[:, 1].clone()
    close = (fg - bg).abs().mean(1) < 0.3
    fg[close] = 1.0 - bg[close]
    lum = torch.tensor([0.299, 0.587, 0.114])
    dim = ((fg - bg) @ lum).abs() < 0.15                # same brightness: push the foreground away
    fg[dim] = torch.where((bg[dim] @ lum)[:, None] > 0.5, fg[dim] * 0.4, 0.6 + 0.4 * fg[dim])
    if style == "light_on_dark":
        swap = (fg @ lum) < (bg @ lum)
        fg[swap], bg[swap] = bg[swap].clone(), fg[swap].clone()
    elif style != "random":
        raise ValueError(f"unknown colour style {style!r}; use 'random', 'light_on_dark' or 'white_on_black'.")
    return fg, bg


def glyphs(
    split: str = "train",
    *,
    classes: Sequence[str] | Sequence[int] | None = None,
    per_class: int = 50,
    image_size: int = 16,
    seed: int = 0,
    channels: int = 3,
    colours: str = "light_on_dark",
) -> TensorDataset:
    """Images of glyph classes drawn in random fonts, poses, stroke weights and colours.

    Parameters
    ----------
    split : {"train", "test", "val"}
        Independent random streams: the same ``seed`` gives disjoint, reproducible sets.
    classes : sequence of characters or of indices into :func:`glyph_classes`, optional
        Which classes (default all 100), labelled ``0..len(classes)-1`` in the given order. A
        class's images do not depend on the other classes requested (e.g. :func:`meta_split`).
    per_class : int
        Images per class; classes are balanced.
    image_size : int
        Side of the square images in pixels (16, 20, 24 and 28 are sensible).
    seed : int
        Seed of all random draws (non-negative).
    channels : {3, 1}
        RGB, or the luminance of the RGB image.
    colours : {"light_on_dark", "random", "white_on_black"}
        Random foreground and background colours with the glyph always the brighter (default;
        like the MNIST digits downstream), the same without that constraint (either may be the
        brighter: a much harder task, ~2x the epochs to reach the terminal phase), or white glyphs
        on black (easiest; colour augmentations then have little to act on).

    Returns
    -------
    TensorDataset
        ``tensors[0]``: float32 images in [0, 1] of shape (N, channels, image_size, image_size);
        ``tensors[1]``: int64 labels, grouped by class. Attributes ``classes`` (the characters),
        ``fonts`` (the font name of every image) and ``font_names``.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(_SPLIT_IDS)}.")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if per_class < 1 or image_size < 4:
        raise ValueError(f"per_class must be >= 1 and image_size >= 4; got {per_class}, {image_size}.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    chars = _resolve_classes(classes)
    masters, class_of, font_of = render_masters()

    params = []
    for ch in chars:
        ids = torch.nonzero(class_of == GLYPH_CLASSES.index(ch)).flatten()
        params.append(_class_params(per_class, ids, _class_generator(seed, split, ch)))
    p = {k: torch.cat([q[k] for q in params]) for k in params[0] if k != "noise_seed"}

    alpha = _warp(masters, p["glyph"], p["stroke"], _inverse_affine(p), image_size)  # (N, 1, H, W)

    fg, bg = _colours(p["colours"], colours)
    x = bg[:, :, None, None] + (fg - bg)[:, :, None, None] * alpha
    noise = torch.cat([
        torch.randn(per_class, 3, image_size, image_size,
                    generator=torch.Generator().manual_seed(int(q["noise_seed"])))
        for q in params
    ])
    x = (x + p["noise_std"][:, None, None, None] * noise).clamp_(0, 1)
    if channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    y = torch.arange(len(chars)).repeat_interleave(per_class)
    ds = TensorDataset(x.contiguous(), y)
    ds.classes = list(chars)
    names = font_names()
    ds.font_names = names
    ds.fonts = [names[i] for i in font_of[p["glyph"]].tolist()]
    return ds


def _resolve_classes(classes: Sequence[str] | Sequence[int] | None) -> list[str]:
    if classes is None:
        return list(GLYPH_CLASSES)
    out = []
    for c in classes:
        if isinstance(c, int | np.integer) and not isinstance(c, bool):
            if not 0 <= int(c) < len(GLYPH_CLASSES):
                raise ValueError(f"class index {c} out of range 0..{len(GLYPH_CLASSES) - 1}.")
            out.append(GLYPH_CLASSES[int(c)])
        elif isinstance(c, str) and c in GLYPH_CLASSES:
            out.append(c)
        else:
            raise ValueError(f"{c!r} is not a glyph class; see glyph_classes().")
    if not out or len(set(out)) != len(out):
        raise ValueError("classes must be a non-empty sequence without repeats.")
    return out
