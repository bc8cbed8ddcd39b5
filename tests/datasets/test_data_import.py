"""Importing another household's dataset (appliance/datasets/): a good set in the audiofolder layout
is kept whole under <data>/datasets/NAME and read by the accuracy bench's loader; every bad input is
refused with the file and the reason, nothing half-imported, and each refusal has its positive
control: the same set without that one defect imports."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from appliance.audio.pcm import wav_bytes
from appliance.datasets.checks import DatasetRefused, Limits
from appliance.datasets.importer import Datasets
from appliance.datasets import reader
from appliance.process import control
from bench.common import ROOT
from conftest import toml, word_error_rate
from dataset_kit import SENTENCES, clips, reseal, write_set, zip_of  # noqa: F401  (clips: the fixture)

def store(tmp_path: Path, **limits) -> Datasets:
    return Datasets(tmp_path / "data" / "datasets", lambda: Limits(**limits))


def left_behind(ds: Datasets) -> list[str]:
    return sorted(p.name for p in ds.root.iterdir()) if ds.root.exists() else []


def refused(ds: Datasets, source: Path, name: str = "bad") -> DatasetRefused:
    with pytest.raises(DatasetRefused) as caught:
        ds.import_path(source, name)
    assert left_behind(ds) == [], "a refused import left something behind"
    return caught.value


# --- a good set ----------------------------------------------------------------------------------

def test_a_good_folder_and_zip_import_whole_and_apart(tmp_path, clips):
    good = write_set(tmp_path / "stick" / "neighbours", clips)
    ds = store(tmp_path)
    facts = ds.import_path(good)
    assert facts["name"] == "neighbours" and facts["rows"] == 3 and facts["audio_s"] > 3
    kept = ds.root / "neighbours"
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file()) == [
        ".imported.json", "SHA256SUMS", "audio/000.wav", "audio/001.wav", "audio/002.wav", "metadata.csv"]
    assert (kept / "audio/002.wav").read_bytes() == clips[2]
    assert not any(p.stat().st_mode & 0o111 for p in kept.rglob("*") if p.is_file())      # nothing executable
    assert not (tmp_path / "data" / "utterances").exists()                                # apart from the household's
    # the same set zipped (as a folder inside the zip, as file managers make it)
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as zf:
        for p in sorted(good.rglob("*")):
            zf.write(p, f"neighbours/{p.relative_to(good).as_posix()}")
    assert ds.import_path(tmp_path / "set.zip", "zipped")["rows"] == 3
    assert [d["name"] for d in ds.list()] == ["neighbours", "zipped"]
    with pytest.raises(DatasetRefused, match="imported already"):
        ds.import_path(good)
    ds.remove("zipped")
    assert [d["name"] for d in ds.list()] == ["neighbours"]


def test_the_bench_reads_an_imported_set_as_a_held_out_family(tmp_path, clips, hearth):
    from bench import accuracy
    ds = store(tmp_path)
    ds.import_path(write_set(tmp_path / "stick" / "neighbours", clips))
    (ds.root / "not-imported").mkdir()              # a folder without the importer's record is no set
    found = reader.sets(ds.root)
    assert found == [ds.root / "neighbours"]
    items = accuracy.imported(found)
    assert [it.text for it in items] == SENTENCES
    assert {it.family for it in items} == {"set:neighbours"} and {it.condition for it in items} == {"recorded"}
    # the 22.05 kHz stereo file is converted to the engines' 16 kHz mono, its length kept
    seconds = len(items[2].clip.pcm) / 32000
    assert abs(seconds - len(clips[2][44:]) / (22050 * 4)) < 0.01
    # scored as the bench scores part 1: the box's engine on each clip, words wrong per set
    rows = [accuracy.row(it, "tiny.en", "hearth", hearth.service.engine.transcribe(it.clip.pcm), 0.0) for it in items]
    assert all(word_error_rate(r["ref"], r["text"]) <= 0.5 for r in rows), rows
    figure = accuracy.wer(rows, family="set:neighbours")
    assert figure is not None and figure <= 0.34
    table = "\n".join(accuracy.imported_section(rows, ["tiny.en"]))
    assert "| neighbours | 3 |" in table


# --- bad input, each with its positive control ---------------------------------------------------

def test_dotdot_and_absolute_paths_are_refused(tmp_path, clips):
    good = write_set(tmp_path / "good", clips)
    ds = store(tmp_path)
    for evil in ("../evil.wav", "audio/../../evil.wav", "/etc/evil.wav"):
        extra = [(zipfile.ZipInfo(evil), clips[0])]
        err = refused(ds, zip_of(good, tmp_path / "evil.zip", extra))
        assert err.file == evil and "inside the set" in err.reason, err
    # a ../ in the metadata's file_name or the manifest, in a folder on a stick
    bad = shutil.copytree(good, tmp_path / "bad-meta")
    (bad / "metadata.csv").write_text((bad / "metadata.csv").read_text().replace("audio/001.wav", "../001.wav"))
    reseal(bad)
    assert refused(ds, bad).file == "../001.wav"
    assert not (tmp_path / "evil.wav").exists() and not (tmp_path / "data" / "evil.wav").exists()
    assert ds.import_path(zip_of(good, tmp_path / "good.zip"), "control")["rows"] == 3


def test_symlinks_are_refused_never_followed(tmp_path, clips):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(clips[0])
    ds = store(tmp_path)
    bad = write_set(tmp_path / "bad", clips)
    (bad / "audio" / "001.wav").unlink()
    (bad / "audio" / "001.wav").symlink_to(secret)
    err = refused(ds, bad)
    assert err.file == "audio/001.wav" and "symbolic link" in err.reason
    # a symlinked folder, and a zip entry that is a link (as `zip --symlinks` stores one)
    linked = write_set(tmp_path / "linked", clips)
    (linked / "more").symlink_to(tmp_path / "bad" / "audio")
    assert "symbolic link" in refused(ds, linked).reason
    link = zipfile.ZipInfo("audio/003.wav")
    link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    err = refused(ds, zip_of(write_set(tmp_path / "z", clips), tmp_path / "link.zip", [(link, b"/etc/passwd")]))
    assert err.file == "audio/003.wav" and "symbolic link" in err.reason
    assert ds.import_path(write_set(tmp_path / "good", clips), "control")["rows"] == 3


def test_a_10_gb_file_is_refused_before_it_is_read(tmp_path, clips):
    ds = store(tmp_path)
    bad = write_set(tmp_path / "bad", clips)
    huge = bad / "audio" / "001.wav"
    with open(huge, "r+b") as fh:
        fh.truncate(10 * 2**30)                  # sparse: 10 GB as the file system says, nothing on disk
    t0 = time.perf_counter()
    err = refused(ds, bad)
    assert err.file == "audio/001.wav" and "limit for one file" in err.reason and err.code == "too_large"
    assert time.perf_counter() - t0 < 5, "the 10 GB file was read"
    # a zip entry over the cap, as its header says it, then with a header that lies
    liar = write_set(tmp_path / "liar", clips)
    zpath = zip_of(liar, tmp_path / "liar.zip", [(zipfile.ZipInfo("audio/big.wav"), b"\0" * (3 * 2**20))])
    tight = Datasets(ds.root, lambda: Limits(file_bytes=2**20))
    err = refused(tight, zpath)
    assert err.file == "audio/big.wav" and err.reason.startswith("3145728 bytes, over") and err.code == "too_large"
    blob = bytearray(zpath.read_bytes())
    real = (3 * 2**20).to_bytes(4, "little")
    assert blob.count(real) >= 2                 # file_size in the local header and the central directory
    zpath.write_bytes(bytes(blob).replace(real, (1000).to_bytes(4, "little")))
    # the header now says 1000 bytes: zipfile inflates no more than that, and the CRC then fails
    err = refused(tight, zpath)
    assert err.file == "audio/big.wav" and "cannot be read whole" in err.reason, err
    # the whole set is capped too ([privacy] import_max_mb)
    small = Datasets(ds.root, lambda: Limits(total_bytes=len(clips[0]) + len(clips[1])))
    assert "import_max_mb" in refused(small, write_set(tmp_path / "three", clips)).reason
    assert ds.import_path(write_set(tmp_path / "good", clips), "control")["rows"] == 3


def test_a_wav_that_is_not_audio_is_refused(tmp_path, clips):
    ds = store(tmp_path)
    for k, (body, why) in enumerate([(b"#!/bin/sh\nrm -rf /\n" * 50, "not a PCM WAV"),
                                     (clips[1][:44] + clips[1][44:400], "the file holds"),
                                     (wav_bytes(b"", 16000), "holds no audio"),
                                     (wav_bytes(b"\0" * 3000, 16000, width=1, channels=1), "16-bit")]):
        bad = write_set(tmp_path / f"bad{k}", [clips[0], body, clips[2]])
        err = refused(ds, bad)
        assert err.file == "audio/001.wav" and why in err.reason and err.code == "bad_audio", err
    bad = write_set(tmp_path / "script", clips)
    (bad / "run.sh").write_text("echo hi\n")
    reseal(bad)
    assert refused(ds, bad).file == "run.sh"
    assert ds.import_path(write_set(tmp_path / "good", clips), "control")["rows"] == 3


def test_a_csv_of_100000_rows_is_refused(tmp_path, clips):
    ds = store(tmp_path)
    rows = [{"file_name": f"audio/{k:03d}.wav", "transcript": SENTENCES[k % 3]} for k in range(100_000)]
    err = refused(ds, write_set(tmp_path / "bad", clips, rows))
    assert err.file == "metadata.csv" and "more than 50000 rows" in err.reason
    rows = [{"file_name": f"audio/{k:03d}.wav", "transcript": SENTENCES[k]} for k in range(3)]
    assert ds.import_path(write_set(tmp_path / "good", clips, rows), "control")["rows"] == 3


@pytest.mark.parametrize("cell", ["=cmd|' /C calc'!A0", "+SUM(A1)", "@HYPERLINK(\"http://x\")", "-2+3+cmd|'/C calc'!A0"])
def test_formula_like_cells_are_refused(tmp_path, clips, cell):
    ds = store(tmp_path)
    rows = [{"file_name": f"audio/{k:03d}.wav", "transcript": SENTENCES[k], "device_type": "satellite"} for k in range(3)]
    rows[1]["device_type"] = cell
    err = refused(ds, write_set(tmp_path / "bad", clips, rows))
    assert err.file == "metadata.csv" and "line 3, column device_type" in err.reason and "formula" in err.reason
    rows[1]["device_type"] = "satellite"
    assert ds.import_path(write_set(tmp_path / "good", clips, rows), "control")["rows"] == 3


def test_a_sha256_that_does_not_match_is_refused(tmp_path, clips):
    ds = store(tmp_path)
    bad = write_set(tmp_path / "bad", clips)
    audio = bytearray((bad / "audio" / "002.wav").read_bytes())
    audio[-1] ^= 1                                   # one bit of the audio changed after the manifest was made
    (bad / "audio" / "002.wav").write_bytes(bytes(audio))
    err = refused(ds, bad)
    assert err.file == "audio/002.wav" and "does not match SHA256SUMS" in err.reason and err.code == "bad_checksum"
    unlisted = write_set(tmp_path / "unlisted", clips)
    (unlisted / "README.md").write_text("hello\n")
    assert "not listed in SHA256SUMS" in refused(ds, unlisted).reason
    assert "SHA256SUMS" in refused(ds, write_set(tmp_path / "nosums", clips, sums=False)).file
    assert ds.import_path(write_set(tmp_path / "good", clips), "control")["rows"] == 3


def test_staging_left_by_a_killed_import_is_cleared(tmp_path, clips):
    ds = store(tmp_path)
    (ds.root / ".staging-dead").mkdir(parents=True)
    (ds.root / ".staging-dead" / "x.wav").write_bytes(clips[0])
    ds.clean_staging()
    assert left_behind(ds) == []


# --- the command --------------------------------------------------------------------------------

def hearth_cmd(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "appliance.commands.cli", "--data", str(data), "data", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_command_imports_alone_and_through_the_running_service(tmp_path, clips, hearth):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hearth.toml").write_text(toml({"privacy": {"import_max_mb": 1}}))
    bad = write_set(tmp_path / "bad", clips)
    (bad / "metadata.csv").write_text((bad / "metadata.csv").read_text().replace("Set a timer", "=cmd"))
    reseal(bad)
    out = hearth_cmd(data, "import", str(bad))
    assert out.returncode == 1 and out.stderr.startswith("Error: metadata.csv: line 3, column transcript"), out.stderr
    assert "nothing was imported" in out.stderr
    out = hearth_cmd(data, "import", str(write_set(tmp_path / "neighbours", clips)))
    assert out.returncode == 0 and "imported neighbours: 3 utterances" in out.stdout, out.stderr
    assert "neighbours: 3 utterances" in hearth_cmd(data, "list").stdout
    # with a service running, the service imports it (one writer): its control channel answers
    shared = hearth.settings.data_dir
    out = hearth_cmd(shared, "import", str(tmp_path / "neighbours"), "--name", "via-service")
    assert out.returncode == 0, out.stderr
    assert [d["name"] for d in control.ask(shared, "data.list")["datasets"]] == ["via-service"]
    assert hearth_cmd(shared, "remove", "via-service").returncode == 0
    assert hearth.service.datasets.list() == []
