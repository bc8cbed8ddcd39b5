#!/usr/bin/env bash
# Build the Hearth appliance image (docs/appliance.md).
#   image/build-image.sh --target x86_64     GPT disk image for UEFI mini-PCs
#   image/build-image.sh --target jetson     arm64 rootfs tarball + NVIDIA flashing kit
#   image/build-image.sh --target container  x86-64 rootfs imported with podman (+ docker-archive)
# Options: --fresh (drop the package-install cache and rebuild it).
#   x86_64 only: --bundle (also a signed update bundle, out/hearth-x86_64-VERSION.raucb),
#   --key KEY.pem --cert CERT.pem (sign with your own key; default: out/keys/, made once).
# Environment: HEARTH_IMAGE_EXTRAS (pip extras baked in, e.g. "vosk"; default none),
#   HEARTH_IMAGE_VERSION (default: the version in pyproject.toml), HEARTH_SIGNING_KEY and
#   HEARTH_SIGNING_CERT (as --key/--cert), HEARTH_KEYRING (the certificates the box trusts;
#   default: the signing certificate). docs/appliance.md, "Bring your own signing key".
# Outputs go to out/ under their final names only when complete (built under *.part first).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/out
CACHE=$OUT/cache
LOGS=$OUT/logs

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'Error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib/deps.sh
. image/lib/deps.sh
# shellcheck source=lib/wheels.sh
. image/lib/wheels.sh

target="" fresh=no bundle=no
KEY=${HEARTH_SIGNING_KEY:-} CERT=${HEARTH_SIGNING_CERT:-}
while [ $# -gt 0 ]; do
    case $1 in
        --target) target=${2:-}; shift 2 || die "--target needs a value" ;;
        --target=*) target=${1#*=}; shift ;;
        --fresh) fresh=yes; shift ;;
        --bundle) bundle=yes; shift ;;
        --key) KEY=${2:-}; shift 2 || die "--key needs a file" ;;
        --cert) CERT=${2:-}; shift 2 || die "--cert needs a file" ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (try: ./build.sh image --help)" ;;
    esac
done
case $target in
    x86_64|jetson|container) ;;
    "") die "say which image: --target x86_64|jetson|container" ;;
    *) die "unknown target '$target' (x86_64, jetson or container)" ;;
esac
[ "$bundle" = no ] || [ "$target" = x86_64 ] || die "--bundle is for --target x86_64 (the Jetson uses NVIDIA's A/B slots: image/jetson/README.md)"
if [ -n "$KEY$CERT" ]; then
    [ -r "$KEY" ] && [ -r "$CERT" ] || die "bring both a signing key and its certificate (--key KEY.pem --cert CERT.pem)"
fi
[ "$(id -u)" -eq 0 ] || die "building an image needs root (mkosi, loop-free but uid-mapped): run as root"

mkdir -p "$OUT" "$CACHE" "$LOGS"
LOG=$LOGS/image-$target.log
: > "$LOG"
STEP_NO=0 STEPS=4 T0=$SECONDS
[ "$target" = container ] && STEPS=5
[ "$target" = x86_64 ] && STEPS=5
[ "$bundle" = yes ] && STEPS=6
VERSION=${HEARTH_IMAGE_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)}
KEYS=$OUT/keys
KEY=${KEY:-$KEYS/signing.key.pem} CERT=${CERT:-$KEYS/signing.cert.pem}

# step NAME COMMAND...: run one numbered step; its output goes to the terminal and the log.
step() {
    local name=$1 t=$SECONDS rc=0; shift
    STEP_NO=$((STEP_NO + 1))
    say "[$STEP_NO/$STEPS] $name"
    printf '\n==== [%s/%s] %s\n' "$STEP_NO" "$STEPS" "$name" >> "$LOG"
    ( "$@" ) > >(tee -a "$LOG") 2> >(tee -a "$LOG" >&2) || rc=$?
    wait
    if [ $rc -ne 0 ]; then
        printf 'Error: step %s/%s "%s" failed (exit %s); the last lines above say why; full log: %s\n' \
            "$STEP_NO" "$STEPS" "$name" "$rc" "${LOG#"$ROOT"/}" >&2
        exit 1
    fi
    say "[$STEP_NO/$STEPS] $name: done in $((SECONDS - t)) s"
}

case $target in
    x86_64) arch=x86_64 profile=x86_64 ;;
    jetson) arch=arm64 profile=jetson ;;
    container) arch=x86_64 profile=container ;;
esac
WORK=$OUT/.work-$target
WHEELS=$CACHE/wheels-$arch

host_setup() {
    install_host_debs "$target"
    [ "$arch" = arm64 ] && enable_binfmt_arm64
    # mkosi refuses a dirty output directory; the work dir is ours alone.
    rm -rf "$WORK"; mkdir -p "$WORK"
}

