"""The result store: damaged or unreadable records never stop a run, an unusable folder is one clear error,
files follow the umask, a result's record and weights become visible together, quarantines never collide.

(tests/test_units.py covers an altered checksum, invalid JSON, ``--fresh`` and two processes writing one store.)
"""

import json
import os
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from ncutils.book.engine import store as store_module
from ncutils.book.engine.compute import Context, compute
from ncutils.book.engine.store import Store, StoreError, atomic_write
from ncutils.book.engine.units import unit

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _unit(seed: int = 0):
    return unit("nc_streaming", classes=3, dim=4, per_class=5, sigma=0.5, batch_size=4, seed=seed)


def _weights(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3, 4), value), "b": torch.arange(3.0)}


def _write(store: Store, u, value: float = 1.0, *, weights: bool = True) -> dict:
    with store.lock(u):
        return store.write(u, {"nc1": value}, provenance={"seconds": 0.0},
                           state_dict=_weights(value) if weights else None)


def _damaged(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.damaged-*"))


def _weight_file(store: Store, u) -> Path:
    return store.path(u).parent / store.read(u)["weights"]["file"]


# --------------------------------------------------------------------------- damaged and unreadable records
def _edit_record(edit):
    def damage(store: Store, u) -> None:
        path = store.path(u)
        path.write_bytes(edit(path.read_bytes()))
    return damage


def _edit_json(edit):
    def change(raw: bytes) -> bytes:
        record = json.loads(raw)
        edit(record)
        return json.dumps(record).encode()
    return _edit_record(change)


def _folder_in_its_place(store: Store, u) -> None:
    store.path(u).unlink()
    (store.path(u) / "inside").mkdir(parents=True)


def _weights_removed(store: Store, u) -> None:
    _weight_file(store, u).unlink()


def _weights_altered(store: Store, u) -> None:
    path = _weight_file(store, u)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGES = {
    "not UTF-8": (_edit_record(lambda raw: raw.replace(b'"nc1"', b'"nc1\xff"', 1)), "not UTF-8"),
    "truncated": (_edit_record(lambda raw: raw[: len(raw) // 2]), "not valid JSON.*truncated"),
    "empty": (_edit_record(lambda raw: b""), "not valid JSON"),
    "not a record": (_edit_record(lambda raw: b"[1, 2]"), "not a unit record"),
    "another unit": (_edit_json(lambda r: r.update(key="nc_streaming-0000000000000000")), "holds unit"),
    "provenance": (_edit_json(lambda r: r["provenance"].update(finished_at="yesterday")), "provenance"),
    "folder in its place": (_folder_in_its_place, "cannot be read"),
    "weights missing": (_weights_removed, r"weight file .*\.pt is missing"),
    "weights altered": (_weights_altered, r"weight file .*\.pt does not match its checksum"),
    "weights outside the unit": (_edit_json(lambda r: r["weights"].update(file="../other.pt")),
                                 "names no weight file of this unit"),
    "weights without a checksum": (_edit_json(lambda r: r["weights"].pop("sha256")), "does not match"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_record_is_set_aside_with_a_warning_naming_it_and_counts_as_missing(damage, tmp_path):
    store = Store(tmp_path)
    u = _unit()
    _write(store, u)
    apply, reason = DAMAGES[damage]
    apply(store, u)
    with pytest.warns(UserWarning, match=reason) as caught:
        assert store.get(u) is None
    assert str(store.path(u)) in str(caught[0].message)
    assert not store.path(u).exists()
    assert any(p.name.startswith(store.path(u).name + ".damaged-") for p in _damaged(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.get(u) is None  # set aside once: no second warning
        _write(store, u, 2.0)
        assert store.get(u) == {"nc1": 2.0}
        assert store.load_weights(u)["w"][0, 0].item() == 2.0


def test_a_record_that_is_not_utf8_is_recomputed(tmp_path):
    store = Store(tmp_path)
    u = _unit()
    good = compute(u, Context(store))
    path = store.path(u)
    path.write_bytes(path.read_bytes().replace(b'"nc1"', b'"nc1\xe9"', 1))
    with pytest.warns(UserWarning, match=f"{path.name}.*not UTF-8"):
        assert compute(u, Context(Store(tmp_path))) == good
    assert Store(tmp_path).get(u) == good
    assert list(Store(tmp_path).records()) and len(_damaged(tmp_path)) == 1


def test_a_record_this_user_may_not_read_is_set_aside(tmp_path, monkeypatch):
    store = Store(tmp_path)
    u = _unit()
    _write(store, u)
    read_bytes = Path.read_bytes

    def denied(self):
        if self == store.path(u):
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.warns(UserWarning, match="cannot be read .Permission denied"):
        assert store.get(u) is None
    monkeypatch.undo()
    assert not store.path(u).exists() and len(_damaged(tmp_path)) == 2  # the record and its weights


@pytest.mark.skipif(AS_ROOT or not hasattr(os, "geteuid"), reason="root reads every file")
def test_a_record_without_read_permission_is_set_aside(tmp_path):
    store = Store(tmp_path)
    u = _unit()
    _write(store, u, weights=False)
    store.path(u).chmod(0)
    with pytest.warns(UserWarning, match="cannot be read"):
        assert store.get(u) is None
    assert len(_damaged(tmp_path)) == 1


def test_a_record_that_cannot_be_set_aside_is_left_in_place_with_a_warning(tmp_path, monkeypatch):
    store = Store(tmp_path)
    u = _unit()
    _write(store, u)
    store.path(u).write_bytes(b"\xff")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(store_module.os, "replace", refuse)
    with pytest.warns(UserWarning, match=f"{store.path(u)}: it is not UTF-8.*could not be set aside"):
        assert store.get(u) is None
    assert store.path(u).read_bytes() == b"\xff" and not _damaged(tmp_path)


def test_a_damaged_record_is_left_to_the_process_computing_its_unit(tmp_path):
    u = _unit()
    writer, reader = Store(tmp_path), Store(tmp_path)
    _write(writer, u)
    writer.path(u).write_text("{")
    with writer.lock(u), pytest.warns(UserWarning, match="another process is computing this unit"):
        assert reader.get(u) is None
    assert writer.path(u).read_text() == "{" and not _damaged(tmp_path)


def test_records_skips_unreadable_files(tmp_path):
    store = Store(tmp_path)
    _write(store, _unit(0))
    _write(store, _unit(1))
    store.path(_unit(1)).write_bytes(b"\xff\xfe")
    (tmp_path / "nc_streaming" / "folder.json").mkdir()
    assert [r["key"] for r in store.records()] == [_unit(0).key]


# --------------------------------------------------------------------------- unique quarantine names
def test_two_quarantines_in_one_second_keep_both_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module.time, "strftime", lambda fmt: "20240101-000000")
    store = Store(tmp_path)
    u = _unit()
    for text in ("{first", "{second"):
        _write(store, u, weights=False)
        store.path(u).write_text(text)
        with pytest.warns(UserWarning, match="set aside as"):
            assert store.get(u) is None
    copies = _damaged(tmp_path)
    assert len(copies) == 2 and sorted(p.read_text() for p in copies) == ["{first", "{second"]


# --------------------------------------------------------------------------- an unusable folder
def test_a_store_that_is_a_file_is_one_clear_error(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{}")
    with pytest.raises(StoreError, match=f"{path} is a file, not a folder: pass a folder with --store"):
        Store(path)
    with pytest.raises(StoreError, match=f"{path / 'store'} cannot be created: {path} is a file"):
        Store(path / "store")
    assert issubclass(StoreError, ValueError) and "StoreError" in store_module.__all__


def test_a_store_this_user_may_not_write_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    with pytest.raises(StoreError, match=f"{tmp_path} is not writable by this user: ask its owner"):
        Store(tmp_path)
    with pytest.raises(StoreError, match=f"{tmp_path / 'new'} cannot be created: {tmp_path} is not writable"):
        Store(tmp_path / "new")


@pytest.mark.skipif(AS_ROOT or not hasattr(os, "geteuid"), reason="root writes every folder")
def test_a_read_only_folder_is_one_clear_error(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="not writable"):
            Store(tmp_path)
    finally:
        tmp_path.chmod(0o755)


def test_a_store_that_is_a_folder_or_can_be_created_is_accepted(tmp_path):
    Store(tmp_path)
    Store(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()  # created on first write, not before


def test_a_failed_write_is_one_clear_error(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "nc_streaming").write_text("in the way")
    with pytest.raises(StoreError, match=f"cannot write unit {_unit().key} into the store {tmp_path}"):
        _write(store, _unit())


# --------------------------------------------------------------------------- permissions follow the umask
@pytest.fixture(params=[0o002, 0o022, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_records_weights_and_locks_follow_the_umask(tmp_path, umask):
    store = Store(tmp_path)
    u = _unit()
    _write(store, u)
    expected = 0o666 & ~umask
    files = [store.path(u), _weight_file(store, u), store.path(u, ".lock")]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: oct(expected) for p in files}
    atomic_write(tmp_path / "chapter.json", "{}")
    assert (tmp_path / "chapter.json").stat().st_mode & 0o777 == expected


# --------------------------------------------------------------------------- a record and its weights together
def test_weights_are_named_by_their_checksum_and_the_previous_ones_removed_after_the_record(tmp_path):
    store = Store(tmp_path)
    u = _unit()
    _write(store, u, 1.0)
    first = _weight_file(store, u)
    _write(store, u, 2.0)
    second = _weight_file(store, u)
    assert first != second and second.name.startswith(u.key + ".") and not first.exists()
    assert [p.name for p in store.path(u).parent.glob("*.pt")] == [second.name]
    assert store.load_weights(u)["w"][0, 0].item() == 2.0


def _legacy_record(store: Store, u) -> None:
    """Rewrite ``u``'s record as stores before content-named weights held it: weights in ``<key>.pt``."""
    old = _weight_file(store, u)
    old.rename(store.path(u, ".pt"))
    record = json.loads(store.path(u).read_text())
    record["weights"]["file"] = store.path(u, ".pt").name
    store.path(u).write_text(json.dumps(record, indent=1))


def test_records_of_earlier_stores_load_unchanged_and_are_replaced_cleanly(tmp_path):
    store = Store(tmp_path)
    u = _unit()
    _write(store, u, 1.0)
    _legacy_record(store, u)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.get(u) == {"nc1": 1.0}
        assert store.load_weights(u)["w"][0, 0].item() == 1.0
        _write(store, u, 2.0)  # as --fresh does
    assert not store.path(u, ".pt").exists() and store.load_weights(u)["w"][0, 0].item() == 2.0


@pytest.mark.parametrize("layout", ["content-named", "earlier"])
def test_a_reader_whose_record_is_replaced_while_it_reads_takes_the_new_one(layout, tmp_path, monkeypatch):
    u = _unit()
    writer, reader = Store(tmp_path), Store(tmp_path)
    _write(writer, u, 1.0)
    if layout == "earlier":
        _legacy_record(writer, u)
    raw = Store._raw

    def raced(self, unit):
        data = raw(self, unit)
        if self is reader and not raced.done:  # a writer commits between reading the record and its weights
            raced.done = True
            _write(writer, u, 2.0)
        return data

    raced.done = False
    monkeypatch.setattr(Store, "_raw", raced)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reader.load_weights(u)["w"][0, 0].item() == 2.0
    assert raced.done and reader.get(u) == {"nc1": 2.0} and not _damaged(tmp_path)


def test_a_reader_never_sees_a_result_torn_by_a_writer(tmp_path):
    u = _unit()
    writer, reader = Store(tmp_path), Store(tmp_path)
    _write(writer, u, 0.0)
    done = threading.Event()

    def rewrite():
        try:
            for i in range(1, 40):
                _write(writer, u, float(i))
                time.sleep(0.002)  # let the reader in: a writer commits once per unit computed
        finally:
            done.set()

    seen = []
    thread = threading.Thread(target=rewrite)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        thread.start()
        while not done.is_set():
            record, state = reader.read(u), reader.load_weights(u)
            seen.append((record["result"]["nc1"], state["w"][0, 0].item()))
        thread.join()
    assert seen and all(r <= w for r, w in seen)  # the weights read after a record are never older than it
    assert not _damaged(tmp_path) and len(list(tmp_path.glob("nc_streaming/*.pt"))) == 1
