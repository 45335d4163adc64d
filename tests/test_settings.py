"""Typed settings: every chapter's settings declared once, profiles and parameter files checked against them."""

import dataclasses
import typing
from pathlib import Path

import pytest

from ncutils.book import grids, settings
from ncutils.book.settings import SettingsError

ROOT = Path(__file__).resolve().parents[1]

#: Each bad parameter file of the issue that asked for typed settings, and what its message must say.
BAD_FILES = [
    ("probe_epochs: -3\n", "probe_epochs: -3 is not allowed; probe_epochs takes integers >= 1"),
    ("probe_epochs: 0\n", "probe_epochs: 0 is not allowed; probe_epochs takes integers >= 1"),
    ("probe_epochs: 2.5\n", "probe_epochs: 2.5 is not allowed; probe_epochs is an integer"),
    ("probe_epochs: '2'\n", "probe_epochs: '2' is not allowed; probe_epochs is an integer"),
    ("probe_epochs: fifty\n", "probe_epochs: 'fifty' is not allowed; probe_epochs is an integer"),
    ("probe_epochs: null\n", "probe_epochs: null is not allowed; probe_epochs is an integer"),
    ("pt_seeds: 3\n", "pt_seeds: 3 is not allowed; pt_seeds is a list of integers"),
    ("ft_sizes: [-2, 4]\n", "ft_sizes: [-2, 4] is not allowed; ft_sizes takes integers >= 1"),
    ("fs_shots: []\n", "fs_shots: [] is not allowed; fs_shots takes a non-empty list"),
    ("source_recipe: {epochs: -1}\n", "source_recipe: {'epochs': -1} is not allowed; source_recipe takes epochs: "
                                      "an integer >= 1"),
    ("probe_epoch: 10\n", "'probe_epoch' is not a setting of any chapter (did you mean 'probe_epochs'?)"),
    ("profile: laptop\n", "profile: 'laptop' is not a profile; use one of smoke, cpu, paper"),
    ("- probe_epochs\n", "a parameter file is a mapping of setting names to values"),
]


@pytest.mark.parametrize("text, message", BAD_FILES, ids=[t.split(":")[0].strip("- \n") for t, _ in BAD_FILES])
def test_a_bad_parameter_file_is_one_line_naming_the_file_key_value_and_rule(tmp_path, text, message):
    f = tmp_path / "mine.yaml"
    f.write_text(text)
    with pytest.raises(SettingsError) as err:
        settings.load(str(f), ROOT)
    assert str(err.value).startswith(f"{f}: ") and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_named_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=r"no such file .*/tmp.*nope\.yaml \(a parameter file's path is relative "
                                            r"to the current folder"):
        settings.load("nope.yaml", ROOT)
    with pytest.raises(SettingsError, match="--profile laptop: no such profile; use one of smoke, cpu, paper"):
        settings.load("laptop", ROOT)


def test_a_parameter_file_that_names_a_profile_starts_from_that_profiles_values(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("profile: smoke\nft_epochs: 2\n")
    loaded = settings.load(str(f), ROOT)
    smoke = settings.load("smoke", ROOT)
    assert loaded.profile == "smoke" and loaded.changes == {"ft_epochs": 2}
    assert loaded.values == {**smoke.values, "ft_epochs": 2}
    s = settings.chapter_settings(5, loaded.values)
    assert s.ft_datasets == ["synthetic-b"] and s.ft_epochs == 2  # the smoke profile's data, one change
    grids.grid(5, s)  # plans: the smoke profile's datasets exist in the smoke profile


def test_values_are_conformed_and_every_chapter_reads_one_declaration_of_a_shared_setting():
    s = settings.resolve(5, "cpu", {"ft_lr": {"resnet": 1, "vit": 0.01}}, root=ROOT)
    assert s.ft_lr == {"resnet": 1.0, "vit": 0.01} and isinstance(s.ft_lr["resnet"], float)
    declared = {n: settings.declared(c) for n, c in settings.CHAPTERS.items()}
    for name in ("probe_epochs", "seed", "source_recipe", "population_seeds"):
        owners = {id(fields[name]) for fields in declared.values() if name in fields}
        classes = {c for c in settings.CHAPTERS.values() if name in settings.declared(c)}
        assert len({next(k for k in c.__mro__ if name in getattr(k, "__annotations__", {})) for c in classes}) == 1
        assert owners
    assert {n for n, c in settings.CHAPTERS.items() if "probe_epochs" in settings.declared(c)} == {3, 4, 6}


def test_every_setting_is_typed_documented_and_its_default_allowed():
    for cls in (*settings.CHAPTERS.values(), settings.Run):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.name in hints and f.metadata.get("doc"), f"{cls.__name__}.{f.name}"
        assert settings.checked(cls, settings.as_dict(cls()), "defaults") == settings.as_dict(cls())


def test_a_chapter_rejects_a_change_it_does_not_declare_and_a_bad_runner_value():
    with pytest.raises(SettingsError, match=r"'ft_epochs' is not a setting of Pretraining"):
        settings.resolve(3, "cpu", {"ft_epochs": 2}, root=ROOT)
    from ncutils.book.chapter import Chapter

    with pytest.raises(SettingsError, match=r"runner: dry_run: 'yes' is not allowed"):
        Chapter(1, "smoke", {}, {"dry_run": "yes"})
    with pytest.raises(SettingsError, match=r"nc_classes: 1 is not allowed"):
        Chapter(1, "smoke", {"nc_classes": 1})


def test_the_runner_stops_a_bad_file_before_any_compute(tmp_path):
    import subprocess
    import sys

    f = tmp_path / "bad.yaml"
    f.write_text("probe_epochs: -3\n")
    out = subprocess.run([sys.executable, "-m", "ncutils.book", "--profile", str(f), "--store", str(tmp_path / "s")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"{f}: probe_epochs: -3 is not allowed; probe_epochs takes integers >= 1 " \
                                 "(linear-probe epochs on frozen features)."
    assert not (tmp_path / "s").exists() and not (ROOT / "_build" / "bad").exists()
