#!/usr/bin/env bash
# Build a kernel + busybox initramfs that boots to a vivid V4L2 device.
#
# usage: build-initramfs.sh BINARY OUT_DIR
#
# Writes OUT_DIR/vmlinuz, OUT_DIR/initrd.gz and OUT_DIR/info (kernel and
# busybox versions, module load order, vivid parameters). BINARY becomes
# /yolod in the initramfs. /init mounts proc, sys, devtmpfs and /tmp, loads
# vivid and its dependencies with insmod, waits for /dev/video0, runs /test.sh
# under a timeout, prints `YOLOD-E2E-EXIT=<code>` on the console and powers
# off. Without a /test.sh it starts a shell on the console instead.
#
# Debian packages come from the Debian archive with `apt-get download` (the
# apt lists must be there: run `apt-get update` first), the concrete
# linux-image-6.1.0-NN-<arch> that linux-image-<arch> depends on, and
# busybox-static. Both are cached with what is extracted from them under
# $YOLOD_VM_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/yolod-vm); a kernel
# already prepared there is reused offline when apt cannot resolve one.
#
# Host tools: apt-get, dpkg-deb, cpio, gzip, xz-utils (only for .ko.xz
# modules), kmod (modinfo). Debian packages: cpio xz-utils kmod.
#
# Environment:
#   YOLOD_VM_TEST          script copied to /test.sh (run with busybox sh unless
#                          it has another #! line)
#   YOLOD_VM_FILES         extra files, whitespace separated, each SRC or
#                          SRC:DEST (DEST absolute inside the VM; default
#                          /data/<basename of SRC>)
#   YOLOD_VM_TEST_TIMEOUT  seconds /test.sh may run (default 480), then TERM,
#                          KILL 10 s later; exit code 143/137 then
#   YOLOD_VM_VIVID_PARAMS  vivid module options (default below: one instance,
#                          a single video capture node, one webcam input)
#   YOLOD_VM_ARCH          Debian architecture of kernel and busybox (default
#                          amd64; only amd64 has been booted)
#   YOLOD_VM_KERNEL_PKG    concrete kernel package instead of the one
#                          linux-image-$arch depends on
#   YOLOD_VM_CACHE         cache directory (see above)
#
# Inside the VM the test sees: /yolod, /dev/video0, a tmpfs at /tmp, PATH
# with all busybox applets, and E2E_OUT=/dev/ttyS1, a raw second serial port
# that run.sh captures to a host file (cat a file there for a byte-exact copy,
# free of console noise). Kernel console messages are turned down to
# emergencies before /test.sh runs so they do not interleave with its output;
# `dmesg` still shows everything.
set -euo pipefail

die() { echo "build-initramfs: $*" >&2; exit 1; }
log() { echo "build-initramfs: $*" >&2; }

