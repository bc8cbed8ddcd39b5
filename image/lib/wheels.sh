# Wheels for the image, built and downloaded on the host, installed inside the image offline.
# Sourced by image/build-image.sh. The wheel directory is a cache: a rebuild downloads nothing
# unless pyproject.toml changes.

# build_wheels ARCH DIR: fill DIR with every wheel Hearth needs on that machine.
build_wheels() {
    local arch=$1 dest=$2 extras=${HEARTH_IMAGE_EXTRAS:-} plat spec stamp want py
    case $arch in
        x86_64) plat=x86_64 ;;
        arm64)  plat=aarch64 ;;
        *) die "unknown wheel architecture $arch" ;;
    esac
    py=${HEARTH_BUILD_PYTHON:-python3}
    # Debian 12 has glibc 2.36: every manylinux tag up to 2.36 runs there (pip does not
    # widen an explicit --platform by itself).
    local -a platforms=(--platform "manylinux2014_$plat")
    local v; for v in $(seq 17 36); do platforms+=(--platform "manylinux_2_${v}_$plat"); done
    spec=".${extras:+[$extras]}"
    want="$(sha256sum pyproject.toml | cut -c1-16)-$arch-$extras"
    stamp=$dest/.deps-stamp
    mkdir -p "$dest"
    # Hearth itself is rebuilt every time (it is the code being shipped).
    rm -f "$dest"/hearth-*.whl
    "$py" -m pip wheel -q --no-deps . -w "$dest" 2>&1 | tail -5 \
        || die "pip wheel of the checkout failed"
    ls "$dest"/hearth-*.whl >/dev/null 2>&1 || die "pip wheel of the checkout wrote no hearth wheel"
    rm -rf build *.egg-info
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        say "wheels for $arch: cached in $dest"
        return 0
    fi
    # vosk needs srt, which PyPI only has as source: build its (pure) wheel first.
    "$py" -m pip wheel -q --no-deps srt -w "$dest" || die "building the srt wheel failed"
    "$py" -m pip download -q --dest "$dest" --find-links "$dest" \
        --only-binary=:all: "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        "$(ls "$dest"/hearth-*.whl)${extras:+[$extras]}" \
        || die "pip download of Hearth's pinned dependencies for $arch failed (see above)"
    echo "$want" > "$stamp"
    say "wheels for $arch: $(ls "$dest"/*.whl | wc -l) files, $(du -sh "$dest" | cut -f1)"
}
