/*
 * insn_count.c - a small QEMU TCG plugin for yolod's aarch64 cost harness.
 *
 * Counts the guest instructions a qemu-user run executes and prints the
 * total when the guest exits. Written for the plugin API of QEMU 7.2
 * (QEMU_PLUGIN_VERSION 1); build it with ./build.sh, which fetches the
 * matching qemu-plugin.h.
 *
 *   qemu-aarch64 -plugin ./build/libinsn.so[,out=FILE][,mode=tb|inline|insn] PROG
 *
 * Arguments:
 *   out=FILE   write the result to FILE (default: stderr)
 *   mode=tb    (default) one callback per executed translation block; the
 *              block's instruction count is added to a counter owned by
 *              the vCPU (= guest thread in qemu-user), so the total is exact
 *              with several guest threads running at once.
 *   mode=inline one inline add of the block's instruction count per
 *              executed block into a single shared counter: the cheapest,
 *              but plain (non-atomic) adds, so only exact while at most one
 *              guest thread runs.
 *   mode=insn  one inline add of 1 per executed instruction (shared
 *              counter): slowest, exact even when a block is left part way
 *              (a faulting load), single-threaded guests only.
 *   log=on     also send the result through qemu_plugin_outs (shown with
 *              qemu's `-d plugin`, into `-D LOGFILE` if given).
 *   profile=FILE  also count instructions per translated block and per
 *              vCPU, and write `<hex guest address> <instructions> <vcpu>`
 *              lines to FILE at exit, one per translated block and vCPU that
 *              ran it (blocks translated more than once appear more than
 *              once), in translation order, so the first line is the entry
 *              block; bench/aarch64_profile.py maps them to functions. One
 *              callback per executed block, whose vCPU owns the counter it
 *              adds to: exact with several guest threads. vCPU 0 is the
 *              main thread; vCPUs from PROFILE_VCPUS - 1 up share the last
 *              counter.
 *
 * Output: a line `insns <total> vcpus <n> mode <mode>`, then one line
 * `vcpu <index> insns <count>` per vCPU that ran (mode=tb only: the inline
 * modes keep one shared counter).
 *
 * Licence: same as yolod.
 * SPDX-License-Identifier: AGPL-3.0-only
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum count_mode { MODE_TB, MODE_INLINE, MODE_INSN };

/* One counter per vCPU index, each on its own cache line so guest threads
 * running on different host threads do not share lines. qemu-user hands
 * out the lowest index not in use, so indices stay below the number of
 * threads alive at once; anything beyond the table goes to an atomic
 * overflow counter. */
#define MAX_SLOTS 1024
struct slot {
    uint64_t n;
    char pad[64 - sizeof(uint64_t)];
};
static struct slot slots[MAX_SLOTS] __attribute__((aligned(64)));
static uint64_t overflow;          /* atomic adds only */
static uint64_t shared_count;      /* inline modes */
static unsigned int vcpus_seen;    /* highest vCPU index + 1, atomic */

/* Per-block counters of profile=FILE: a list, appended to at translation
 * time (under a lock: translation may happen on several host threads). */
#define PROFILE_VCPUS 16
struct block {
    uint64_t pc;
    uint64_t n_insns;                 /* the block's length */
    uint64_t insns[PROFILE_VCPUS];    /* executed instructions, per vCPU */
    struct block *next;
};
static struct block *blocks;
static GMutex blocks_lock;
static const char *profile_path;

static enum count_mode mode = MODE_TB;
static const char *out_path;
static bool use_log;

static void on_tb_exec(unsigned int vcpu, void *udata)
{
    uint64_t n = (uint64_t)(uintptr_t)udata;
    if (vcpu < MAX_SLOTS) {
        slots[vcpu].n += n;
    } else {
        __atomic_fetch_add(&overflow, n, __ATOMIC_RELAXED);
    }
}

/* profile=FILE: the block's counter of the vCPU that runs it. In qemu-user
 * a vCPU is one guest thread on one host thread, so no two host threads
 * add to the same counter. The total goes to the vCPU's slot as in tb mode. */
