"""The Free Spoken Digit Dataset (FSDD), release v1.0.10, for the audio chapter (Chapter 08).

3,000 recordings of the spoken digits 0-9: 6 speakers x 10 digits x 50 takes, 8 kHz, 16-bit mono
WAV, named ``{digit}_{speaker}_{take}.wav`` (Zohar Jackson et al., CC BY-SA 4.0; ``data/fsdd/``
holds the licence and provenance). The dataset's own split: takes 0-4 are the test set, 5-49 training.

**Where the recordings are found**, in this order:

1. ``<root>/fsdd/recordings/``, ``root`` being ``$VQVAE_DATA`` (:func:`vqvae_lib.data.data_root`);
2. the copy kept in the repository, ``data/fsdd/recordings/`` (only when running from a checkout);
3. a download of the tagged release from GitHub into ``<root>/fsdd/``, when the network answers.
   The archive's recordings are checked against :data:`RECORDINGS_SHA256` before they are used.

With none of these, :class:`~vqvae_lib.data.DataUnavailableError` says how to get them. A folder that
is found but empty, incomplete or damaged is a :class:`~vqvae_lib.data.DataCorruptError` naming the
file or folder and the fix, never a reason to look elsewhere.

The waveforms are read with the standard library's ``wave`` module (``torchaudio.load`` needs
TorchCodec) and scaled from 16-bit integers to floats in [-1, 1).
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.request
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import DataCorruptError, DataUnavailableError, data_root, network_available

RELEASE = "v1.0.10"
ARCHIVE_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/{RELEASE}.tar.gz"
# sha256 of the sorted `sha256sum` listing of the 3,000 recordings, as checked in the shell with
#   cd recordings && ls | LC_ALL=C sort | xargs sha256sum | sha256sum
# It fingerprints the files rather than GitHub's archive, whose bytes GitHub does not promise to keep.
RECORDINGS_SHA256 = "1801eae019c063377d98f831d3f93574f259475df7332bb0e3d1b080fb5e6959"
SAMPLE_RATE = 8000
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")  # sorted; a speaker id indexes this
NUM_DIGITS, NUM_TAKES = 10, 50
SPLIT_TAKES = {"test": tuple(range(0, 5)), "train": tuple(range(5, NUM_TAKES)), "all": tuple(range(NUM_TAKES))}
_CHECKOUT = Path(__file__).resolve().parents[2]  # the repository: vqvae_lib/audio/fsdd.py -> ../../
REPOSITORY_COPY = _CHECKOUT / "data" / "fsdd"


def file_name(digit: int, speaker: str, take: int) -> str:
    """``{digit}_{speaker}_{take}.wav``, the dataset's naming."""
    return f"{digit}_{speaker}_{take}.wav"


def recordings_digest(folder: str | Path) -> str:
    """The sha256 of the sorted ``sha256sum`` listing of the ``*.wav`` files in ``folder``."""
    files = sorted(Path(folder).glob("*.wav"), key=lambda f: f.name)
    listing = "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def read_wav(path: str | Path) -> torch.Tensor:
    """One recording as a float32 tensor ``(L,)`` in [-1, 1): the 16-bit samples divided by 32768.

    Raises a ValueError naming the file unless it is an uncompressed 16-bit mono WAV at 8 kHz
    holding all the samples its header promises.
    """
    path = Path(path)
    expected = f"a 16-bit mono {SAMPLE_RATE} Hz WAV file"
    if not path.is_file():
        raise ValueError(f"missing recording {path}: expected {expected} there")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path} is not a readable WAV file ({err!r}); expected {expected}") from None
    if (channels, width, rate) != (1, 2, SAMPLE_RATE):
        raise ValueError(f"{path} has {channels} channel(s), {8 * width}-bit samples at {rate} Hz; expected {expected}")
    if frames == 0 or len(raw) != 2 * frames:
        raise ValueError(f"{path} is truncated or empty: its header promises {frames} samples, "
                         f"it holds {len(raw) // 2}; expected {expected}")
    return torch.from_numpy(np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0)


def _missing_message(folder: Path) -> str:
    return "\n".join([
        f"The Free Spoken Digit Dataset is not in {folder}/recordings, this is not a checkout of the book "
        f"(whose data/fsdd/ holds a copy), and github.com cannot be reached to download release {RELEASE}.",
        "Clone the book's repository (the recordings are in data/fsdd/), or connect to the network, or "
        "point the VQVAE_DATA environment variable at a folder holding fsdd/recordings/*.wav.",
    ])


def _repair_advice(recordings: Path) -> str:
    if recordings == REPOSITORY_COPY / "recordings":
        return f"Restore the book's copy with `git checkout -- data/fsdd/recordings` in {_CHECKOUT}."
    return (f"Delete {recordings} so that the book's copy (data/fsdd/) or a fresh download of release {RELEASE} "
            "is used, or copy that release's recordings into it.")


def _not_empty(recordings: Path) -> Path:
    if not any(recordings.glob("*.wav")):
        count = NUM_DIGITS * len(SPEAKERS) * NUM_TAKES
        raise DataCorruptError(f"{recordings} is empty: expected the {count:,} files {{digit}}_{{speaker}}_{{take}}.wav "
                               f"of FSDD release {RELEASE}.\n{_repair_advice(recordings)}")
    return recordings


