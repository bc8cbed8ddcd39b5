#!/usr/bin/env bash
# Build the Hearth appliance image (docs/appliance.md).
#   image/build-image.sh --target x86_64     GPT disk image for UEFI mini-PCs
#   image/build-image.sh --target jetson     arm64 rootfs tarball + NVIDIA flashing kit
#   image/build-image.sh --target container  x86-64 rootfs imported with podman (+ docker-archive)
# Options: --fresh (drop the package-install cache and rebuild it).
# Environment: HEARTH_IMAGE_EXTRAS (pip extras baked in, e.g. "vosk"; default none).
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

target="" fresh=no
while [ $# -gt 0 ]; do
    case $1 in
        --target) target=${2:-}; shift 2 || die "--target needs a value" ;;
        --target=*) target=${1#*=}; shift ;;
        --fresh) fresh=yes; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (try: ./build.sh image --help)" ;;
    esac
done
case $target in
    x86_64|jetson|container) ;;
    "") die "say which image: --target x86_64|jetson|container" ;;
    *) die "unknown target '$target' (x86_64, jetson or container)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "building an image needs root (mkosi, loop-free but uid-mapped): run as root"

mkdir -p "$OUT" "$CACHE" "$LOGS"
LOG=$LOGS/image-$target.log
: > "$LOG"
STEP_NO=0 STEPS=4 T0=$SECONDS
[ "$target" = container ] && STEPS=5

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
    )
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

finish_x86_64() {
    local raw=$WORK/hearth.raw final=$OUT/hearth-x86_64.raw
    [ -s "$raw" ] || die "mkosi wrote no disk image ($raw)"
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

step "host packages (mkosi from bookworm-backports, qemu, ...)" host_setup
step "wheels for $arch (pip wheel of the checkout + pinned dependencies)" build_wheels "$arch" "$WHEELS"
step "mkosi build ($profile: Debian 12 + Mosquitto + Hearth venv)" run_mkosi
case $target in
    x86_64) step "finish: raw + zstd + sha256 under out/" finish_x86_64 ;;
    jetson) step "finish: rootfs tarball + flashing kit under out/" finish_tar hearth-jetson-arm64 ;;
    container)
        step "finish: rootfs tarball under out/" finish_tar hearth-container-x86_64
        step "podman import" podman_import ;;
esac
rm -rf "$WORK"
say "image $target built in $((SECONDS - T0)) s (log: ${LOG#"$ROOT"/})"
