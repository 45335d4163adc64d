"""One number format per quantity, for every table, caption and sentence of the book.

A chapter never writes a format specification of its own (a test reads the notebooks for them): it formats a
number by what the number is, so the same quantity reads the same on every page.

=====================  ==========================================  ======================
quantity               format                                      examples
=====================  ==========================================  ======================
:func:`accuracy`       a percentage, two decimals (as the paper)   ``84.00``, ``100.00``
:func:`share`          a share of parameters, two decimals and %   ``8.27%``, ``0.05%``
:func:`collapse`       NC1, CDNV, NC2 and the other collapse       ``0.0131``, ``1.74``,
                       measures: three significant digits          ``1090``, ``2.53×10⁻³¹``
:func:`correlation`    ρ, τ: two decimals                          ``0.70``, ``-0.62``
:func:`score`          a transferability score: four significant   ``-1.336``, ``1090``
                       digits
:func:`factor`         a ratio of two like quantities: three       ``0.557``, ``12.3``
                       significant digits
:func:`difference`     a relative difference: two significant      ``5.9×10⁻¹⁶``
                       digits, in powers of ten
:func:`seconds`        a duration: three significant digits, s     ``0.0204 s``, ``1.70 s``
:func:`setting`        a setting's value (σ, learning rate, ε)     ``0.05``, ``8``
=====================  ==========================================  ======================

A number quoted from the paper keeps the decimals the paper printed: :func:`printed` (``printed(2)(0.08)``).

Every function takes a number (or ``None`` / NaN, shown as :data:`MISSING`) and returns a string, so a pandas
``Styler.format`` takes them as they are: ``df.style.format({"NC1": formats.collapse})``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

__all__ = ["MISSING", "accuracy", "collapse", "correlation", "difference", "factor", "interval", "printed", "score",
           "seconds", "setting", "share", "significant"]

#: What a missing value reads as.
MISSING = "–"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _missing(value) -> bool:
    return value is None or (isinstance(value, Real) and math.isnan(value))


def _fixed(value, decimals: int, suffix: str = "") -> str:
    return MISSING if _missing(value) else f"{float(value):.{decimals}f}{suffix}"


def _power_of_ten(value: float, digits: int) -> str:
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def significant(value, digits: int = 3, *, small: float = 1e-3, large: float = 1e5) -> str:
    """``value`` to ``digits`` significant digits in plain notation (no trailing exponent), or as a power of
    ten (``2.53×10⁻³¹``) when it is below ``small`` or from ``large`` on in size; exactly 0 reads ``0``."""
    if _missing(value):
        return MISSING
    value = float(value)
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return "∞" if value > 0 else "-∞"
    if abs(value) < small or abs(value) >= large:
        return _power_of_ten(value, digits)
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    text = f"{value:.{decimals}f}"
    if len(text.lstrip("-").replace(".", "").lstrip("0")) > digits and decimals > 0:  # 9.995 -> 10.00: one less
        text = f"{value:.{decimals - 1}f}"
    return text


def accuracy(value) -> str:
    """An accuracy in percent, two decimals, as the paper prints its tables: ``84.00``."""
    return _fixed(value, 2)


def share(value) -> str:
    """A share of the network's parameters, in percent with the sign: ``8.27%``."""
    return _fixed(value, 2, "%")


def collapse(value) -> str:
    """A collapse measure (NC1, CDNV, NC2, ...), three significant digits: ``0.0131``, ``1.74``, ``2.53×10⁻³¹``."""
    return significant(value, 3)


def correlation(value) -> str:
    """A correlation coefficient (Spearman's ρ, Kendall's τ), two decimals: ``0.70``."""
    return _fixed(value, 2)


def score(value) -> str:
    """A transferability score (each on its own scale), four significant digits: ``-1.336``, ``1090``."""
    return significant(value, 4)


def factor(value) -> str:
    """A ratio of two like quantities (a speed-up, NC1's factor per layer), three significant digits."""
    return significant(value, 3, large=1e6)


def difference(value) -> str:
    """A relative difference of two computations of one number, two significant digits in powers of ten:
    ``5.9×10⁻¹⁶``; exactly 0 reads ``0``."""
    if _missing(value):
        return MISSING
    return "0" if float(value) == 0 else _power_of_ten(float(value), 2)


def seconds(value) -> str:
    """A duration, three significant digits and the unit: ``0.0204 s``."""
    return MISSING if _missing(value) else f"{significant(value, 3, small=1e-4)} s"


def setting(value) -> str:
    """A setting's value as the profile writes it (a noise level, a learning rate, a radius): ``0.05``, ``8``."""
    return MISSING if _missing(value) else f"{float(value):g}"


def interval(low, high, fmt=accuracy) -> str:
    """A 95% interval ``[low, high]`` in the format of its quantity (default :func:`accuracy`)."""
    return f"[{fmt(low)}, {fmt(high)}]"


def printed(decimals: int) -> Callable[[object], str]:
    """The format of a number quoted from the paper: ``decimals`` decimals, as the paper printed it (its Table 1
    prints NC1 with three, Tables 2-7 with two). Returns the formatter: ``printed(2)(0.08) == "0.08"``."""
    return lambda value: _fixed(value, decimals)