def download_fsdd(folder: str | Path, url: str = ARCHIVE_URL, sha256: str = RECORDINGS_SHA256) -> Path:
    """Download the release archive, check its recordings against ``sha256`` and put them in
    ``<folder>/recordings``. Returns that folder. Nothing is left behind when the check fails."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        archive, unpacked = Path(scratch) / "release.tar.gz", Path(scratch) / "recordings"
        unpacked.mkdir()
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                # only <top>/recordings/<name>.wav, written under its bare name (no paths from the archive)
                if member.isfile() and len(parts) == 3 and parts[1] == "recordings" and parts[2].endswith(".wav"):
                    (unpacked / parts[2]).write_bytes(tar.extractfile(member).read())
        digest = recordings_digest(unpacked)
        if digest != sha256:
            raise ValueError(f"the recordings downloaded from {url} do not match release {RELEASE}: "
                             f"checksum {digest}, expected {sha256}. Nothing was kept; try again later or "
                             "use the copy in the book's repository (data/fsdd/).")
        unpacked.replace(folder / "recordings")
    return folder / "recordings"


def find_recordings(root: str | Path | None = None) -> Path:
    """The folder of ``*.wav`` files, found (or downloaded) as the module docstring says."""
    folder = (Path(root) if root is not None else data_root()) / "fsdd"
    if (folder / "recordings").is_dir():
        return _not_empty(folder / "recordings")
    if (_CHECKOUT / "pyproject.toml").is_file() and (REPOSITORY_COPY / "recordings").is_dir():
        return _not_empty(REPOSITORY_COPY / "recordings")
    if network_available("github.com"):
        return download_fsdd(folder)
    raise DataUnavailableError(_missing_message(folder))


@dataclass
class SpokenDigits:
    """Recordings with their labels, in the order digit, speaker, take.

    ``waveforms[i]`` is ``(L_i,)`` float32 in [-1, 1) at 8 kHz (lengths differ); ``digit``,
    ``speaker`` and ``take`` are int64 ``(N,)``; ``speaker`` indexes ``speakers``.
    """

    waveforms: list[torch.Tensor]
    digit: torch.Tensor
    speaker: torch.Tensor
    take: torch.Tensor
    files: list[str]
    speakers: tuple[str, ...] = SPEAKERS
    sample_rate: int = field(default=SAMPLE_RATE)

    def __len__(self) -> int:
        return len(self.waveforms)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.waveforms[i], int(self.digit[i]), int(self.speaker[i])


def load_fsdd(split: str = "train", root: str | Path | None = None, takes=None) -> SpokenDigits:
    """The ``"train"`` (takes 5-49), ``"test"`` (takes 0-4) or ``"all"`` recordings of every speaker
    and digit. ``takes`` keeps only those takes of the split (a smaller set for the fast profile)."""
    if split not in SPLIT_TAKES:
        raise ValueError(f"split must be one of {sorted(SPLIT_TAKES)}, got {split!r}")
    allowed = SPLIT_TAKES[split]
    takes = allowed if takes is None else tuple(int(t) for t in takes)
    if not takes or any(t not in allowed for t in takes):
        raise ValueError(f"takes of the {split} split lie in {allowed[0]}..{allowed[-1]}, got {takes}")
    folder = find_recordings(root)
    rows = [(d, s, t) for d in range(NUM_DIGITS) for s in range(len(SPEAKERS)) for t in takes]
    files = [file_name(d, SPEAKERS[s], t) for d, s, t in rows]
    digit, speaker, take = torch.tensor(rows, dtype=torch.int64).unbind(1)
    try:
        waveforms = [read_wav(folder / f) for f in files]
    except ValueError as err:
        raise DataCorruptError(f"{err}\n{_repair_advice(folder)}") from None
    return SpokenDigits(waveforms, digit, speaker, take, files)


def fix_length(waveforms: list[torch.Tensor], length: int = SAMPLE_RATE) -> torch.Tensor:
    """Stack clips into ``(N, length)``: a shorter clip is padded with silence (zeros) at the end, a
    longer one keeps its middle ``length`` samples (our choice: a word sits mid-clip; 99.3% of the
    clips are under one second, the default). The padding is not speech: :func:`kept_samples` says
    where each clip's recording ends, so that measures can leave the padding out."""
    if length < 1:
        raise ValueError(f"length must be a positive number of samples, got {length}")
    if len(waveforms) == 0:
        raise ValueError("fix_length needs at least one waveform")
    out = waveforms[0].new_zeros(len(waveforms), length)
    for i, x in enumerate(waveforms):
        if x.dim() != 1:
            raise ValueError(f"expected 1-D waveforms (L,), got shape {tuple(x.shape)} at index {i}")
        start = max(0, (len(x) - length) // 2)
        clip = x[start: start + length]
        out[i, : len(clip)] = clip
    return out


def kept_samples(waveforms: list[torch.Tensor], length: int = SAMPLE_RATE) -> torch.Tensor:
    """How many samples of each clip :func:`fix_length` keeps, ``min(L_i, length)``: int64 ``(N,)``.
    Row ``i`` of ``fix_length(waveforms, length)`` is the recording up to there and padding after."""
    if length < 1:
        raise ValueError(f"length must be a positive number of samples, got {length}")
    return torch.tensor([min(len(x), length) for x in waveforms], dtype=torch.long)
