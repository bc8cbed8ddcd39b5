#!/usr/bin/env bash
# Signed RAUC update bundles for the x86-64 box (docs/appliance.md, "Updating").
#   image/make-bundle.sh --image RAW --out FILE.raucb [--key KEY --cert CERT]
#       bundle slot A of a built disk image (its root file system, kernel and initrds)
#   image/make-bundle.sh --image RAW --extract DIR
#       only unpack: DIR/rootfs.ext4 and DIR/boot/ (vmlinuz, initrd.N, options)
#   image/make-bundle.sh --from DIR --out FILE.raucb [--key KEY --cert CERT]
#       bundle an unpacked (perhaps edited) DIR
# The version is IMAGE_VERSION from the root's /usr/lib/os-release. The key and certificate
# default to HEARTH_SIGNING_KEY / HEARTH_SIGNING_CERT, else out/keys/ (made by build-image.sh).
# The output appears under its final name only when complete.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COMPATIBLE=hearth-x86_64
die() { printf 'Error: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

image="" out="" extract="" from=""
key=${HEARTH_SIGNING_KEY:-$ROOT/out/keys/signing.key.pem}
cert=${HEARTH_SIGNING_CERT:-$ROOT/out/keys/signing.cert.pem}
while [ $# -gt 0 ]; do
    case $1 in
        --image) image=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --extract) extract=${2:?}; shift 2 ;;
        --from) from=${2:?}; shift 2 ;;
        --key) key=${2:?}; shift 2 ;;
        --cert) cert=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (try --help)" ;;
    esac
done
export MTOOLS_SKIP_CHECK=1
CLEAN=()
trap 'rm -rf "${CLEAN[@]}"' EXIT

# partition RAW LABEL -> "offset size" in bytes
partition() {
    sfdisk --json "$1" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]; s = t.get("sectorsize", 512)
p = [p for p in t["partitions"] if p.get("name") == sys.argv[1]]
if not p: sys.exit(f"no partition {sys.argv[1]!r} in the image")
print(p[0]["start"] * s, p[0]["size"] * s)' "$2"
}

unpack() {  # unpack RAW DIR: slot A's root file system and its boot files from the ESP
    local raw=$1 dir=$2 off size esp f
    [ -s "$raw" ] || die "no disk image at $raw"
    mkdir -p "$dir/boot"
    read -r off size < <(partition "$raw" hearth-root-a)
    dd if="$raw" of="$dir/rootfs.ext4" bs=4M iflag=skip_bytes,count_bytes skip="$off" count="$size" \
        conv=sparse status=none
    read -r esp _ < <(partition "$raw" ESP)
    for f in $(mdir -b -i "$raw@@$esp" ::/hearth/a); do
        mcopy -n -i "$raw@@$esp" "$f" "$dir/boot/"
    done
    [ -s "$dir/boot/vmlinuz" ] || die "no kernel for slot A on the image's ESP (/hearth/a)"
}

bundle() {  # bundle DIR OUT
    local dir=$1 final=$2 work version blocks bsize
    [ -s "$dir/rootfs.ext4" ] && [ -s "$dir/boot/vmlinuz" ] || die "$dir has no rootfs.ext4 and boot/vmlinuz"
    [ -r "$key" ] && [ -r "$cert" ] || die "no signing key/certificate ($key, $cert): build the image first, or pass --key/--cert"
    version=$(debugfs -R 'cat /usr/lib/os-release' "$dir/rootfs.ext4" 2>/dev/null | sed -n 's/^IMAGE_VERSION=//p')
    [ -n "$version" ] || die "the root file system has no IMAGE_VERSION in /usr/lib/os-release"
    work=$(mktemp -d "$(dirname "$final")/.bundle.XXXXXX")
    CLEAN+=("$work")
    mkdir "$work/content"
    # The smallest file system that holds the root; RAUC grows it to the slot (resize=true).
    cp --sparse=always "$dir/rootfs.ext4" "$work/content/rootfs.ext4"
    e2fsck -fy "$work/content/rootfs.ext4" >/dev/null 2>&1 || [ $? -le 1 ] || die "e2fsck of the root file system failed"
    resize2fs -M "$work/content/rootfs.ext4" >/dev/null 2>&1 || die "resize2fs -M of the root file system failed"
    blocks=$(dumpe2fs -h "$work/content/rootfs.ext4" 2>/dev/null | sed -n 's/^Block count: *//p')
    bsize=$(dumpe2fs -h "$work/content/rootfs.ext4" 2>/dev/null | sed -n 's/^Block size: *//p')
    truncate -s $((blocks * bsize)) "$work/content/rootfs.ext4"
    cp -r "$dir/boot" "$work/content/boot"
    install -m 0755 "$ROOT/image/bundle/hook" "$work/content/hook"
    cat > "$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=$COMPATIBLE
version=$version
description=Hearth $version
build=$(date -u +%Y%m%dT%H%M%SZ)

[bundle]
format=verity

[hooks]
filename=hook

[image.rootfs]
filename=rootfs.ext4
hooks=post-install
MANIFEST
    rm -f "$final.part"
    rauc bundle --cert "$cert" --key "$key" --mksquashfs-args="-comp zstd -Xcompression-level 3" \
        "$work/content" "$final.part" >&2 || die "rauc bundle failed"
    mv -f "$final.part" "$final"
    say "bundle $final: version $version, $(du -h --apparent-size "$final" | cut -f1)"
}

if [ -n "$extract" ]; then
    unpack "$image" "$extract"
elif [ -n "$from" ]; then
    [ -n "$out" ] || die "--out FILE.raucb is needed"
    bundle "$from" "$out"
else
    [ -n "$image" ] && [ -n "$out" ] || die "--image RAW and --out FILE.raucb are needed (try --help)"
    tmp=$(mktemp -d "$(dirname "$out")/.unpack.XXXXXX")
    CLEAN+=("$tmp")
    unpack "$image" "$tmp"
    bundle "$tmp" "$out"
fi
