#!/usr/bin/env bash
# Outside tools edgebench drives, taken from Debian 13 (trixie) packages without installing them: each .deb is
# downloaded with a private apt list, checked against the sha256 pinned below, and only the one static binary is
# unpacked into $EDGEBENCH_CACHE/tools/<package>-<version>/ and linked into $EDGEBENCH_CACHE/bin (cached: a second
# run downloads nothing). Nothing in the machine's apt configuration changes.
#
#   scripts/tools.sh install            fetch what is missing; prints the bin folder to put on PATH
#   scripts/tools.sh register-arm64     register the aarch64 emulator with binfmt_misc (root; machine-wide)
set -euo pipefail
cache=${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}
bin=$cache/bin
mkdir -p "$bin"

log() { echo "tools: $*" >&2; }

# name | Debian 13 package | version | sha256 of the .deb (amd64) | path of the binary inside it
TOOLS="
qemu-aarch64|qemu-user|1:10.0.13+ds-0+deb13u1|ca6ede739327a20ae5a3498230c8a3a9a072c586e131bc6bcc1201eb1725e336|usr/bin/qemu-aarch64
cosign|cosign|2.5.0-2+b5|3b6eadd27f3c4c00bfa7eab5c2397a6a15a763630c7a1d40d06ff60d24799eef|usr/bin/cosign
kustomize|kustomize|5.6.0+ds-1+b2|552bbe5563b522685b10f75a9a226bfbee9778fc313b205d595fdbb7e9c70e33|usr/bin/kustomize
quadlet|podman|5.4.2+ds1-2+b2|e3987a9d1e6d46cbd4ee11bd067927a5f7f886e41c7a2dbe5b89a436905d44a0|usr/libexec/podman/quadlet
"

apt_dir=""
apt_opts=()
private_apt() {  # a package list of trixie, in a folder of our own
    [ -n "$apt_dir" ] && return 0
    apt_dir=$(mktemp -d)
    mkdir -p "$apt_dir/lists/partial"
    local uri
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${uri:-http://deb.debian.org/debian} trixie main" \
        >"$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$apt_dir/lists"
              -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    log "reading Debian 13's package list (once)"
    apt-get "${apt_opts[@]}" update -qq >/dev/null
}

install_one() {
    local name=$1 package=$2 version=$3 sha=$4 inner=$5 dir deb got
    dir=$cache/tools/$package-${version//:/_}
    if [ -x "$dir/$name" ]; then
        ln -sf "$dir/$name" "$bin/$name"
        return 0
    fi
    command -v apt-get >/dev/null || { log "apt-get is missing: cannot fetch $name"; return 1; }
    private_apt
    mkdir -p "$dir"
    log "downloading $package $version for $name"
    (cd "$apt_dir" && apt-get "${apt_opts[@]}" download -qq "$package=$version" >/dev/null)
    deb=$(ls "$apt_dir"/"${package}"_*.deb)
    got=$(sha256sum "$deb" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
        log "$deb has sha256 $got, not the pinned $sha: refusing it"
        rm -f "$deb"
        return 1
    fi
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" "./$inner"
    mv "$dir/$inner" "$dir/$name"
    rm -rf "$dir/${inner%%/*}" "$deb"
    ln -sf "$dir/$name" "$bin/$name"
}

register_arm64() {
    # binfmt_misc entries are machine-wide: every container and process on this machine gains arm64 emulation.
    local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64 qemu=$bin/qemu-aarch64
    if [ "$(uname -m)" = aarch64 ]; then return 0; fi
    if [ -f "$entry" ] && grep -q enabled "$entry" && grep -q "flags: .*F" "$entry"; then
        log "arm64 emulation is registered already ($(awk '/interpreter/{print $2}' "$entry")); leaving it"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        log "not root: cannot register arm64 emulation with binfmt_misc (run as root, or use Docker Desktop /" \
            "Debian's qemu-user-binfmt package)"
        return 1
    fi
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -f "$entry" ] && echo -1 >"$entry"  # an entry without the F flag cannot run inside containers
    local target
    target=$(readlink -f "$qemu")
    echo ":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$target:F" \
        >/proc/sys/fs/binfmt_misc/register
    log "registered $target for arm64 binaries with binfmt_misc (flag F). This is machine-wide and stays until" \
        "reboot; remove it with: echo -1 > $entry"
}

case "${1:-}" in
    install)
        status=0
        while IFS='|' read -r name package version sha inner; do
            [ -n "$name" ] || continue
            install_one "$name" "$package" "$version" "$sha" "$inner" || status=1
        done <<<"$TOOLS"
        [ -n "$apt_dir" ] && rm -rf "$apt_dir"
        echo "$bin"
        exit $status
        ;;
    register-arm64)
        register_arm64
        ;;
    *)
        echo "usage: $0 install|register-arm64" >&2
        exit 2
        ;;
esac