run_mkosi() {
    local -a args=(
        --directory "$ROOT/image/mkosi" --profile "$profile"
        --incremental --cache-dir "$CACHE/mkosi-$profile" --package-cache-dir "$CACHE/packages-$arch"
        --output-dir "$WORK" --workspace-dir "$WORK"
        --build-sources "$WHEELS:wheels,$ROOT/docs:docs,$ROOT/image/mkosi/mkosi.pkgmngr/etc/apt/sources.list.d:apt"
        --environment "HEARTH_IMAGE_EXTRAS=${HEARTH_IMAGE_EXTRAS:-}"
        --environment "HEARTH_IMAGE_VERSION=$VERSION"
    )
    # x86-64: the A/B update parts (RAUC, boot counting) and the keyring the box trusts.
    [ "$target" = x86_64 ] && args+=(--extra-tree "$ROOT/image/mkosi/x86_64.extra:/" --extra-tree "$KEYS/tree:/")
    mkdir -p "$CACHE/mkosi-$profile" "$CACHE/packages-$arch"
    [ "$fresh" = yes ] && args+=(-ff) || args+=(-f)
    mkosi "${args[@]}" build
}

# publish SRC FINAL: move a finished file to its final name (atomically) with a sha256 file.
publish() {
    local src=$1 final=$2
    mv -f "$src" "$final.part"
    (cd "$(dirname "$final")" && sha256sum "$(basename "$final").part" | sed 's/\.part$//' > "$(basename "$final").sha256.part")
    mv -f "$final.part" "$final"
    mv -f "$final.sha256.part" "$final.sha256"
}

# The signing key (made once, kept in out/keys/, never in git) and the keyring baked into the
# image: /etc/rauc/keyring.pem, the certificates whose keys the box accepts updates from.
signing_keys() {
    mkdir -p "$KEYS/tree/etc/rauc"
    chmod 0700 "$KEYS"
    if [ "$KEY" = "$KEYS/signing.key.pem" ]; then
        if [ ! -s "$KEY" ] || [ ! -s "$CERT" ]; then
            say "making a signing key for update bundles: $KEY (keep it; back it up)"
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
                -subj "/O=Hearth/CN=Hearth update signing key ($(hostname), $(date -u +%F))" \
                -keyout "$KEY.part" -out "$CERT.part" 2>/dev/null || die "openssl could not make a key"
            chmod 0600 "$KEY.part"
            mv "$CERT.part" "$CERT"; mv "$KEY.part" "$KEY"
        fi
    fi
    openssl x509 -in "$CERT" -noout 2>/dev/null || die "$CERT is not a PEM certificate"
    local keyring=${HEARTH_KEYRING:-$CERT}
    openssl x509 -in "$keyring" -noout 2>/dev/null || die "the keyring $keyring holds no PEM certificate"
    cp "$keyring" "$KEYS/tree/etc/rauc/keyring.pem"
    say "the image trusts: $(openssl x509 -in "$keyring" -noout -subject) (keyring: ${keyring#"$ROOT"/})"
}

