#!/usr/bin/env bash
# Build the instruction-counting QEMU plugin (insn_count.c) as build/libinsn.so.
#
# The plugin must be compiled against the qemu-plugin.h of the QEMU that
# will load it. That header (GPL-2.0-or-later) is not committed: this script
# takes it from the Debian source package of the installed qemu-user
# (orig tarball + Debian patches touching it, sha256-checked against the
# .dsc) and caches it in $YOLOD_CACHE (default ~/.cache/yolod).
#
# Needs: qemu-user (Debian), gcc, libglib2.0-dev (pkg-config glib-2.0), curl,
# xz-utils, patch.   apt-get install -y qemu-user gcc libglib2.0-dev curl xz-utils patch
#
# Environment:
#   QEMU_PLUGIN_H   use this qemu-plugin.h instead of fetching one
#   QEMU_SRC_VERSION  Debian source version to fetch (default: the installed
#                   qemu-user's, e.g. 1:7.2+dfsg-7+deb12u18)
#   DEBIAN_MIRROR   default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security
#   YOLOD_CACHE     cache directory (default ${XDG_CACHE_HOME:-~/.cache}/yolod)
#   CC              default gcc
#
# Prints the path of the built plugin on its last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="$here/build"
so="$out_dir/libinsn.so"
cache="${YOLOD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/yolod}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
sec_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
CC="${CC:-gcc}"

log() { echo "build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

fetch_header() {
    # $1 = Debian source version (with or without epoch); prints header path
    local ver="$1" noepoch dsc_name dir tmp url base found=""
    noepoch="${ver#*:}"
    dir="$cache/qemu-plugin-h/$noepoch"
    if [[ -s "$dir/qemu-plugin.h" ]]; then
        echo "$dir/qemu-plugin.h"
        return
    fi
    mkdir -p "$dir"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    dsc_name="qemu_${noepoch}.dsc"
    for base in "$mirror/pool/main/q/qemu" "$sec_mirror/pool/updates/main/q/qemu"; do
        if curl -fsSL --retry 3 -o "$tmp/$dsc_name" "$base/$dsc_name" 2>/dev/null; then
            found="$base"
            break
        fi
    done
    [[ -n "$found" ]] || die "cannot download $dsc_name from $mirror or $sec_mirror (set QEMU_PLUGIN_H)"
    log "fetching qemu source $noepoch from $found"

    # "Checksums-Sha256:" block: " <sha256> <size> <file>"
    local orig="" debtar="" sha size file
    while read -r sha size file; do
        case "$file" in
            *.orig.tar.*) orig="$file" ;;
            *.debian.tar.*) debtar="$file" ;;
            *) continue ;;
        esac
        curl -fsSL --retry 3 -o "$tmp/$file" "$found/$file" || die "download of $file failed"
        echo "$sha  $tmp/$file" | sha256sum -c --quiet - || die "sha256 mismatch for $file"
    done < <(awk '/^Checksums-Sha256:/{on=1; next} /^[^ ]/{on=0} on{print}' "$tmp/$dsc_name")
    [[ -n "$orig" ]] || die "no orig tarball in $dsc_name"

    mkdir -p "$tmp/src"
    tar -xf "$tmp/$orig" -C "$tmp/src" --wildcards --no-anchored 'include/qemu/qemu-plugin.h' \
        || die "qemu-plugin.h not in $orig"
    local hdr
    hdr="$(find "$tmp/src" -path '*/include/qemu/qemu-plugin.h' | head -n1)"
    [[ -n "$hdr" ]] || die "qemu-plugin.h not in $orig"

    # Apply, in series order, the hunks of Debian patches that touch the header.
    if [[ -n "$debtar" ]]; then
        tar -xf "$tmp/$debtar" -C "$tmp"
        local series="$tmp/debian/patches/series" p n=0
        if [[ -f "$series" ]]; then
            while read -r p _; do
                [[ -z "$p" || "$p" == \#* ]] && continue
                [[ -f "$tmp/debian/patches/$p" ]] || continue
                grep -q 'include/qemu/qemu-plugin\.h' "$tmp/debian/patches/$p" || continue
                # keep only the "diff ..." sections for the header
                awk '/^diff /{keep = ($0 ~ /include\/qemu\/qemu-plugin\.h/)} keep' \
                    "$tmp/debian/patches/$p" > "$tmp/hunk.diff"
                [[ -s "$tmp/hunk.diff" ]] || die "$p touches qemu-plugin.h but is not a git-style diff"
                log "applying the qemu-plugin.h part of debian/patches/$p"
                patch --quiet --forward "$hdr" < "$tmp/hunk.diff" || die "patch $p failed"
                n=$((n + 1))
            done < "$series"
        fi
        log "$n Debian patch(es) touch qemu-plugin.h"
    fi
    grep -q 'define QEMU_PLUGIN_VERSION' "$hdr" || die "$hdr does not look like qemu-plugin.h"
    cp "$hdr" "$dir/qemu-plugin.h.tmp"
    mv "$dir/qemu-plugin.h.tmp" "$dir/qemu-plugin.h"
    printf '%s\n' "source: $found/$dsc_name" "orig: $orig" "debian: ${debtar:-none}" > "$dir/PROVENANCE"
    echo "$dir/qemu-plugin.h"
}

if [[ -n "${QEMU_PLUGIN_H:-}" ]]; then
    header="$QEMU_PLUGIN_H"
    [[ -f "$header" ]] || die "QEMU_PLUGIN_H=$header does not exist"
else
    ver="${QEMU_SRC_VERSION:-}"
    if [[ -z "$ver" ]]; then
        ver="$(dpkg-query -W -f='${source:Version}' qemu-user 2>/dev/null || true)"
    fi
    [[ -n "$ver" ]] || die "qemu-user (Debian) is not installed; apt-get install -y qemu-user, or set QEMU_PLUGIN_H"
    header="$(fetch_header "$ver")"
fi

mkdir -p "$out_dir"
if [[ -f "$so" && "$so" -nt "$here/insn_count.c" && "$so" -nt "$header" && "$so" -nt "$0" ]]; then
    log "up to date: $so"
else
    glib_cflags="$(pkg-config --cflags glib-2.0 2>/dev/null)" \
        || die "pkg-config glib-2.0 failed: apt-get install -y libglib2.0-dev"
    # shellcheck disable=SC2086
    "$CC" -O2 -g -Wall -Wextra -fPIC -shared $glib_cflags \
        -I"$(dirname "$header")" -o "$so.tmp" "$here/insn_count.c"
    mv "$so.tmp" "$so"
    log "built $so against $header"
fi
echo "$so"
