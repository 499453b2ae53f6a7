"""Corruption is detected, never analysed: HDF5 checksums and complete.json digests on the
trajectory, and one-line errors (no traceback, non-zero exit) for damaged metadata.json,
checkpoint.npz, thermo.csv and complete.json (the one reader: ``superion.files``)."""

from __future__ import annotations

import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest

from superion.errors import SuperionError
from superion.md import MDSettings, run_md
from superion.trajectory import open_trajectory

sys.path.insert(0, os.path.dirname(__file__))
from test_md_resume import EMT  # noqa: E402

SETTINGS = dict(temperature_K=600, steps=60, equilibration_steps=10, ensemble="nvt", timestep_fs=2.0,
                save_every=5, checkpoint_every=10, seed=2)
QUIET = dict(log=lambda *a: None)


@pytest.fixture(scope="module")
def finished(cu_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("done") / "run"
    run_md(cu_file, run, MDSettings(**SETTINGS), calculator=EMT(), **QUIET)
    return run


@pytest.fixture(scope="module")
def interrupted(cu_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("half") / "run"
    with pytest.raises(KeyboardInterrupt):
        run_md(cu_file, run, MDSettings(**SETTINGS), calculator=EMT(fail_after=45), **QUIET)
    return run


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _flip_position_chunk(h5, byte: int = 200) -> None:
    """Overwrite bytes in the middle of the first position chunk (not a truncation)."""
    with h5py.File(h5, "r") as f:
        off = f["particles/all/position/value"].id.get_chunk_info(0).byte_offset
    with open(h5, "r+b") as fh:
        fh.seek(off + byte)
        old = fh.read(4)
        fh.seek(off + byte)
        fh.write(bytes(b ^ 0x5A for b in old))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    return err


def test_finished_run_records_content_digests(finished):
    done = json.loads((finished / "complete.json").read_text())
    assert set(done["trajectory_sha256"]) >= {"particles/all/position/value", "particles/all/box/edges/value"}
    with h5py.File(finished / "trajectory.h5", "r") as f:
        assert f["particles/all/position/value"].fletcher32 and f["particles/all/box/edges/value"].fletcher32
    with open_trajectory(finished) as tr:  # verifies and reads
        assert tr.n_frames == 13


def test_bytes_overwritten_in_trajectory_fail_analysis(finished, tmp_path, capsys):
    from superion.cli import main

    run = _copy(finished, tmp_path)
    _flip_position_chunk(run / "trajectory.h5")
    assert main(["analyze", "diffusion", str(run), "--species", "Cu", "--json", str(tmp_path / "d.json")]) == 2
    err = _one_line(capsys)
    assert "trajectory.h5" in err and "particles/all/position/value is damaged" in err
    assert not (tmp_path / "d.json").exists()


def test_valid_edit_after_the_run_is_a_digest_mismatch(finished, tmp_path):
    run = _copy(finished, tmp_path)
    with h5py.File(run / "trajectory.h5", "r+") as f:  # HDF5 rewrites the checksum: only the digest sees it
        f["particles/all/position/value"][5, 3] = 1e6
    with pytest.raises(SuperionError, match=r"trajectory.h5 changed after the run finished \(dataset "
                                            r"particles/all/position/value: digest differs from .*complete.json\)"):
        open_trajectory(run)


@pytest.mark.parametrize("raw_chunks", [True, False])
def test_checksums_catch_damage_without_complete_json(finished, tmp_path, monkeypatch, raw_chunks):
    import superion.trajectory.h5md as h5md

    h5 = tmp_path / "copy.h5"  # a trajectory moved alone: no complete.json beside it
    shutil.copy(finished / "trajectory.h5", h5)
    _flip_position_chunk(h5)
    if not raw_chunks:
        monkeypatch.setattr(h5md, "_raw_chunks_readable", lambda ds: False)
    with open_trajectory(h5) as tr:
        assert h5md._raw_chunks_readable(tr._pos) == raw_chunks
        with pytest.raises(SuperionError, match="position/value is damaged"):
            list(tr.iter_positions_stored(4))
        with pytest.raises(SuperionError, match="position/value is damaged"):
            tr.positions()
        assert tr.cells().shape == (13, 3, 3)  # the undamaged datasets still read


def test_fletcher32_check_matches_hdf5(finished):
    from superion.trajectory.h5md import fletcher32_ok

    with h5py.File(finished / "trajectory.h5", "r") as f:
        raw = f["particles/all/position/value"].id.read_direct_chunk((0, 0, 0))[1]
    assert fletcher32_ok(raw)
    assert not fletcher32_ok(raw[:10] + bytes([raw[10] ^ 1]) + raw[11:])


@pytest.mark.parametrize("damage", ["truncate", "garble", "empty", "list"])
def test_damaged_metadata_json(finished, cu_file, tmp_path, capsys, damage):
    from superion.cli import main

    run = _copy(finished, tmp_path)
    meta = run / "metadata.json"
    text = meta.read_text()
    meta.write_text({"truncate": text[: len(text) // 2], "garble": text.replace('"', "\x00", 3),
                     "empty": "", "list": "[1, 2]"}[damage])
    with pytest.raises(SuperionError, match="metadata.json (is damaged or not valid JSON|holds a JSON list)"):
        open_trajectory(run)
    argv = ["md", str(cu_file), "--potential", "not-loaded", "--temperature-K", "600", "--steps", "60",
            "--out", str(run)]
    assert main(argv) == 2  # refused by the run-directory decision, before any model loads
    assert "metadata.json" in _one_line(capsys)


@pytest.mark.parametrize("damage", ["empty", "truncate", "bitflip", "not-npz"])
def test_damaged_checkpoint(interrupted, cu_file, tmp_path, damage):
    run = _copy(interrupted, tmp_path)
    ck = run / "checkpoint.npz"
    data = ck.read_bytes()
    mid = len(data) // 2
    ck.write_bytes({"empty": b"", "truncate": data[:mid], "bitflip": data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:],
                    "not-npz": b"hello"}[damage])
    with pytest.raises(SuperionError) as err:
        run_md(cu_file, run, MDSettings(**SETTINGS), calculator=EMT(), **QUIET)
    msg = str(err.value)
    assert "checkpoint.npz" in msg and "\n" not in msg and "delete the checkpoint" in msg


def test_thermo_damage_before_the_checkpoint_is_refused_on_resume(interrupted, cu_file, tmp_path):
    run = _copy(interrupted, tmp_path)
    lines = (run / "thermo.csv").read_text().splitlines(keepends=True)
    lines[2] = "3,\x00garbage\n"  # a row the checkpoint counts
    (run / "thermo.csv").write_text("".join(lines))
    with pytest.raises(SuperionError, match="thermo.csv has fewer complete rows than the checkpoint expects"):
        run_md(cu_file, run, MDSettings(**SETTINGS), calculator=EMT(), **QUIET)


def test_thermo_rows_past_the_checkpoint_are_dropped_on_resume(interrupted, cu_file, finished, tmp_path):
    run = _copy(interrupted, tmp_path)
    with open(run / "thermo.csv", "a") as fh:
        fh.write("55,110.0,produc")  # a row a kill cut short, after the checkpoint
    run_md(cu_file, run, MDSettings(**SETTINGS), calculator=EMT(), **QUIET)
    assert (run / "thermo.csv").read_bytes() == (finished / "thermo.csv").read_bytes()


@pytest.mark.parametrize("damage", ["cut-row", "not-a-number", "no-header"])
def test_read_thermo_damaged(finished, tmp_path, damage):
    from superion.md.storage import read_thermo

    text = (finished / "thermo.csv").read_text()
    p = tmp_path / "thermo.csv"
    p.write_text({"cut-row": text[:-20], "not-a-number": text.replace("production", "production", 1)
                  .replace(",0.0,", ",abc,", 1), "no-header": text.split("\n", 1)[1]}[damage])
    with pytest.raises(SuperionError, match=r"thermo.csv( row \d+ has|: column|: lacks the column| lacks the column)"):
        read_thermo(p)


def test_damaged_complete_json(finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run / "complete.json").write_text('{"status": "compl')
    with pytest.raises(SuperionError, match="complete.json is damaged or not valid JSON.*rerun superion md"):
        open_trajectory(run)


def test_files_reader_messages(tmp_path):
    from superion.files import read_csv, read_json, read_npz

    with pytest.raises(SuperionError, match=r"x.json not found; do this"):
        read_json(tmp_path / "x.json", fix="do this")
    np.savez(tmp_path / "a.npz", b=np.arange(3))
    assert read_npz(tmp_path / "a.npz", fix="f")["b"].tolist() == [0, 1, 2]
    with pytest.raises(SuperionError, match=r"a.npz lacks the array\(s\) c; f"):
        read_npz(tmp_path / "a.npz", fix="f", keys=("c",))
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(SuperionError, match="t.csv row 3 has 1 fields, not 2"):
        read_csv(tmp_path / "t.csv", fix="f")
