"""A bundle, verified before anything is written.

`rauc info --keyring=<the box's keyring> --output-format=json FILE` checks the signature (for a
plain bundle over every byte, for a verity bundle over the manifest and the hash tree) and reads
the manifest. On top of that this checks what `rauc install` would find out only later: the
bundle's `compatible` is this box's (`hearth-x86_64` never installs on `hearth-aarch64`), and each
image fits the slot it would be written to. Every refusal is a BadBundle with its own code:

    not_a_bundle       not a RAUC bundle at all
    truncated          a bundle cut short (an incomplete copy or download)
    unsigned           no signature
    unknown_key        signed by a key this box does not trust
    bad_signature      the signature does not match the content (tampered or damaged)
    other_architecture built for another kind of box (hearth-<arch>)
    wrong_compatible   built for another product
    slot_too_small     an image is larger than the slot it would go to
    bundle_in_use      another program holds the file open (RAUC checks a bundle only when it alone has it)
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appliance.update.errors import BadBundle, UpdateError
from appliance.update.system import RaucSystem

SQUASHFS_MAGIC = b"hsqs"
PRODUCT = "hearth-"


@dataclass(frozen=True)
class Image:
    slot_class: str          # rootfs
    filename: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Bundle:
    path: Path
    size: int                # bytes of the bundle file
    compatible: str
    version: str
    description: str
    build: str
    images: tuple[Image, ...]
    signer: str              # the signing certificate's subject, as RAUC names it

    def to_dict(self) -> dict:
        return {"file": str(self.path), "size": self.size, "compatible": self.compatible, "version": self.version,
                "description": self.description, "build": self.build, "signer": self.signer,
                "images": [vars(i) for i in self.images]}


def inspect(system: RaucSystem, path: Path) -> Bundle:
    """The bundle's manifest, after RAUC verified its signature against the box's keyring."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise UpdateError(f"no such file: {path}", "not_found") from None
    except OSError as exc:
        raise UpdateError(f"cannot read {path}: {exc.strerror}", "unreadable") from None
    name = path.name
    if magic != SQUASHFS_MAGIC:
        raise BadBundle(f"{name} is not a RAUC update bundle (.raucb)", "not_a_bundle")
    try:
        done = system.run("info", f"--keyring={system.keyring}", "--output-format=json", str(path),
                          timeout=max(60.0, size / 20e6))
    except subprocess.TimeoutExpired:
        raise UpdateError(f"RAUC took too long to read {name}", "rauc_timeout") from None
    if done.returncode != 0:
        raise _refusal(name, done.stderr, system.keyring)
    try:
        doc = json.loads(done.stdout)
        images = tuple(
            Image(slot_class, str(info.get("filename") or ""), int(info.get("size") or 0), str(info.get("checksum") or ""))
            for entry in doc.get("images") or [] for slot_class, info in entry.items()
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise UpdateError(f"RAUC's description of {name} could not be read ({exc})", "rauc_output") from None
    signer = ""
    for line in done.stderr.splitlines():
        if "Verified" in line and " by '" in line:
            signer = line.split(" by '", 1)[1].rstrip("'")
    return Bundle(path=path, size=size, compatible=str(doc.get("compatible") or ""),
                  version=str(doc.get("version") or ""), description=str(doc.get("description") or ""),
                  build=str(doc.get("build") or ""), images=images, signer=signer)


def _refusal(name: str, stderr: str, keyring: Path) -> BadBundle:
    """RAUC's complaint as a BadBundle with a code (RAUC 1.8's wording, LC_ALL=C)."""
    errors = [line.strip() for line in stderr.splitlines() if line.strip() and "rauc-Message" not in line]
    detail = errors[-1] if errors else stderr.strip()[-200:]
    text = stderr.lower()
    if "exclusive bundle access" in text or "f_setlease" in text:
        return BadBundle(f"{name} is open in another program (RAUC needs it alone while it checks it): close "
                         f"that program and try again ({detail})", "bundle_in_use")
    if "signature size is 0" in text:
        return BadBundle(f"{name} is not signed; only bundles signed with a key in {keyring} are installed",
                         "unsigned")
    if "exceeds bundle size" in text or "signature size" in text or "too small" in text:
        return BadBundle(f"{name} is truncated (an incomplete copy or download): copy it again "
                         f"and check its size ({detail})", "truncated")
    if "Verify error: " in stderr:          # X.509: the signer's certificate does not chain to the keyring
        return BadBundle(f"{name} is signed by a key this box does not trust (not in {keyring}); "
                         f"use a bundle built with this box's signing key ({detail})", "unknown_key")
    if "signature" in text or "verif" in text or "digest" in text:
        return BadBundle(f"{name}: its signature does not match its content (tampered or damaged) ({detail})",
                         "bad_signature")
    return BadBundle(f"{name} is not a valid RAUC bundle ({detail})", "not_a_bundle")


def check_fits(system: RaucSystem, bundle: Bundle, target_bootname: str) -> None:
    """BadBundle unless the bundle is for this box and each image fits its slot."""
    if bundle.compatible != system.compatible:
        theirs, ours = bundle.compatible, system.compatible
        if theirs.startswith(PRODUCT) and ours.startswith(PRODUCT):
            raise BadBundle(f"{bundle.path.name} is for {theirs} (another architecture); this box is {ours}: "
                            f"use the {ours} bundle", "other_architecture")
        raise BadBundle(f"{bundle.path.name} is for '{theirs}', not for this box ('{ours}')", "wrong_compatible")
    target = system.slot_by_bootname(target_bootname)
    if target is None:
        return
    slot_class = target.name.split(".")[0]
    room = target.size()
    for image in bundle.images:
        if image.slot_class == slot_class and room is not None and image.size > room:
            raise BadBundle(f"{bundle.path.name}: its {slot_class} image is {_mb(image.size)}, slot {target.name} "
                            f"({target.device}) holds only {_mb(room)}: this box's disk is too small for it",
                            "slot_too_small")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
