#!/usr/bin/env bash
# Hearth: the few commands a person runs. CI runs the same ones (.ci/run).
#   ./build.sh run      install what is missing, start Mosquitto + Hearth + the web page
#   ./build.sh test     install what is missing, run the whole test suite (fast tier)
#   ./build.sh test quick   the quick tier: no Hearth of a test's own, no real-time audio
#   ./build.sh test-image   the slow tier: build the x86-64 image and boot it under QEMU
#   ./build.sh bench    run the benchmarks, write docs/benchmarks.md
#   ./build.sh image --target x86_64|jetson|container   build the appliance image
#   ./build.sh image --target x86_64 --bundle [--key K --cert C]   ... and a signed update bundle
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'Error: %s\n' "$*" >&2; exit 1; }

# Debian packages each command needs (command name -> package name).
RUN_DEBS=(mosquitto:mosquitto python3:python3 "python3 -m venv:python3-venv")
TEST_DEBS=(mosquitto_sub:mosquitto-clients espeak-ng:espeak-ng sox:sox flac:flac chromium:chromium chromedriver:chromium-driver openssl:openssl curl:curl
           text2wave:festival /usr/share/festival/voices/english/kal_diphone:festvox-kallpc16k
           /usr/share/festival/voices/english/ked_diphone:festvox-kdlpc16k             # the accuracy corpus's
           /usr/share/festival/voices/us/cmu_us_slt_arctic_hts:festvox-us-slt-hts     # two held-out Festival voices
           rauc:rauc mksquashfs:squashfs-tools dbus-daemon:dbus)     # the update tests: real bundles and RAUC's service

need_debs() {
    local missing=() item cmd pkg
    for item in "$@"; do
        cmd=${item%%:*}; pkg=${item##*:}
        case $cmd in
            "python3 -m venv") python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=("$pkg") ;;
            /*) [ -e "$cmd" ] || missing+=("$pkg") ;;      # a file the package installs (e.g. a voice)
            *) command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    # The Debian mosquitto package starts a system broker on :1883; Hearth runs its own.
    if printf '%s\n' "${missing[@]}" | grep -qx mosquitto && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now mosquitto >/dev/null 2>&1 || true
    fi
}

# The virtual environment is rebuilt when pyproject.toml changes.
need_venv() {
    local extras=$1 stamp want
    want=$(cat pyproject.toml tests/requirements-nodeps.txt | sha256sum | cut -c1-16)-$extras
    stamp=$VENV/.hearth-stamp
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    say "preparing $VENV (Python packages and bundled models, pinned in pyproject.toml)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/pip" install -q -e ".[$extras]" || die "pip install failed (see the lines above)"
    case ,$extras, in *,test,*)
        "$VENV/bin/pip" install -q --no-deps -r tests/requirements-nodeps.txt || die "pip install of the test clients failed" ;;
    esac
    echo "$want" > "$stamp"
}

# The image tier also makes and checks update bundles (RAUC needs squashfs-tools), logs in over SSH
# and loads the packet filter (nftables) into a namespace of its own; it brings image/compose.yaml
# up with podman's Docker API and docker-compose (runc: crun refuses this kernel's hybrid cgroups;
# iptables for the published ports).
IMAGE_TEST_DEBS=(rauc:rauc mksquashfs:squashfs-tools ssh:openssh-client nft:nftables
                 podman:podman docker-compose:docker-compose runc:runc iptables:iptables)

cmd=${1:-help}; shift || true
case $cmd in
    run)
        need_debs "${RUN_DEBS[@]}"
        need_venv vosk
        exec "$VENV/bin/hearth" run "$@"
        ;;
    test)
        need_debs "${RUN_DEBS[@]}" "${TEST_DEBS[@]}"
        need_venv vosk,test
        # no arguments: the whole suite (parallel pass, then the timing tests alone); `quick`: the
        # quick tier; anything else goes to pytest as given (tests/tiers.py)
        exec "$VENV/bin/python" tests/tiers.py "$@"
        ;;
    test-image)
        need_debs "${RUN_DEBS[@]}" "${TEST_DEBS[@]}" "${IMAGE_TEST_DEBS[@]}"
        need_venv vosk,test
        exec "$VENV/bin/python" -m pytest -m image -o addopts='-ra --strict-markers' tests/image "$@"
        ;;
    bench)
        need_debs "${RUN_DEBS[@]}" "${TEST_DEBS[@]}"
        need_venv vosk,test
        exec "$VENV/bin/python" -m bench "$@"
        ;;
    image)
        exec image/build-image.sh "$@"
        ;;
    help|-h|--help)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command '$cmd' (try: ./build.sh help)"
        ;;
esac
