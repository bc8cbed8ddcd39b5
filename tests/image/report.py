"""docs/benchmarks-image.md and docs/benchmarks/image-<run>.json, written from the figures the image
tier measured in this run (vmtools.record). Nothing in that page is typed by hand."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks-image.md"
HISTORY = ROOT / "docs" / "benchmarks"

# key -> (section, what it is, unit)
FIGURES = {
    "build_s_x86_64": ("Build", "`./build.sh image --target x86_64 --bundle`, as the tier ran it", "s"),
    "build_s_jetson": ("Build", "`./build.sh image --target jetson`", "s"),
    "build_s_container": ("Build", "`./build.sh image --target container`", "s"),
    "image_raw_bytes": ("Size", "`hearth-x86_64.raw` (ESP 512 MiB + root A 3 GiB + root B 3 GiB + data 512 MiB, sparse)", "bytes"),
    "image_zst_bytes": ("Size", "`hearth-x86_64.raw.zst`", "bytes"),
    "bundle_bytes": ("Size", "update bundle `hearth-x86_64-<version>.raucb` (root shrunk to fit, squashfs zstd, verity)", "bytes"),
    "bundle_make_s": ("Build", "`image/make-bundle.sh` for one bundle (shrink the root, squashfs, sign)", "s"),
    "boot_to_ready_first_s": ("Boot", "first boot, power-on to `/health` ok (test_boot)", "s"),
    "boot_to_ready_second_s": ("Boot", "boot after a power cut with `mosquitto.db` zeroed (test_boot)", "s"),
    "boot_to_ready_v1_s": ("Boot", "first boot of the update test's box, power-on to `/health` ok", "s"),
    "say_over_forwarded_port_s": ("Boot", "`hearth client say` over the forwarded broker port, first request", "s"),
    "install_path": ("Update", "command the update test installed v2 with, before it used the System page", ""),
    "install_v2_s": ("Update", "install time of v2 from the stick (verify, write slot B, kernel to the ESP)", "s"),
    "upload_v2_s": ("Update", "v2 uploaded on the System page until the box answers verified (202)", "s"),
    "install_v2_page_s": ("Update", "v2 through the System page: upload, verify, write slot B, kernel to the ESP", "s"),
    "install_v3_usb_s": ("Update", "v3 from the stick with `hearth update install` (verify, write slot A)", "s"),
    "reboot_to_ready_v2_s": ("Update", "reboot into v2 until `/health` ok (boot-to-healthy after an update)", "s"),
    "reboot_to_marked_good_v2_s": ("Update", "reboot into v2 until RAUC reports slot B good", "s"),
    "power_cut_at_progress": ("Update", "RAUC's progress when QEMU was killed -9", ""),
    "boot_to_ready_after_power_cut_s": ("Update", "boot after that power cut (old slot A) to `/health` ok", "s"),
    "rollback_to_ready_s": ("Update", "v3 (never healthy) from reboot until back on v2 with `/health` ok", "s"),
    "rollback_entries": ("Update", "boot entries after the rollback", ""),
    "update_status_after_rollback": ("Update", "what `hearth update status` and the System page say after the rollback", ""),
    "refusals": ("Update", "last line of each refusal", ""),
    "arm64_engines_load_emulated": ("Jetson", "arm64 under qemu-user: engines import and load", ""),
    "compose_up_to_health_1_s": ("Compose", "`docker-compose up -d` of image/compose.yaml (podman) until `/health` ok, first time (setup, model timing)", "s"),
    "compose_up_to_health_2_s": ("Compose", "the same after `down`, with the data volume kept", "s"),
    "compose_transcribe_1_s": ("Compose", "`hearth client transcribe` over the published MQTT port, first up", "s"),
    "compose_transcribe_2_s": ("Compose", "the same, second up, with the login paired on the first", "s"),
    "compose_two_cycles_s": ("Compose", "tests/image/test_compose.py: up, pair, transcribe, down, twice", "s"),
}


def _value(value, unit: str) -> str:
    if unit == "bytes" and isinstance(value, (int, float)):
        return f"{value / (1 << 20):,.0f} MiB ({int(value):,} bytes)"
    if unit == "s" and isinstance(value, (int, float)):
        return f"{value:.1f} s"
    if isinstance(value, (dict, list)):
        return "<br>".join(f"`{k}`: {v}" for k, v in value.items()) if isinstance(value, dict) else ", ".join(f"`{v}`" for v in value)
    return f"`{value}`" if unit == "" else str(value)


def machine() -> dict:
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "memory_gib": round(mem / (1 << 20), 1), "cpu": platform.machine(),
            "kvm": False, "commit": commit}


def write(figures_path: Path) -> None:
    if not figures_path.exists():
        return
    figures = json.loads(figures_path.read_text())
    run = figures.pop("run", "unknown")
    host = machine()
    HISTORY.mkdir(parents=True, exist_ok=True)
    (HISTORY / f"image-{run}.json").write_text(json.dumps({"section": "image", "utc": run, "machine": host,
                                                           "figures": figures}, indent=1, sort_keys=True) + "\n")
    # A run of one module (or one that failed half way) measures only some figures: the others
    # come from the newest earlier run that has them, marked with that run.
    merged: dict = {}
    for old in sorted(HISTORY.glob("image-*.json")):
        doc = json.loads(old.read_text())
        merged.update({k: (v, doc.get("utc", "?")) for k, v in doc.get("figures", {}).items()})
    merged.update({k: (v, run) for k, v in figures.items()})
    figures = {k: v for k, (v, _) in merged.items()}
    from_run = {k: r for k, (_, r) in merged.items()}
    lines = [
        "## Appliance image: build, size, boot, update",
        "",
        f"Written by the image tier itself (`./build.sh test-image`, `tests/image/report.py`) from the figures",
        f"of its latest run, {run} (commit {host['commit']}), on {host['cores']} cores and {host['memory_gib']} GiB;",
        "a figure that run did not measure comes from the newest earlier run that did (its run is named).",
        "Every run's figures are kept in `docs/benchmarks/image-<run>.json`. The boxes run under QEMU with",
        "TCG (the CPU is emulated, no KVM): real hardware boots and installs several times faster.",
        "",
    ]
    for section in ("Build", "Size", "Boot", "Update", "Jetson", "Compose"):
        rows = [(what, _value(figures[key], unit) + ("" if from_run[key] == run else f" (run {from_run[key]})"))
                for key, (sec, what, unit) in FIGURES.items() if sec == section and key in figures]
        if rows:
            lines += [f"### {section}", "", "| figure | value |", "|---|---|"]
            lines += [f"| {what} | {value} |" for what, value in rows]
            lines.append("")
    others = {k: v for k, v in figures.items() if k not in FIGURES}
    if others:
        lines += ["### Other figures of this run", "", "| key | value |", "|---|---|"]
        lines += [f"| `{k}` | {_value(v, '')}{'' if from_run[k] == run else f' (run {from_run[k]})'} |"
                  for k, v in sorted(others.items())]
        lines.append("")
    DOC.write_text("\n".join(lines))
