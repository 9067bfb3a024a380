/* Guest program for selftest.sh: runs a fixed loop N times in each of T
 * threads (T=1: main thread only). Usage: selftest N [T]
 * SPDX-License-Identifier: AGPL-3.0-only */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static long iters;

static void *work(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg + 1;
    for (long i = 0; i < iters; i++) {
        /* one multiply-add and a few ALU ops per iteration; the asm
         * barrier keeps the compiler from folding the loop */
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        __asm__ volatile("" : "+r"(x));
    }
    return (void *)(uintptr_t)(x & 1);
}

int main(int argc, char **argv)
{
    iters = argc > 1 ? atol(argv[1]) : 1000000;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (threads <= 1) {
        return (int)(uintptr_t)work(NULL) & 0;
    }
    pthread_t t[64];
    if (threads > 64) threads = 64;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, work, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return 0;
}