static void on_profiled_tb_exec(unsigned int vcpu, void *udata)
{
    struct block *b = udata;
    b->insns[vcpu < PROFILE_VCPUS ? vcpu : PROFILE_VCPUS - 1] += b->n_insns;
    if (mode == MODE_TB) {
        on_tb_exec(vcpu, (void *)(uintptr_t)b->n_insns);
    }
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    if (profile_path) {
        struct block *b = g_new0(struct block, 1);
        b->pc = qemu_plugin_tb_vaddr(tb);
        b->n_insns = n;
        g_mutex_lock(&blocks_lock);
        b->next = blocks;
        blocks = b;
        g_mutex_unlock(&blocks_lock);
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_profiled_tb_exec,
                                             QEMU_PLUGIN_CB_NO_REGS, b);
    }
    switch (mode) {
    case MODE_TB:
        if (profile_path) {
            break; /* on_profiled_tb_exec counts */
        }
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec,
                                             QEMU_PLUGIN_CB_NO_REGS,
                                             (void *)(uintptr_t)n);
        break;
    case MODE_INLINE:
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 &shared_count, n);
        break;
    case MODE_INSN:
        for (size_t i = 0; i < n; i++) {
            struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
            qemu_plugin_register_vcpu_insn_exec_inline(
                insn, QEMU_PLUGIN_INLINE_ADD_U64, &shared_count, 1);
        }
        break;
    }
}

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
    unsigned int seen = __atomic_load_n(&vcpus_seen, __ATOMIC_RELAXED);
    (void)id;
    while (vcpu + 1 > seen &&
           !__atomic_compare_exchange_n(&vcpus_seen, &seen, vcpu + 1, false,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static const char *mode_name(void)
{
    switch (mode) {
    case MODE_INLINE: return "inline";
    case MODE_INSN: return "insn";
    default: return "tb";
    }
}

static void write_profile(void)
{
    FILE *f = fopen(profile_path, "w");
    if (!f) {
        fprintf(stderr, "insn_count: cannot write %s\n", profile_path);
        return;
    }
    g_mutex_lock(&blocks_lock);
    /* The list is newest first: reverse it so that the file is in
     * translation order and its first line is the program's entry block. */
    struct block *in_order = NULL;
    while (blocks) {
        struct block *b = blocks;
        blocks = b->next;
        b->next = in_order;
        in_order = b;
    }
    blocks = in_order;
    for (struct block *b = blocks; b; b = b->next) {
        for (unsigned int v = 0; v < PROFILE_VCPUS; v++) {
            uint64_t n = __atomic_load_n(&b->insns[v], __ATOMIC_RELAXED);
            if (n) {
                fprintf(f, "%" PRIx64 " %" PRIu64 " %u\n", b->pc, n, v);
            }
        }
    }
    g_mutex_unlock(&blocks_lock);
    fclose(f);
}

static void on_guest_exit(qemu_plugin_id_t id, void *udata)
{
    uint64_t total = __atomic_load_n(&shared_count, __ATOMIC_RELAXED);
    char line[128];
    (void)id;
    (void)udata;

    for (unsigned int i = 0; i < MAX_SLOTS; i++) {
        total += __atomic_load_n(&slots[i].n, __ATOMIC_RELAXED);
    }
    total += __atomic_load_n(&overflow, __ATOMIC_RELAXED);

    snprintf(line, sizeof(line), "insns %" PRIu64 " vcpus %u mode %s\n", total,
             __atomic_load_n(&vcpus_seen, __ATOMIC_RELAXED), mode_name());

    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (f) {
            fputs(line, f);
            for (unsigned int i = 0; mode == MODE_TB && i < MAX_SLOTS; i++) {
                uint64_t n = __atomic_load_n(&slots[i].n, __ATOMIC_RELAXED);
                if (n) {
                    fprintf(f, "vcpu %u insns %" PRIu64 "\n", i, n);
                }
            }
            fclose(f);
        } else {
            fprintf(stderr, "insn_count: cannot write %s; %s", out_path, line);
        }
    } else {
        fputs(line, stderr);
    }
    if (use_log) {
        qemu_plugin_outs(line);
    }
    if (profile_path) {
        write_profile();
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *val = eq ? eq + 1 : "";

        if (klen == 3 && strncmp(arg, "out", 3) == 0 && *val) {
            out_path = val; /* argv outlives the plugin */
        } else if (klen == 4 && strncmp(arg, "mode", 4) == 0) {
            if (strcmp(val, "tb") == 0) {
                mode = MODE_TB;
            } else if (strcmp(val, "inline") == 0) {
                mode = MODE_INLINE;
            } else if (strcmp(val, "insn") == 0) {
                mode = MODE_INSN;
            } else {
                fprintf(stderr, "insn_count: unknown mode '%s' (tb|inline|insn)\n", val);
                return -1;
            }
        } else if (klen == 7 && strncmp(arg, "profile", 7) == 0 && *val) {
            profile_path = val;
        } else if (klen == 3 && strncmp(arg, "log", 3) == 0) {
            if (!qemu_plugin_bool_parse("log", val, &use_log)) {
                fprintf(stderr, "insn_count: bad boolean '%s'\n", arg);
                return -1;
            }
        } else {
            fprintf(stderr, "insn_count: unknown argument '%s'\n", arg);
            return -1;
        }
    }

    qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
