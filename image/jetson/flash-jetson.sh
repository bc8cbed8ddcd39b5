#!/bin/bash
# Run on NVIDIA's flashing host (x86-64 Ubuntu with Jetson Linux / L4T unpacked), not on the
# build machine: put Hearth's Debian 12 rootfs in Linux_for_Tegra/rootfs, add NVIDIA's kernel,
# firmware and drivers (apply_binaries.sh), then flash.
#   sudo ./flash-jetson.sh /path/to/Linux_for_Tegra [BOARD] [--flash]
# BOARD default: jetson-orin-nano-devkit (NVMe). With --flash it runs l4t_initrd_flash.sh; the
# Jetson must be in recovery mode on USB. Without it, it prints the command.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
L4T=${1:?usage: sudo ./flash-jetson.sh /path/to/Linux_for_Tegra [BOARD] [--flash]}
BOARD=${2:-jetson-orin-nano-devkit}
FLASH=${3:-}
tarball=${HEARTH_ROOTFS:-$here/../hearth-jetson-arm64.tar.zst}
[ "$(id -u)" -eq 0 ] || { echo "Error: run as root (sudo)" >&2; exit 1; }
[ -x "$L4T/apply_binaries.sh" ] || { echo "Error: $L4T is not a Linux_for_Tegra directory" >&2; exit 1; }
[ -f "$tarball" ] || { echo "Error: no rootfs tarball at $tarball (set HEARTH_ROOTFS)" >&2; exit 1; }
(cd "$(dirname "$tarball")" && sha256sum -c "$(basename "$tarball").sha256") || { echo "Error: checksum mismatch" >&2; exit 1; }

echo "==> [1/4] unpacking Hearth's rootfs into $L4T/rootfs (the sample rootfs is replaced)"
rm -rf "$L4T/rootfs"; mkdir -p "$L4T/rootfs"
tar --zstd -xpf "$tarball" -C "$L4T/rootfs"

echo "==> [2/4] adding the Jetson overlay (GPU access for hearth.service, CTranslate2 CUDA build script)"
cp -a "$here/overlay/." "$L4T/rootfs/"
# No separate data partition in NVIDIA's default layout: keep /var/lib/hearth on the root fs
# unless HEARTH_DATA_PARTITION=yes (then add a partition labelled hearth-data to the flash XML).
[ "${HEARTH_DATA_PARTITION:-no}" = yes ] || sed -i '/hearth-data/d' "$L4T/rootfs/etc/fstab"

echo "==> [3/4] apply_binaries.sh: NVIDIA's kernel, modules, firmware and user-space drivers"
(cd "$L4T" && ./apply_binaries.sh)
# L4T's first-boot wizard asks for a user on the screen; Hearth needs none.
systemctl --root="$L4T/rootfs" mask nv-oem-config.service nv-oem-config-gui.service 2>/dev/null || true

cmd=(./tools/kernel_flash/l4t_initrd_flash.sh --external-device nvme0n1p1
     -c tools/kernel_flash/flash_l4t_t234_nvme.xml -p "-c bootloader/generic/cfg/flash_t234_qspi.xml"
     --showlogs --network usb0 "$BOARD" internal)
if [ "$FLASH" = --flash ]; then
    echo "==> [4/4] flashing $BOARD (recovery mode, USB)"
    (cd "$L4T" && "${cmd[@]}")
else
    echo "==> [4/4] ready. Put the Jetson in recovery mode, connect USB, then in $L4T run:"
    printf '    %q' "${cmd[@]}"; echo
fi
