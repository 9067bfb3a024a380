#!/usr/bin/env python3
"""Estimated cycles and milliseconds of one yolod inference on ARM boards.

Instructions are not cycles: on a core without the dot product an SMLAL and
an FMLA retire at similar rates, so instruction ratios say little about
time there. This multiplies qemu's per-block execution counts by each
block's steady-state cycles from llvm-mca's model of the core:

  1. run `yolod bench --inference-only` under qemu-aarch64 with the counting
     plugin's per-block profile, for 1 and 2 iterations (as
     bench/aarch64_profile.py does); the difference is one inference;
  2. disassemble each hot block (objdump, from its start to its first
     branch: where qemu ends a translated block) and divide the block's
     instructions by its length to get its executions;
  3. ask llvm-mca for the block's cycles per iteration, the block run back
     to back (`-iterations=100`), on the core's scheduling model;
  4. sum executions x cycles over the blocks that hold --coverage of the
     instructions, and scale the rest by the covered blocks' cycles per
     instruction.

    python3 bench/aarch64_cycles.py --board pi5 --size 320 [--precision auto]
    python3 bench/aarch64_cycles.py --board pi4 --size 640 --model M.onnx

The same estimate for another runtime on the same emulated core: --ort runs
onnxruntime's own aarch64 build through bench/ort_aarch64 (see its
Cargo.toml; --model is then required, e.g. the head-map cut that
bench/ort_aarch64/cut_models.py writes), and --command runs any dynamically
linked aarch64 command whose `{n}` is replaced by the iteration count and
which copies its /proc/self/maps to `{maps}` at exit:

    python3 bench/aarch64_cycles.py --board pi5 --size 640 \
        --ort /tmp/ortnpm/libonnxruntime.so.1 --model /tmp/ortmodels/yolov8n-cut.onnx
    python3 bench/aarch64_cycles.py --board pi5 --label X \
        --command "prog --runs {n} --maps-to {maps}"

Blocks are then keyed by (file, address in the file) through the maps
(qemu-user shows the guest's), so the libraries' blocks (libonnxruntime,
libc, libstdc++, ...) are disassembled from their own files.

Boards: qemu's -cpu, llvm-mca's -mcpu, and the clock:
  pi5    Cortex-A76 @ 2.4 GHz   qemu cortex-a76, mca neoverse-n1 (the A76's
         server twin: LLVM 19 gives -mcpu=cortex-a76 the Cortex-A57 model,
         which issues one FMLA a cycle where an A76 issues two)
  orin   Cortex-A78AE @ 1.5 GHz qemu cortex-a76 (qemu 7.2 has no A78; the
         dot-product code paths are the same), mca neoverse-n1 (LLVM 19's
         cortex-a78 also maps to the A57 model; N1 is the closest real one)
  pi4    Cortex-A72 @ 1.8 GHz   qemu cortex-a72, mca cortex-a57 (the A72's
         own LLVM model)
  zero2w Cortex-A53 @ 1.0 GHz   qemu cortex-a53, mca cortex-a53

What the estimate leaves out: cache and TLB misses and memory bandwidth
(llvm-mca assumes every load hits L1), branch mispredictions, and the
front end beyond the block. It is a lower bound on time that ranks code
on one core; compare it across runtimes only with that in mind, and check
it against a published figure (BENCHMARKS.md).

Needs what bench/aarch64_profile.py needs (qemu-user, the plugin's build,
binutils-aarch64-linux-gnu) and Debian's llvm-19 (llvm-mca-19).
"""

import argparse
import bisect
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import aarch64_profile as profile  # noqa: E402  (the qemu run and the block map)

BOARDS = {
    "pi5": ("cortex-a76", "neoverse-n1", 2.4),
    "orin": ("cortex-a76", "neoverse-n1", 1.5),
    "pi4": ("cortex-a72", "cortex-a57", 1.8),
    "zero2w": ("cortex-a53", "cortex-a53", 1.0),
}
# Instructions that end a translated block.
BRANCH = re.compile(r"^(b|bl|br|blr|ret|cbz|cbnz|tbz|tbnz|b\.\w+|svc|brk|eret|blraa\w*|braa\w*|retaa\w*)$")
LINE = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{8}\s+)?(\S+)\s*(.*)$")
MAX_BLOCK = 512


