# Host packages the image build and the boot test need (sourced by image/build-image.sh).
# mkosi 24 comes from bookworm-backports (bookworm itself has mkosi 14, too old).

BACKPORTS_LIST=/etc/apt/sources.list.d/hearth-bookworm-backports.sources

image_host_debs() {
    # command:package pairs; the package is installed when the command is missing.
    local target=$1
    local -a want=(
        mkosi:mkosi systemd-repart:systemd /usr/lib/systemd/ukify:systemd bootctl:systemd-boot
        mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs debugfs:e2fsprogs zstd:zstd xz:xz-utils
        newuidmap:uidmap cpio:cpio depmod:kmod sfdisk:fdisk bwrap:bubblewrap
        systemd-nspawn:systemd-container
    )
    case $target in
        x86_64|boot-test) want+=(qemu-system-x86_64:qemu-system-x86 /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf
                                 rauc:rauc mksquashfs:squashfs-tools openssl:openssl) ;;
        jetson|container) want+=(qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support) ;;
    esac
    [ "$target" = container ] && want+=(podman:podman)
    printf '%s\n' "${want[@]}"
}

have() { case $1 in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }

install_host_debs() {
    local target=$1 item cmd pkg missing=() backports=()
    while read -r item; do
        cmd=${item%%:*}; pkg=${item##*:}
        have "$cmd" && continue
        case $pkg in
            mkosi|systemd|systemd-boot|systemd-container) backports+=("$pkg") ;;
            *) missing+=("$pkg") ;;
        esac
    done < <(image_host_debs "$target")
    # mkosi 24 needs python3-pefile and the archive keyring; systemd 254 with it.
    if ! mkosi --version 2>/dev/null | grep -Eq 'mkosi (2[4-9]|[3-9][0-9])'; then
        backports+=(mkosi systemd systemd-container systemd-boot systemd-boot-efi python3-pefile debian-archive-keyring)
    fi
    [ ${#missing[@]} -eq 0 ] && [ ${#backports[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} ${backports[*]} (run as root)"
    export DEBIAN_FRONTEND=noninteractive
    if [ ${#backports[@]} -gt 0 ] && [ ! -e "$BACKPORTS_LIST" ]; then
        say "adding bookworm-backports to apt (for mkosi 24)"
        cat > "$BACKPORTS_LIST" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    say "installing Debian packages: ${missing[*]} ${backports[*]}"
    apt-get update -qq || die "apt-get update failed"
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    fi
    if [ ${#backports[@]} -gt 0 ]; then
        apt-get install -y -qq --no-install-recommends -t bookworm-backports "${backports[@]}" >/dev/null \
            || die "apt-get install -t bookworm-backports ${backports[*]} failed"
    fi
}

# qemu-user-static registers aarch64 with binfmt_misc; make sure it is mounted and enabled.
enable_binfmt_arm64() {
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        || die "cannot mount binfmt_misc (needed to run arm64 programs under qemu-user)"
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 \
        || die "update-binfmts --enable qemu-aarch64 failed"
}
