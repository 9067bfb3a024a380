#!/usr/bin/env python3
"""Where yolod's aarch64 instructions go, per inference, by function.

Runs `yolod bench --inference-only` under qemu-aarch64 with the counting
plugin's per-block profile (bench/qemu-insn, `profile=FILE`) for 1 and for 2
iterations, maps every block to the function that contains it (the symbol
table of an unstripped build) and prints the difference: the instructions
one inference costs, by function and by kind of work.

    CARGO_PROFILE_DIST_STRIP=false cargo build --profile dist \\
        --target aarch64-unknown-linux-musl
    python3 bench/aarch64_profile.py [--model M] [--size 640] \\
        [--cpu cortex-a76] [--top 25]
    python3 bench/aarch64_profile.py --around --precision int8 --size 320 \\
        [--image zidane.jpg | --image F --format YUYV --frame-size 640x480 | --image CLIP.h264 --h264]

With --around it profiles the work around the network instead: decode or
pixel conversion, letterbox, post-processing and JSON, per image (the
whole `bench` run minus `--inference-only`, each 2 iterations minus 1).

Deterministic like bench/aarch64_cost.sh (same CPU-part override); the
totals match its per-inference counts. Needs qemu-user, the plugin's build
needs (see bench/qemu-insn/build.sh) and binutils-aarch64-linux-gnu.
"""

import argparse
import bisect
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_PARTS = {"cortex-a76": "0xd0b", "cortex-a72": "0xd08", "cortex-a53": "0xd03"}

# Kinds of work, first match wins (demangled names). Names starting with a
# dot are the local labels of tract-linalg's assembly matmul kernels (the
# inner loop is `.packed_packed_loop_*`; `.store`, `.add_unicast` etc. are
# the fused epilogues); conv_w4 is its direct-convolution kernel.
KINDS = [
    ("matmul kernel", r"^\.|mmm_|_mmm|conv_w4|run_blocked"),
    ("im2col / packing", r"im2col|Im2Col|pack|Pack|PackingWriter|lazy_im2col|LazyIm2col"),
    ("quantize / requant", r"[Qq]uant|requant|QScale|RoundingShift|q_sum|QSum"),
    ("element-wise", r"sigmoid|silu|Silu|tanh|exp|binary|Binary|unary|ElementWise|element_wise|Scaler|map_|lut|Lut"),
    ("copy / fill (libc)", r"^(memcpy|memmove|memset|__memcpy|__memset)"),
    ("allocator", r"^(mi_|_mi_|malloc|free|calloc|realloc)|mimalloc"),
]


