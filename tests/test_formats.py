"""One number format per quantity (ncutils.book.pages.formats), and the check that chapters use nothing else."""

import math

import pandas as pd
import pytest
from test_pages import FORMAT_SPEC

from ncutils.book.pages import formats


@pytest.mark.parametrize("fmt, value, text", [
    (formats.accuracy, 84, "84.00"), (formats.accuracy, 99.996, "100.00"), (formats.accuracy, math.nan, "–"),
    (formats.share, 8.2712, "8.27%"), (formats.share, 0.05, "0.05%"),
    (formats.collapse, 0.013149, "0.0131"), (formats.collapse, 1.7382, "1.74"), (formats.collapse, 1090.222, "1090"),
    (formats.collapse, 2.528e-31, "2.53×10⁻³¹"), (formats.collapse, 0.0, "0"), (formats.collapse, 9.9951, "10.0"),
    (formats.collapse, 123456.0, "1.23×10⁵"), (formats.collapse, None, "–"),
    (formats.correlation, 0.6983, "0.70"), (formats.correlation, -0.615, "-0.61"),
    (formats.score, -1.33612, "-1.336"), (formats.score, 64.3301, "64.33"),
    (formats.factor, 0.55749, "0.557"), (formats.factor, 12.34, "12.3"),
    (formats.difference, 5.93e-16, "5.9×10⁻¹⁶"), (formats.difference, 0.0, "0"),
    (formats.seconds, 0.020412, "0.0204 s"), (formats.setting, 0.05, "0.05"), (formats.setting, 8.0, "8"),
    (formats.printed(2), 0.3, "0.30"), (formats.printed(3), 0.771, "0.771"),
])
def test_each_quantity_has_one_format(fmt, value, text):
    assert fmt(value) == text


def test_a_styler_takes_the_formats_as_they_are():
    df = pd.DataFrame({"accuracy (%)": [84.0, math.nan], "NC1": [2.528e-31, 0.5]})
    html = df.style.format({"accuracy (%)": formats.accuracy, "NC1": formats.collapse}).to_html()
    assert "84.00" in html and "2.53×10⁻³¹" in html and "0.500" in html and "e-31" not in html
    assert formats.interval(1.234, 5.678) == "[1.23, 5.68]"


@pytest.mark.parametrize("line, is_format", [
    ('df.style.format("{:.2f}")', True), ('f"ρ = {rho:.2f}"', True), ('f"{v:g}"', True), ("x.round(3)", True),
    ("{glue:text}`ch1_tau:.2f`", True), ('style.format(x, na_rep="–")', True), ('f"{a:>10.3e}"', True),
    ('df.style.format(formats.accuracy)', False), ('f"{formats.collapse(v)} and {n} samples"', False),
    ("{glue:md}`ch1_tau`", False), ('f"{name!r}: {count}"', False),
])
def test_the_notebook_check_finds_format_specifications(line, is_format):
    assert bool(FORMAT_SPEC.search(line)) is is_format