# The ESP as systemd-boot with boot counting wants it (docs/appliance.md, "How rollback works"):
# slot A's kernel and initrds in /hearth/a, its entry /loader/entries/hearth-1-a.conf, written
# by the box's own handler (rauc-boot) into a staging copy, then put on the image with mtools.
arrange_esp() {
    local raw=$1 esp conf stage=$WORK/esp n=0 f
    export MTOOLS_SKIP_CHECK=1
    esp=$(sfdisk --json "$raw" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
print([p["start"] for p in t["partitions"] if p.get("name") == "ESP"][0] * t.get("sectorsize", 512))')
    local M="$raw@@$esp"
    conf=$(mdir -b -i "$M" ::/loader/entries | grep '\.conf$' | head -1)
    [ -n "$conf" ] || die "mkosi wrote no boot entry on the ESP"
    rm -rf "$stage"; mkdir -p "$stage/loader/entries" "$WORK/boot"
    mtype -i "$M" "$conf" | tr -d '\r' > "$WORK/entry.conf"
    mcopy -n -i "$M" "::$(sed -n 's/^linux //p' "$WORK/entry.conf")" "$WORK/boot/vmlinuz"
    for f in $(sed -n 's/^initrd //p' "$WORK/entry.conf"); do
        mcopy -n -i "$M" "::$f" "$WORK/boot/initrd.$n"; n=$((n + 1))
    done
    sed -n 's/^options //p' "$WORK/entry.conf" | tr ' ' '\n' | grep -v '^root=' | grep . | tr '\n' ' ' > "$WORK/boot/options"
    HEARTH_ESP=$stage image/mkosi/x86_64.extra/usr/libexec/hearth/rauc-boot install-kernel A "$WORK/boot"
    HEARTH_ESP=$stage image/mkosi/x86_64.extra/usr/libexec/hearth/rauc-boot set-primary A
    HEARTH_ESP=$stage image/mkosi/x86_64.extra/usr/libexec/hearth/rauc-boot set-state A good
    # mkosi's own entry and its kernel directory go; ours come in.
    mdel -i "$M" "$conf"
    mdeltree -i "$M" "::/$(sed -n 's/^linux \/\([^/]*\)\/.*/\1/p' "$WORK/entry.conf")"
    mcopy -s -i "$M" "$stage/hearth" ::/
    mcopy -i "$M" "$stage"/loader/entries/*.conf ::/loader/entries/
    say "ESP: $(mdir -b -i "$M" ::/loader/entries | tr '\n' ' ')"
    mtype -i "$M" "::/loader/entries/hearth-1-a.conf" >&2
}

finish_x86_64() {
    local raw=$WORK/hearth.raw final=$OUT/hearth-x86_64.raw
    [ -s "$raw" ] || die "mkosi wrote no disk image ($raw)"
    arrange_esp "$raw"
    rm -f "$final.zst.part"
    say "compressing (zstd) $(du -h --apparent-size "$raw" | cut -f1) image"
    zstd -q -T0 -6 --sparse "$raw" -o "$final.zst.part" || die "zstd failed"
    publish "$raw" "$final"
    mv -f "$final.zst.part" "$final.zst"
    (cd "$OUT" && sha256sum "$(basename "$final").zst" > "$(basename "$final").zst.sha256")
    ls -l "$final" "$final.zst" >&2
}

finish_tar() {
    local name=$1 tar
    tar=$(ls "$WORK"/hearth.tar* 2>/dev/null | head -1)
    [ -n "$tar" ] && [ -s "$tar" ] || die "mkosi wrote no root filesystem tarball in $WORK"
    case $tar in *.zst) ;; *) zstd -q -T0 --rm "$tar" -o "$tar.zst" || die "zstd failed"; tar=$tar.zst ;; esac
    publish "$tar" "$OUT/$name.tar.zst"
    if [ "$target" = jetson ]; then
        rm -rf "$OUT/hearth-jetson-kit.part"
        cp -r image/jetson "$OUT/hearth-jetson-kit.part"
        rm -rf "$OUT/hearth-jetson-kit"
        mv "$OUT/hearth-jetson-kit.part" "$OUT/hearth-jetson-kit"
    fi
    ls -l "$OUT/$name.tar.zst" >&2
}

podman_import() {
    local version tag
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
    tag=localhost/hearth:$version
    zstd -dc "$OUT/hearth-container-x86_64.tar.zst" | podman import \
        --change 'ENV HEARTH_DATA=/var/lib/hearth' \
        --change 'ENV PATH=/opt/hearth/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'WORKDIR /var/lib/hearth' \
        --change 'EXPOSE 8080' --change 'EXPOSE 1883' --change 'EXPOSE 8883' --change 'EXPOSE 10300' \
        --change 'CMD ["/opt/hearth/venv/bin/hearth", "run"]' \
        - "$tag" || die "podman import failed"
    podman tag "$tag" localhost/hearth:latest
    rm -f "$OUT/hearth-container-x86_64.oci.tar.part"
    podman save --format docker-archive -o "$OUT/hearth-container-x86_64.oci.tar.part" "$tag" \
        || die "podman save failed"
    publish "$OUT/hearth-container-x86_64.oci.tar.part" "$OUT/hearth-container-x86_64.docker.tar"
    say "imported as $tag; docker load -i out/hearth-container-x86_64.docker.tar"
}

make_bundle() {
    local final=$OUT/hearth-x86_64-$VERSION.raucb
    image/make-bundle.sh --image "$OUT/hearth-x86_64.raw" --out "$final" --key "$KEY" --cert "$CERT"
    rauc info --keyring "$KEYS/tree/etc/rauc/keyring.pem" "$final" >/dev/null 2>&1 \
        || die "the new bundle does not verify against the image's keyring"
    (cd "$OUT" && sha256sum "$(basename "$final")" > "$(basename "$final").sha256")
    ls -l "$final" >&2
}

step "host packages (mkosi from bookworm-backports, qemu, ...)" host_setup
[ "$target" = x86_64 ] && step "signing key and the keyring the box trusts" signing_keys
step "wheels for $arch (pip wheel of the checkout + pinned dependencies)" build_wheels "$arch" "$WHEELS"
step "mkosi build ($profile: Debian 12 + Mosquitto + Hearth venv)" run_mkosi
case $target in
    x86_64)
        step "finish: ESP slots + raw + zstd + sha256 under out/" finish_x86_64
        [ "$bundle" = yes ] && step "signed update bundle (RAUC)" make_bundle ;;
    jetson) step "finish: rootfs tarball + flashing kit under out/" finish_tar hearth-jetson-arm64 ;;
    container)
        step "finish: rootfs tarball under out/" finish_tar hearth-container-x86_64
        step "podman import" podman_import ;;
esac
rm -rf "$WORK"
say "image $target built in $((SECONDS - T0)) s (log: ${LOG#"$ROOT"/})"