def disassemble(binary, addr):
    """The block's instructions from `addr` through its first branch."""
    out = subprocess.run(
        ["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", f"--start-address={addr:#x}",
         f"--stop-address={addr + 4 * MAX_BLOCK:#x}", binary],
        capture_output=True, text=True, check=True).stdout
    insns = []
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        mnemonic, operands = m.group(2), m.group(3)
        operands = re.sub(r"\s*//.*$", "", operands)
        insns.append((mnemonic, operands))
        if BRANCH.match(mnemonic):
            break
    return insns


def load_segments(path):
    """(file offset, vaddr, file size) of each PT_LOAD segment of an ELF file."""
    out = subprocess.run(["aarch64-linux-gnu-readelf", "-lW", path], capture_output=True, text=True,
                         check=True).stdout
    segs = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            segs.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    return segs


def maps_resolver(maps_path):
    """pc -> (file, vaddr in that file) through a copy of /proc/self/maps;
    (None, pc) for code in no file (qemu's signal trampoline)."""
    regions = []
    with open(maps_path) as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) < 6 or "x" not in fields[1] or not fields[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            regions.append((start, end, int(fields[2], 16), fields[5].strip()))
    regions.sort()
    starts = [r[0] for r in regions]
    segments = {}

    def resolve(pc):
        i = bisect.bisect_right(starts, pc) - 1
        if i < 0 or pc >= regions[i][1]:
            return None, pc
        start, _, offset, path = regions[i]
        if path not in segments:
            segments[path] = load_segments(path)
        off = pc - start + offset
        for seg_off, vaddr, size in segments[path]:
            if seg_off <= off < seg_off + size:
                return path, vaddr + off - seg_off
        return None, pc

    return resolve


SPIN_LOAD = re.compile(r"^(ldar|ldapr|ldaxr|ldxr)\w*$")


def is_spin_wait(addr, insns):
    """A thread waiting for another: a short block that only re-reads a
    flag or counter with an acquire (or exclusive) load and branches back
    to itself, as onnxruntime's caller does while its pool works. Its
    instructions are time spent waiting, not work of the inference."""
    if not insns or len(insns) > 8 or not BRANCH.match(insns[-1][0]):
        return False
    target = re.search(r"([0-9a-f]+)(?:\s*<[^>]*>)?\s*$", insns[-1][1])
    if not target or int(target.group(1), 16) != addr:
        return False
    if any(m.startswith(("st", "stl")) for m, _ in insns):
        return False
    return any(SPIN_LOAD.match(m) for m, _ in insns) or any(m in ("yield", "wfe", "isb") for m, _ in insns)


def mca_source(insns):
    """The block as llvm-mca input: branch targets become a label at its top."""
    lines = [".Ltop:"]
    for mnemonic, operands in insns:
        if BRANCH.match(mnemonic):
            operands = re.sub(r"(^|,\s*)(0x)?[0-9a-f]+(\s*<[^>]*>)?\s*$", r"\1.Ltop", operands)
        lines.append(f"    {mnemonic} {operands}".rstrip())
    return "\n".join(lines) + "\n"


def block_cycles(mca, mcpu, insns):
    """Cycles per execution of the block run back to back, or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write(mca_source(insns))
        path = f.name
    try:
        out = subprocess.run([mca, "-mtriple=aarch64", f"-mcpu={mcpu}", "-mattr=+dotprod,+neon", "-iterations=100",
                              "-summary-view", "-resource-pressure=false", "-instruction-info=false", path],
                             capture_output=True, text=True)
    finally:
        os.unlink(path)
    m = re.search(r"Total Cycles:\s+(\d+)", out.stdout)
    return int(m.group(1)) / 100 if out.returncode == 0 and m else None


def pair_by_rank(first, second):
    """`first`'s (vCPU, block) counts renumbered to match `second`'s threads:
    vCPU 0 (the main thread) stays; the others are paired by rank of their
    instructions. Threads without a partner get indices of their own."""
    def ranked(counts):
        totals = defaultdict(int)
        for (vcpu, _), n in counts.items():
            totals[vcpu] += n
        return sorted((v for v in totals if v != 0), key=lambda v: -totals[v])
    theirs = ranked(second)
    spare = max([v for v, _ in second] + [0]) + 1
    to = {0: 0}
    for i, v in enumerate(ranked(first)):
        to[v] = theirs[i] if i < len(theirs) else spare + i
    out = defaultdict(int)
    for (vcpu, key), n in first.items():
        out[to[vcpu], key] += n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", choices=sorted(BOARDS), default="pi5")
    ap.add_argument("--bin", default=os.path.join(profile.ROOT, "target/aarch64-unknown-linux-musl/dist/yolod"))
    ap.add_argument("--model", help="ONNX file (default: the embedded yolov8n; required with --ort)")
    ap.add_argument("--precision", default="auto", choices=["fp32", "int8", "auto"],
                    help="the embedded model's precision (default auto: what the board runs)")
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--threads", type=int, default=1, metavar="T",
                    help="threads for one inference: yolod's --matmul-threads, onnxruntime's intra-op threads "
                         "(--command: put them in the command). Each guest thread is counted and estimated on "
                         "its own, and the critical path is reported (see --critical)")
    ap.add_argument("--critical", choices=["caller-waits", "caller-works"],
                    help="how one inference's critical path is read from the threads' cycles. caller-waits "
                         "(yolod's default: tract's rayon pool runs the parallel work while the calling thread "
                         "blocks): the main thread + the busiest other thread. caller-works (the default for "
                         "--ort and --command: onnxruntime's caller runs a share of each parallel loop): the "
                         "busiest thread. Both are lower bounds: they assume each thread's share is the same "
                         "in every parallel region")
    ap.add_argument("--pair-threads", choices=["index", "rank"], default="index",
                    help="how run 1's threads are matched with run 2's before their difference is taken. index "
                         "(default): by vCPU index, which is each thread's place in creation order when no thread "
                         "exits early (yolod, onnxruntime). rank: the main thread with the main thread, the others "
                         "by how many instructions they ran; for runtimes whose short-lived threads (ncnn's start-up "
                         "probes) make the pool's indices differ between runs")
    ap.add_argument("--ort", metavar="LIBONNXRUNTIME",
                    help="estimate onnxruntime (this aarch64 libonnxruntime.so.1) instead of yolod")
    ap.add_argument("--ort-driver", default=os.path.join(HERE, "ort_aarch64/target/aarch64-unknown-linux-gnu/release/ort_aarch64"),
                    help="bench/ort_aarch64's aarch64 build")
    ap.add_argument("--command", help="estimate this aarch64 command instead of yolod: {n} is the iteration "
                                      "count, and it must copy /proc/self/maps to {maps} at exit")
    ap.add_argument("--sysroot", default="/usr/aarch64-linux-gnu", help="qemu -L for --ort and --command")
    ap.add_argument("--cpu-part", metavar="PART",
                    help="yolod: let tract choose its kernels as on this part instead of the board's core "
                         "(e.g. 0xd08, the A72's: tract's generic f32 kernels on the A53, not its A53 ones)")
    ap.add_argument("--qemu-env", action="append", default=[], metavar="VAR=VALUE",
                    help="set in the guest's environment only (qemu -E), for --command; repeatable")
    ap.add_argument("--label", help="name of what is estimated, in the output")
    ap.add_argument("--coverage", type=float, default=0.995, help="share of instructions estimated block by block")
    ap.add_argument("--mix", type=int, default=0, metavar="N",
                    help="also print the N most executed mnemonics (with their vector arrangement) of the estimated blocks")
    ap.add_argument("--hot-blocks", type=int, default=0, metavar="N",
                    help="with several threads, also print each thread's N hottest blocks (their first instructions)")
    ap.add_argument("--qemu", default="qemu-aarch64")
    ap.add_argument("--mca", default="llvm-mca-19")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of text")
    # what aarch64_profile.run() reads; --inference-only runs on no image
    ap.set_defaults(format=None, frame_size=None, convert_first=False, h264=False, image=None)
    args = ap.parse_args()
    args.cpu, mcpu, ghz = BOARDS[args.board]
    if args.critical is None:
        args.critical = "caller-works" if args.ort or args.command else "caller-waits"
    if args.ort and args.command:
        ap.error("--ort and --command exclude each other")
    if args.ort:
        if not args.model:
            ap.error("--ort needs --model")
        args.command = " ".join(shlex.quote(a) for a in [
            args.ort_driver, "--lib", args.ort, "--model", args.model, "--size", str(args.size),
            "--threads", str(args.threads)]) + " --iterations {n} --maps {maps}"

    plugin = subprocess.run([os.path.join(HERE, "qemu-insn/build.sh")], capture_output=True, text=True,
                            check=True).stdout.split()[-1]
    with tempfile.TemporaryDirectory() as tmp:
        runs, totals = {}, {}
        for iterations in (1, 2):
            counts = defaultdict(int)  # (vCPU, (file, address)) -> instructions
            if args.command:
                maps = os.path.join(tmp, f"maps{iterations}.txt")
                cmd = [a.replace("{n}", str(iterations)).replace("{maps}", maps) for a in shlex.split(args.command)]
                qemu_args = ["-L", args.sysroot] + [a for e in args.qemu_env for a in ("-E", e)]
                blocks = profile.run_command(args.qemu, args.cpu, plugin, cmd, os.path.join(tmp, str(iterations)),
                                             qemu_args=qemu_args, what=f"{iterations} iteration(s)", per_thread=True)
                resolve = maps_resolver(maps)
                for pc, n, vcpu in blocks:
                    counts[vcpu, resolve(pc)] += n
            else:
                # A static binary: its entry block is the profile's first.
                blocks = profile.run(args, plugin, iterations, tmp, per_thread=True)
                bias = blocks[0][0] - profile.entry_point(args.bin)
                for pc, n, vcpu in blocks:
                    counts[vcpu, (args.bin, pc - bias)] += n
            runs[iterations] = counts
            # The profile's blocks must add up to the plugin's own total.
            with open(os.path.join(tmp, f"{iterations}.count.txt")) as f:
                totals[iterations] = int(f.read().split()[1])
            if sum(b[1] for b in blocks) != totals[iterations]:
                sys.exit(f"aarch64_cycles: run {iterations}: the profile holds {sum(b[1] for b in blocks)} "
                         f"instructions, the counter {totals[iterations]}")
    if args.pair_threads == "rank":
        runs[1] = pair_by_rank(runs[1], runs[2])
    per_thread = {a: runs[2].get(a, 0) - runs[1].get(a, 0) for a in set(runs[1]) | set(runs[2])}
    per = defaultdict(int)  # block -> instructions of one inference, all threads
    for (_, key), n in per_thread.items():
        per[key] += n
    # Blocks that ran less often in the longer run mean the two runs took
    # different paths. Checked over all threads together: a pool may hand
    # a block to another thread in each run (OpenMP's workers under
    # ncnn), which moves work between threads without changing the path.
    negative = -sum(n for n in per.values() if n < 0)
    one = totals[2] - totals[1]
    if negative > 0.05 * one:
        sys.exit(f"aarch64_cycles: runs 1 and 2 do not differ by one inference: the counter says {one} "
                 f"instructions, but run 2's blocks ran {negative} fewer than run 1's")
    if negative > 1e-3 * one:
        print(f"aarch64_cycles: warning: {100 * negative / one:.2f}% of an inference ran in run 1's blocks and not "
              f"in run 2's (the runs are not exactly deterministic); the estimate counts run 2's blocks", file=sys.stderr)
    moved = -sum(n for n in per_thread.values() if n < 0) - negative
    if moved > 1e-3 * one:
        print(f"aarch64_cycles: note: {100 * moved / one:.2f}% of an inference ran on other threads in run 2 than "
              f"in run 1; each thread's share is its difference between the runs", file=sys.stderr)
    per = {key: n for key, n in per.items() if n > 0}
    total = sum(per.values())

    hot, covered = [], 0
    for key, n in sorted(per.items(), key=lambda kv: -kv[1]):
        if covered >= args.coverage * total:
            break
        hot.append((key, n))
        covered += n
    print(f"aarch64_cycles: {len(hot)} blocks hold {100 * covered / total:.2f}% of {total / 1e9:.3f} G instructions; "
          f"llvm-mca -mcpu={mcpu} ...", file=sys.stderr, flush=True)

    def estimate(item):
        (path, addr), n = item
        insns = disassemble(path, addr) if path else []
        if not insns:
            return path, n, None, False, insns
        execs = n / len(insns)
        cycles = block_cycles(args.mca, mcpu, insns)
        return path, n, None if cycles is None else execs * cycles, n % len(insns) == 0, insns

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(estimate, hot))
    # Cycles per instruction of each estimated block, for the per-thread sums.
    block_cpi = {key: c / n for (key, _), (_, n, c, _, _) in zip(hot, results) if c is not None}
    block_insns = {key: insns for (key, _), (_, _, _, _, insns) in zip(hot, results)}
    spinning = {key for key, insns in block_insns.items() if is_spin_wait(key[1], insns)}
    known = [(n, c) for _, n, c, _, _ in results if c is not None]
    failed = sum(n for _, n, c, _, _ in results if c is None)
    uneven = sum(n for _, n, c, whole, _ in results if c is not None and not whole)
    cpi = sum(c for _, c in known) / sum(n for n, _ in known)
    cycles = sum(c for _, c in known) + cpi * (total - sum(n for n, _ in known))
    ms = cycles / (ghz * 1e6)
    # Per guest thread: its blocks' executions x the same cycles per block,
    # the rest at the mean. Threads under 0.1% of the work (signal or
    # bookkeeping threads) are left out of the critical path.
    # Spin-wait blocks (is_spin_wait) count as the thread's waiting, kept
    # apart: under qemu their count depends on host scheduling, and on a
    # board a waiting thread is not on the critical path.
    threads = defaultdict(lambda: [0, 0.0, 0, 0.0])  # instructions, cycles of work; the same waiting
    for (vcpu, key), n in per_thread.items():
        at = 2 if key in spinning else 0
        threads[vcpu][at] += n
        threads[vcpu][at + 1] += n * block_cpi.get(key, cpi)
    threads = {v: t for v, t in sorted(threads.items()) if t[0] >= 1e-3 * total}
    main_cycles = threads.get(0, [0, 0.0])[1]
    others = [t[1] for v, t in threads.items() if v != 0]
    if args.critical == "caller-waits":
        critical = main_cycles + max(others, default=0.0)
    else:
        critical = max(t[1] for t in threads.values())
    waiting = sum(t[2] for t in threads.values())
    work_cycles = sum(t[1] for t in threads.values())
    critical_ms = critical / (ghz * 1e6)
    # Instructions and cycles by file (the uncovered tail at the mean CPI).
    modules = defaultdict(lambda: [0, 0.0])
    for (path, _), n in per.items():
        modules[os.path.basename(path) if path else "(no file)"][0] += n
    for path, n, c, _, _ in results:
        modules[os.path.basename(path) if path else "(no file)"][1] += c if c is not None else cpi * n
    for name, (n, c) in modules.items():
        covered_here = sum(m for p, m, _, _, _ in results if (os.path.basename(p) if p else "(no file)") == name)
        modules[name][1] = c + cpi * (n - covered_here)
    mix = defaultdict(float)
    for _, n, _, _, insns in results:
        if insns:
            for mnemonic, operands in insns:
                # fmla .4s (fp32) vs .8h (fp16), sdot vs smlal ...: the first operand's arrangement
                m = re.match(r"v\d+\.(\d+[bhsd])", operands)
                mix[f"{mnemonic} .{m.group(1)}" if m else mnemonic] += n / len(insns)
    if args.label:
        label = args.label
    elif args.ort:
        label = f"onnxruntime {os.path.basename(args.ort)}, {os.path.basename(args.model)}"
    elif args.command:
        label = args.command
    else:
        label = os.path.basename(args.model) if args.model else f"yolod, yolov8n (embedded, --precision {args.precision})"
    if args.json:
        import json
        print(json.dumps({"board": args.board, "qemu_cpu": args.cpu, "mcpu": mcpu, "ghz": ghz, "model": label,
                          "size": args.size, "instructions": total, "cycles": round(cycles), "cpi": round(cpi, 4),
                          "ms": round(ms, 2), "mca_failed_share": round(failed / total, 5),
                          "uneven_share": round(uneven / total, 5), "negative_share": round(negative / one, 5),
                          "threads_asked": args.threads, "critical_rule": args.critical,
                          "critical_cycles": round(critical), "critical_ms": round(critical_ms, 2),
                          "waiting_instructions": waiting, "work_cycles": round(work_cycles),
                          "threads": [{"vcpu": v, "instructions": n, "cycles": round(c), "waiting_instructions": w,
                                       "waiting_cycles": round(wc)} for v, (n, c, w, wc) in threads.items()],
                          "modules": {k: {"instructions": v[0], "cycles": round(v[1])} for k, v in modules.items()},
                          "mix": {k: round(v) for k, v in sorted(mix.items(), key=lambda kv: -kv[1])[: args.mix]}}))
        return
    print(f"{label}, size {args.size}, {args.board} ({args.cpu} counted, llvm-mca {mcpu}, {ghz} GHz)")
    print(f"  instructions per inference  {total / 1e9:.3f} G")
    print(f"  estimated cycles            {cycles / 1e9:.3f} G  ({cpi:.3f} cycles per instruction)")
    print(f"  estimated time              {ms:.1f} ms at {ghz} GHz, all threads' work on 1 core, every load an L1 hit")
    if len(threads) > 1 or args.threads > 1:
        print(f"  per guest thread (vCPU 0 is the main thread), {args.threads} thread(s) asked:")
        for v, (n, c, w, wc) in threads.items():
            print(f"    vCPU {v:2}  work {n / 1e9:7.3f} G instr {c / 1e9:7.3f} G cycles {c / (ghz * 1e6):7.1f} ms"
                  f"   spin-waiting {w / 1e9:6.3f} G instr")
        rule = "main thread + busiest other" if args.critical == "caller-waits" else "busiest thread"
        print(f"  critical path ({rule}, work only)  {critical / 1e9:.3f} G cycles = {critical_ms:.1f} ms "
              f"({work_cycles / critical:.2f}x less than all the work on one core)")
    print(f"  blocks llvm-mca could not read: {100 * failed / total:.2f}% of instructions (scaled at the mean)")
    print(f"  blocks whose count is not a whole number of executions: {100 * uneven / total:.2f}%")
    if len(modules) > 1:
        print("  by file:")
        for name, (n, c) in sorted(modules.items(), key=lambda kv: -kv[1][0]):
            if n >= total * 1e-4:
                print(f"    {n / 1e9:8.3f} G instr {c / 1e9:8.3f} G cycles  {name}")
    if args.mix:
        print(f"  most executed mnemonics ({100 * covered / total:.1f}% of instructions):")
        for mnemonic, n in sorted(mix.items(), key=lambda kv: -kv[1])[: args.mix]:
            print(f"    {n / 1e9:8.3f} G {100 * n / total:5.1f}%  {mnemonic}")
    if args.hot_blocks and len(threads) > 1:
        for v in threads:
            mine = sorted(((n, key) for (t, key), n in per_thread.items() if t == v), reverse=True)[: args.hot_blocks]
            print(f"  vCPU {v}: hottest blocks")
            for n, (path, addr) in mine:
                text = "; ".join(f"{m} {o}".strip() for m, o in block_insns.get((path, addr), [])[:8])
                print(f"    {n / 1e9:7.3f} G  {os.path.basename(path or '?')}+{addr:#x}  {text[:150]}")


if __name__ == "__main__":
    main()
