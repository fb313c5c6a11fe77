import io
import tarfile
import wave

import numpy as np
import pytest
import torch

from vqvae_lib import data
from vqvae_lib.audio import fsdd


def write_wav(path, samples, rate=8000, channels=1, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype=f"<i{width}").tobytes())


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.setattr(fsdd, "network_available", lambda *a, **k: False)


def test_the_repository_copy_is_the_verified_release():
    folder = fsdd.REPOSITORY_COPY / "recordings"
    expected = {fsdd.file_name(d, s, t) for d in range(10) for s in fsdd.SPEAKERS for t in range(50)}
    assert {p.name for p in folder.glob("*.wav")} == expected
    assert fsdd.recordings_digest(folder) == fsdd.RECORDINGS_SHA256
    assert "CC BY-SA 4.0" in (fsdd.REPOSITORY_COPY / "LICENSE.md").read_text()


def test_the_test_split_is_takes_0_to_4_with_labels_from_the_file_names(tmp_path, no_network):
    test = fsdd.load_fsdd("test", root=tmp_path)  # nothing in tmp_path: the repository copy
    assert len(test) == 300 and set(test.take.tolist()) == set(range(5))
    assert torch.bincount(test.speaker).tolist() == [50] * 6 and torch.bincount(test.digit).tolist() == [30] * 10
    for i in (0, 137, 299):
        digit, speaker, take = test.files[i][:-4].split("_")
        assert (int(digit), test.speakers[test.speaker[i]], int(take)) == (test.digit[i], speaker, test.take[i])
    x = test.waveforms[0]
    assert x.dtype == torch.float32 and x.dim() == 1 and 0 < x.abs().max() <= 1
    assert torch.allclose(x * 32768, (x * 32768).round())  # exactly the 16-bit samples


def test_train_takes_are_5_to_49_and_a_subset_of_takes_can_be_chosen(tmp_path, no_network):
    train = fsdd.load_fsdd("train", root=tmp_path, takes=[5, 6])
    assert len(train) == 120 and set(train.take.tolist()) == {5, 6}
    with pytest.raises(ValueError, match=r"lie in 5\.\.49"):
        fsdd.load_fsdd("train", root=tmp_path, takes=[4])
    with pytest.raises(ValueError, match="split must be"):
        fsdd.load_fsdd("validation", root=tmp_path)


def test_vqvae_data_is_searched_first_and_a_missing_file_is_named(tmp_path, no_network):
    recordings = tmp_path / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    write_wav(recordings / "0_george_0.wav", np.arange(400))
    with pytest.raises(data.DataCorruptError, match=r"missing recording .*0_george_1\.wav") as err:
        fsdd.load_fsdd("test", root=tmp_path)
    assert f"Delete {recordings} so that the book's copy (data/fsdd/) or a fresh download" in str(err.value)
    assert fsdd.find_recordings(tmp_path) == recordings


@pytest.mark.parametrize("where", ["vqvae_data", "repository_copy"])
def test_an_empty_recordings_folder_is_named_with_the_fix(tmp_path, monkeypatch, no_network, where):
    monkeypatch.setenv("VQVAE_DATA", str(tmp_path / "data"))
    if where == "vqvae_data":
        empty = tmp_path / "data" / "fsdd" / "recordings"
        fix = f"Delete {empty} so that"
    else:
        monkeypatch.setattr(fsdd, "REPOSITORY_COPY", tmp_path / "checkout" / "data" / "fsdd")
        empty = fsdd.REPOSITORY_COPY / "recordings"
        fix = "git checkout -- data/fsdd/recordings"
    empty.mkdir(parents=True)
    with pytest.raises(data.DataCorruptError) as err:
        fsdd.load_fsdd("test")
    assert f"{empty} is empty: expected the 3,000 files" in str(err.value) and fix in str(err.value)


@pytest.mark.parametrize("kind, message", [
    ("rate", r"0_george_0\.wav has 1 channel\(s\), 16-bit samples at 16000 Hz"),
    ("stereo", r"0_george_0\.wav has 2 channel\(s\)"),
    ("8bit", r"0_george_0\.wav has 1 channel\(s\), 8-bit"),
    ("garbage", r"0_george_0\.wav is not a readable WAV file"),
    ("truncated", r"0_george_0\.wav is truncated"),
])
def test_a_bad_recording_is_named_with_what_was_expected(tmp_path, kind, message):
    path = tmp_path / "0_george_0.wav"
    if kind == "rate":
        write_wav(path, np.zeros(400), rate=16000)
    elif kind == "stereo":
        write_wav(path, np.zeros(800), channels=2)
    elif kind == "8bit":
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000), w.writeframes(bytes(400))
    elif kind == "garbage":
        path.write_bytes(b"not a wav file at all")
    else:
        write_wav(path, np.zeros(400))
        path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=message + ".*expected a 16-bit mono 8000 Hz WAV"):
        fsdd.read_wav(path)


def test_no_copy_and_no_network_fails_naming_the_fix(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(fsdd, "REPOSITORY_COPY", tmp_path / "no-checkout")
    with pytest.raises(data.DataUnavailableError, match="VQVAE_DATA") as err:
        fsdd.load_fsdd("test", root=tmp_path)
    assert "github.com" in str(err.value) and "data/fsdd" in str(err.value)


def _release_archive(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"free-spoken-digit-dataset-1.0.10/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_download_keeps_only_recordings_that_match_the_checksum(tmp_path):
    wav = tmp_path / "one.wav"
    write_wav(wav, np.arange(300))
    archive = tmp_path / "release.tar.gz"
    _release_archive(archive, {"recordings/0_george_0.wav": wav.read_bytes(), "README.md": b"readme",
                               "recordings/../../escape.wav": b"x"})
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "0_george_0.wav").write_bytes(wav.read_bytes())
    good = fsdd.recordings_digest(reference)

    target = tmp_path / "root" / "fsdd"
    with pytest.raises(ValueError, match="do not match release v1.0.10"):
        fsdd.download_fsdd(target, url=archive.as_uri(), sha256="0" * 64)
    assert list(target.iterdir()) == []  # nothing kept
    folder = fsdd.download_fsdd(target, url=archive.as_uri(), sha256=good)
    assert sorted(p.name for p in folder.iterdir()) == ["0_george_0.wav"]
    assert torch.equal(fsdd.read_wav(folder / "0_george_0.wav") * 32768, torch.arange(300.0))
    assert not (tmp_path / "escape.wav").exists()


def test_fix_length_pads_short_clips_at_the_end_and_keeps_the_middle_of_long_ones():
    short, long = torch.ones(3), torch.arange(10.0)
    out = fsdd.fix_length([short, long], length=4)
    assert out.shape == (2, 4)
    assert out[0].tolist() == [1, 1, 1, 0] and out[1].tolist() == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="1-D waveforms"):
        fsdd.fix_length([torch.zeros(2, 5)])


def test_kept_samples_says_where_each_fixed_length_row_stops_being_the_recording():
    short, long = torch.ones(3), torch.arange(10.0)
    kept = fsdd.kept_samples([short, long], length=4)
    assert kept.tolist() == [3, 4] and kept.dtype == torch.int64
    rows = fsdd.fix_length([short, long], length=4)
    assert (rows[0, kept[0]:] == 0).all() and (rows[0, : kept[0]] == 1).all()
    with pytest.raises(ValueError, match="positive number of samples"):
        fsdd.kept_samples([short], length=0)