[ $# -eq 2 ] || die "usage: $0 BINARY OUT_DIR"
binary=$1
out_dir=$2
[ -f "$binary" ] || die "no such binary: $binary"
for tool in apt-get dpkg-deb cpio gzip modinfo flock; do
    command -v "$tool" >/dev/null || die "missing host tool: $tool (Debian: apt-get install cpio kmod xz-utils)"
done

arch=${YOLOD_VM_ARCH:-amd64}
cache=${YOLOD_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/yolod-vm}
vivid_params=${YOLOD_VM_VIVID_PARAMS:-n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0}
test_timeout=${YOLOD_VM_TEST_TIMEOUT:-480}
mkdir -p "$cache/debs"
# One builder at a time prepares the cache (runs may share it).
exec 9>"$cache/lock"
flock 9
rm -rf "$cache"/extract.* # left by an interrupted run

# apt-get download into the cache; as root the _apt sandbox user could not
# write there, so download as root (no effect for other users).
apt_download() { # PKG...
    local sandbox=()
    [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$cache/debs" && apt-get download -q "${sandbox[@]}" "$@") >&2
}

# deb_for PKG VERSION: the cached .deb of that version, downloaded if needed.
deb_for() {
    local pkg=$1 ver=$2 f
    for f in "$cache/debs/${pkg}"_*_"$arch".deb; do
        [ -f "$f" ] && [ "$(dpkg-deb -f "$f" Version)" = "$ver" ] && { echo "$f"; return; }
    done
    log "downloading $pkg $ver"
    apt_download "$pkg:$arch=$ver"
    for f in "$cache/debs/${pkg}"_*_"$arch".deb; do
        [ -f "$f" ] && [ "$(dpkg-deb -f "$f" Version)" = "$ver" ] && { echo "$f"; return; }
    done
    die "apt-get download $pkg=$ver left no .deb in $cache/debs"
}

candidate() { # PKG -> candidate version or nothing
    apt-cache policy "$1:$arch" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }' || true
}

# --- the kernel ------------------------------------------------------------
kpkg=${YOLOD_VM_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
    kpkg=$(apt-cache depends "linux-image-$arch:$arch" 2>/dev/null |
        sed -n "s/^ *|\{0,1\}Depends: \(linux-image-[0-9][^ :]*-$arch\)\(:$arch\)\{0,1\}\$/\1/p" | head -n1 || true)
fi
kver=
[ -n "$kpkg" ] && kver=$(candidate "$kpkg")
if [ -z "$kver" ]; then
    # Offline: the newest kernel prepared earlier, if any.
    kdir=$(ls -d "$cache"/kernel/linux-image-*-"$arch"_* 2>/dev/null | grep -v "\.tmp$" | sort -V | tail -n1 || true)
    [ -n "$kdir" ] && [ -f "$kdir/ok" ] ||
        die "apt cannot resolve linux-image-$arch (run apt-get update) and nothing is cached in $cache/kernel"
    log "apt cannot resolve a kernel; using cached $(basename "$kdir")"
else
    kdir=$cache/kernel/${kpkg}_$kver
fi

if [ ! -f "$kdir/ok" ]; then
    deb=$(deb_for "$kpkg" "$kver")
    rm -rf "$kdir" "$kdir.tmp"
    mkdir -p "$kdir.tmp/modules"
    tree=$(mktemp -d "$cache/extract.XXXXXX")
    log "extracting $(basename "$deb")"
    dpkg-deb -x "$deb" "$tree"
    kernel_release=$(basename "$(ls -d "$tree"/lib/modules/*/ | head -n1)")
    [ -n "$kernel_release" ] || die "no lib/modules in $deb"
    cp "$tree/boot/vmlinuz-$kernel_release" "$kdir.tmp/vmlinuz"
    # Index module files by name (modinfo's depends uses module names, where
    # - and _ are the same).
    declare -A modfile=()
    while IFS= read -r -d '' f; do
        n=$(basename "$f"); n=${n%.xz}; n=${n%.zst}; n=${n%.gz}; n=${n%.ko}
        modfile[${n//-/_}]=$f
    done < <(find "$tree/lib/modules/$kernel_release" -name '*.ko*' -print0)
    # Depth-first over `modinfo -F depends`: dependencies before dependents.
    declare -A seen=()
    order=()
    visit() {
        local key=${1//-/_} f dep
        [ -n "${seen[$key]:-}" ] && return
        seen[$key]=1
        f=${modfile[$key]:-}
        [ -n "$f" ] || die "module $1 not in $kpkg (built in?)"
        local deps
        deps=$(modinfo -F depends "$f")
        for dep in ${deps//,/ }; do visit "$dep"; done
        order+=("$key")
    }
    visit vivid
    for key in "${order[@]}"; do
        f=${modfile[$key]}
        case $f in
            *.ko) cp "$f" "$kdir.tmp/modules/$key.ko" ;;
            *.ko.xz) xz -dc "$f" > "$kdir.tmp/modules/$key.ko" ;;
            *.ko.zst) zstd -dqc "$f" > "$kdir.tmp/modules/$key.ko" ;;
            *.ko.gz) gzip -dc "$f" > "$kdir.tmp/modules/$key.ko" ;;
            *) die "unknown module file $f" ;;
        esac
    done
    printf '%s\n' "${order[@]}" > "$kdir.tmp/load-order"
    modinfo -F parm "$kdir.tmp/modules/vivid.ko" > "$kdir.tmp/vivid-params.txt"
    echo "$kernel_release" > "$kdir.tmp/release"
    echo "$kpkg $kver" > "$kdir.tmp/package"
    rm -rf "$tree"
    touch "$kdir.tmp/ok"
    mv "$kdir.tmp" "$kdir"
    rm -f "$deb" # 70 MB, no longer needed
fi

# --- busybox ---------------------------------------------------------------
bbver=$(candidate busybox-static)
if [ -n "$bbver" ]; then
    bbdir=$cache/busybox/busybox-static_$bbver
else
    bbdir=$(ls -d "$cache"/busybox/busybox-static_* 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$bbdir" ] && [ -f "$bbdir/busybox" ] || die "apt cannot resolve busybox-static (run apt-get update) and none is cached"
fi
if [ ! -f "$bbdir/busybox" ]; then
    deb=$(deb_for busybox-static "$bbver")
    tree=$(mktemp -d "$cache/extract.XXXXXX")
    dpkg-deb -x "$deb" "$tree"
    mkdir -p "$bbdir"
    cp "$tree/bin/busybox" "$bbdir/busybox.tmp"
    mv "$bbdir/busybox.tmp" "$bbdir/busybox"
    rm -rf "$tree"
fi

# --- the initramfs -----------------------------------------------------------
mkdir -p "$out_dir"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,data,lib/modules}
install -m 0755 "$bbdir/busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$kdir"/modules/*.ko "$root/lib/modules/"
cp "$kdir/load-order" "$root/lib/modules/load-order"
install -m 0755 "$binary" "$root/yolod"
if [ -n "${YOLOD_VM_TEST:-}" ]; then
    [ -f "$YOLOD_VM_TEST" ] || die "no such test script: $YOLOD_VM_TEST"
    install -m 0755 "$YOLOD_VM_TEST" "$root/test.sh"
fi
for spec in ${YOLOD_VM_FILES:-}; do
    src=${spec%%:*}
    dest=/data/$(basename "$src")
    [ "$src" != "$spec" ] && dest=${spec#*:}
    case $dest in /*) ;; *) die "YOLOD_VM_FILES: destination must be absolute: $spec" ;; esac
    [ -e "$src" ] || die "YOLOD_VM_FILES: no such file: $src"
    mkdir -p "$root$(dirname "$dest")"
    cp -a "$src" "$root$dest"
done

{
    printf 'VIVID_PARAMS=%q\n' "$vivid_params"
    printf 'TEST_TIMEOUT=%q\n' "$test_timeout"
} > "$root/etc/e2e.conf"

cat > "$root/init" <<'INIT'
#!/bin/sh
# PID 1 of the yolod e2e VM (written by tests/e2e/vm/build-initramfs.sh).
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
hostname yolod-e2e
. /etc/e2e.conf

finish() { # CODE
    echo # the marker starts a line even after output without a newline
    echo "YOLOD-E2E-EXIT=$1"
    sync
    sleep 1 # let the UARTs drain before the power goes
    poweroff -f
    exit "$1"
}

echo "YOLOD-E2E: kernel $(uname -r), up $(cut -d' ' -f1 /proc/uptime) s"
while read -r m; do
    params=
    [ "$m" = vivid ] && params=$VIVID_PARAMS
    # shellcheck disable=SC2086
    insmod "/lib/modules/$m.ko" $params || { echo "YOLOD-E2E: insmod $m failed"; finish 125; }
done < /lib/modules/load-order
i=0
while [ ! -c /dev/video0 ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "YOLOD-E2E: no /dev/video0 after 10 s"; ls -l /dev; finish 125; }
    sleep 0.1
done
echo "YOLOD-E2E: /dev/video0 is $(cat /sys/class/video4linux/video0/name), up $(cut -d' ' -f1 /proc/uptime) s"

# The second UART carries raw test output to a host file (see run.sh).
if [ -c /dev/ttyS1 ] && stty -F /dev/ttyS1 raw -echo 2>/dev/null; then
    export E2E_OUT=/dev/ttyS1
fi
dmesg -n 1

if [ -f /test.sh ]; then
    cd /tmp
    timeout -s TERM -k 10 "$TEST_TIMEOUT" /test.sh
    rc=$?
    cd /
    finish "$rc"
fi
echo "YOLOD-E2E: no /test.sh; shell on the console, exit to power off"
setsid cttyhack sh -l
finish 0
INIT
chmod 0755 "$root/init"

(cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --quiet --reproducible) |
    gzip -6 > "$out_dir/initrd.gz.tmp"
mv "$out_dir/initrd.gz.tmp" "$out_dir/initrd.gz"
cp "$kdir/vmlinuz" "$out_dir/vmlinuz"
{
    echo "kernel: $(cat "$kdir/package") ($(cat "$kdir/release"))"
    echo "busybox: busybox-static $(basename "$bbdir" | sed 's/^busybox-static_//')"
    echo "modules: $(tr '\n' ' ' < "$kdir/load-order")"
    echo "vivid: $vivid_params"
    echo "initrd: $(du -k "$out_dir/initrd.gz" | cut -f1) KiB"
} > "$out_dir/info"
cat "$out_dir/info" >&2