def symbols(binary, allow_stripped=False):
    """Sorted (address, name) of the binary's functions."""
    nm = "aarch64-linux-gnu-nm"
    out = subprocess.run([nm, "-n", "-C", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    if len(syms) < 100:
        if not allow_stripped:
            sys.exit(f"aarch64_profile: {binary} has no symbol table; build it with CARGO_PROFILE_DIST_STRIP=false")
        print(f"aarch64_profile: {binary} is stripped: totals only, no breakdown by function", file=sys.stderr)
        return [(0, "?")]
    return syms


def entry_point(binary):
    out = subprocess.run(["aarch64-linux-gnu-readelf", "-h", binary], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Entry point address:\s+0x([0-9a-f]+)", out).group(1), 16)


def run(args, plugin, iterations, tmp, inference_only=True, per_thread=False):
    # tract picks its kernels by the core's part number; --cpu-part (aarch64_cycles.py) asks for another core's.
    part = getattr(args, "cpu_part", None) or CPU_PARTS.get(args.cpu, "")
    env = dict(os.environ, TRACT_CPU_AARCH64_OVERRIDE_CPU_PART=part)
    cmd = [args.bin, "bench", "--size", str(args.size), "--iterations", str(iterations), "--warmup", "0"]
    if inference_only:
        cmd += ["--inference-only"]
    if args.model:
        cmd += ["--model", args.model]
    else:
        cmd += ["--precision", args.precision]
    if args.format:
        cmd += ["--format", args.format]
    if args.frame_size:
        cmd += ["--frame-size", args.frame_size]
    if args.convert_first:
        cmd += ["--convert-first"]
    if args.h264:
        cmd += ["--h264"]
    if getattr(args, "threads", 1) > 1:
        cmd += ["--matmul-threads", str(args.threads)]
    if args.image:
        cmd += [args.image]
    what = f"{iterations} iteration(s){'' if inference_only else ', whole image'}"
    prefix = os.path.join(tmp, f"{iterations}{'' if inference_only else '-whole'}")
    return run_command(args.qemu, args.cpu, plugin, cmd, prefix, env=env, what=what, per_thread=per_thread)


def run_command(qemu, cpu, plugin, cmd, prefix, env=None, qemu_args=(), what="run", per_thread=False):
    """Run the aarch64 `cmd` under qemu with the plugin's per-block profile;
    (guest pc, instructions) per translated block, the entry block first, or
    with per_thread (guest pc, instructions, vCPU) per block and guest
    thread (vCPU 0 is the main thread)."""
    prof, count = f"{prefix}.profile.txt", f"{prefix}.count.txt"
    full = [qemu, *qemu_args, "-cpu", cpu, "-plugin", f"{plugin},mode=tb,out={count},profile={prof}", *cmd]
    print(f"aarch64_profile: {what} under qemu {cpu} ...", file=sys.stderr, flush=True)
    subprocess.run(full, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blocks = []
    with open(prof) as f:
        for line in f:
            pc, n, vcpu = line.split()
            blocks.append((int(pc, 16), int(n), int(vcpu)) if per_thread else (int(pc, 16), int(n)))
    return blocks


def by_block(blocks, load_bias):
    """Instructions per block start address in the binary."""
    totals = defaultdict(int)
    for pc, n in blocks:
        totals[pc - load_bias] += n
    return totals


def function_of(addr, syms, addrs):
    i = bisect.bisect_right(addrs, addr) - 1
    return syms[i][1] if i >= 0 else "?"


def by_function(blocks, syms, load_bias):
    addrs = [a for a, _ in syms]
    totals = defaultdict(int)
    for pc, n in blocks:
        i = bisect.bisect_right(addrs, pc - load_bias) - 1
        totals[syms[i][1] if i >= 0 else "?"] += n
    return totals


# The stages around the network (--around), first match wins.
STAGES = [
    ("h264 decode", r"Wels|openh264|h264|_AArch64_neon|^Mc[A-Z]|Deblock|Idct"),
    ("jpeg decode", r"zune_jpeg|jpeg"),
    ("other decode", r"^image::|png|zune_|fdeflate|tiff|webp|gif"),
    ("pixel conversion", r"camera::pixel|camera::Frame|to_rgb"),
    ("letterbox", r"[Ll]etterbox|vision::sample"),
    ("post-processing", r"vision::|model::Model::postprocess|nms"),
    ("json", r"serde|wire::|ryu|itoa"),
    ("copy / fill (libc)", r"^(memcpy|memmove|memset|__memcpy|__memset)"),
    ("allocator", r"^(mi_|_mi_|malloc|free|calloc|realloc)|mimalloc"),
]


def around(args, plugin, syms, entry, tmp):
    """Per image, the whole run minus the network alone, by function."""
    per = {}
    for inference_only in (False, True):
        runs = {}
        last = 1 + args.span
        for iterations in (1, last):
            blocks = run(args, plugin, iterations, tmp, inference_only)
            runs[iterations] = by_function(blocks, syms, blocks[0][0] - entry)
        per[inference_only] = {
            n: (runs[last].get(n, 0) - runs[1].get(n, 0)) / args.span for n in set(runs[1]) | set(runs[last])
        }
    whole, network = sum(per[False].values()), sum(per[True].values())
    names = set(per[False]) | set(per[True])
    rest = {n: per[False].get(n, 0) - per[True].get(n, 0) for n in names}
    stages = defaultdict(int)
    for name, n in rest.items():
        stages[next((k for k, rx in STAGES if re.search(rx, name)), "other")] += n
    what = args.image or "synthetic 810x1080 JPEG"
    if args.h264:
        what += " (H.264, one picture per run)"
    if args.format:
        what += f" ({args.format} {args.frame_size or ''}{', converted first' if args.convert_first else ''})"
    label = os.path.basename(args.model) if args.model else f"yolov8n {args.precision}"
    print(f"{what}, {label}, size {args.size}, {args.cpu}, per image:")
    print(f"  whole run {whole / 1e9:.4f} G, network alone (--inference-only) {network / 1e9:.4f} G")
    print(f"  around the network {(whole - network) / 1e9:.4f} G = {100 * (whole - network) / network:.1f}% of the network")
    print()
    print(f"{'stage':<22} {'G':>8} {'% of net':>9}")
    for stage, n in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"{stage:<22} {n / 1e9:8.4f} {100 * n / network:8.1f}%")
    print()
    print(f"{'G':>8} {'% of net':>9}  function")
    for name, n in sorted(rest.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{n / 1e9:8.4f} {100 * n / network:8.1f}%  {short(name)}")


def short(name, width=100):
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    return name if len(name) <= width else name[: width - 3] + "..."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/aarch64-unknown-linux-musl/dist/yolod"))
    ap.add_argument("--model", help="ONNX file (default: the embedded yolov8n)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8", "auto"],
                    help="the embedded model's precision (default fp32: the reference the int8 ratios use)")
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--cpu", default="cortex-a76", choices=sorted(CPU_PARTS))
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--qemu", default="qemu-aarch64")
    ap.add_argument("--blocks", metavar="REGEX", help="also list the hottest blocks of the functions matching REGEX")
    ap.add_argument("--around", action="store_true",
                    help="profile the stages around the network instead (decode or conversion, letterbox, "
                         "post-processing, JSON): the whole run minus --inference-only, per image")
    ap.add_argument("--image", help="the image or raw frame bench runs on (default: its synthetic JPEG)")
    ap.add_argument("--format", help="IMAGE is a raw frame in this fourcc (YUYV, NV12, I420, RGB3)")
    ap.add_argument("--frame-size", help="the raw frame's WIDTHxHEIGHT")
    ap.add_argument("--h264", action="store_true", help="IMAGE is an H.264 stream (Annex B); each run decodes its next picture")
    ap.add_argument("--span", type=int, default=1, metavar="K",
                    help="--around: per image over K runs (1 and 1+K iterations), e.g. a whole H.264 group of pictures")
    ap.add_argument("--threads", type=int, default=1, metavar="T",
                    help="run with --matmul-threads T and also break the inference down by guest thread "
                         "(vCPU 0 is the main thread, which waits while tract's pool runs the parallel parts)")
    ap.add_argument("--convert-first", action="store_true",
                    help="a raw frame goes to full-size RGB before the letterbox, as before the one-pass path")
    args = ap.parse_args()

    plugin = subprocess.run([os.path.join(ROOT, "bench/qemu-insn/build.sh")], capture_output=True, text=True, check=True).stdout.split()[-1]
    syms = symbols(args.bin, allow_stripped=args.around)
    entry = entry_point(args.bin)
    if args.around:
        with tempfile.TemporaryDirectory() as tmp:
            around(args, plugin, syms, entry, tmp)
        return
    with tempfile.TemporaryDirectory() as tmp:
        runs, block_runs, thread_runs = {}, {}, {}
        for iterations in (1, 2):
            triples = run(args, plugin, iterations, tmp, per_thread=True)
            blocks = [(pc, n) for pc, n, _ in triples]
            # The profile's first block is the program's entry point: that
            # gives where qemu loaded a position-independent binary.
            runs[iterations] = by_function(blocks, syms, blocks[0][0] - entry)
            block_runs[iterations] = by_block(blocks, blocks[0][0] - entry)
            thread_runs[iterations] = {
                v: by_function([(pc, n) for pc, n, t in triples if t == v], syms, blocks[0][0] - entry)
                for v in {t for _, _, t in triples}
            }
    per = {name: runs[2].get(name, 0) - runs[1].get(name, 0) for name in set(runs[1]) | set(runs[2])}
    total = sum(per.values())

    kinds = defaultdict(int)
    for name, n in per.items():
        kind = next((k for k, rx in KINDS if re.search(rx, name)), "other")
        kinds[kind] += n

    label = os.path.basename(args.model) if args.model else "yolov8n (embedded)"
    print(f"{label}, size {args.size}, {args.cpu}: {total / 1e9:.3f} G instructions per inference")
    print()
    print(f"{'kind of work':<22} {'G':>8} {'share':>7}")
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{kind:<22} {n / 1e9:8.3f} {100 * n / total:6.1f}%")
    print()
    print(f"{'G':>8} {'share':>7}  function")
    for name, n in sorted(per.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{n / 1e9:8.3f} {100 * n / total:6.1f}%  {short(name)}")
    if args.threads > 1:
        for v in sorted(set(thread_runs[1]) | set(thread_runs[2])):
            a, b = thread_runs[1].get(v, {}), thread_runs[2].get(v, {})
            mine = {name: b.get(name, 0) - a.get(name, 0) for name in set(a) | set(b)}
            n_v = sum(mine.values())
            if n_v < 1e-3 * total:
                continue
            print()
            print(f"vCPU {v}{' (main thread)' if v == 0 else ''}: {n_v / 1e9:.3f} G instructions per inference")
            for name, n in sorted(mine.items(), key=lambda kv: -kv[1])[: args.top]:
                print(f"{n / 1e9:8.3f} {100 * n / n_v:6.1f}%  {short(name)}")
    if args.blocks:
        addrs = [a for a, _ in syms]
        rx = re.compile(args.blocks)
        hot = []
        for addr in set(block_runs[1]) | set(block_runs[2]):
            n = block_runs[2].get(addr, 0) - block_runs[1].get(addr, 0)
            name = function_of(addr, syms, addrs)
            if n > 0 and rx.search(name):
                hot.append((n, addr, name))
        print()
        print(f"{'G':>8} {'share':>7}  block       function")
        for n, addr, name in sorted(hot, reverse=True)[: args.top]:
            print(f"{n / 1e9:8.3f} {100 * n / total:6.1f}%  {addr:#010x}  {short(name, 80)}")


if __name__ == "__main__":
    main()
