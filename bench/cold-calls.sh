#!/usr/bin/env bash
# What one probe's system calls and page faults cost in wall time when the machine has been
# idle a moment, as it is between HAProxy's polls and between bench/since_last.sh's runs: a C
# program (gcc) sleeps 20 ms, then times one kind of call done 10 times in a row (the first
# of them paying for the caches the sleep left cold), 41 times per kind; prints the median
# per call and the median first call. Kinds: the calls that name a path (open + read + close
# of a cgroup file, of /proc/stat, of /proc/meminfo, of a file in /tmp; access of a cgroup
# file), the calls on a descriptor only (fcntl, fstat), and page faults (a fresh anonymous
# page; a page of the probe's binary, which the kernel maps 16 pages at a time).
# Results: docs/BENCHMARKS.md ("One since-last probe against /bin/true").
#
# Usage: bench/cold-calls.sh      (about 10 seconds; needs gcc)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v gcc >/dev/null || { echo "bench/cold-calls.sh: needs gcc" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A cgroup file every probe of the usual layout reads: v1's CPU quota or v2's cpu.max.
cgroup_file=/sys/fs/cgroup/cpu/cpu.cfs_quota_us
[ -e "$cgroup_file" ] || cgroup_file=/sys/fs/cgroup/cpu.max
[ -e "$cgroup_file" ] || { echo "bench/cold-calls.sh: no $cgroup_file" >&2; exit 1; }
# Any binary of a few MiB serves for the file-backed faults; the probe if it is built.
mapped=target/x86_64-unknown-linux-gnu/release/lb-feedback
[ -e "$mapped" ] || mapped=$(command -v bash)
echo 7 >"$work/file"

cat >"$work/cold.c" <<'EOF'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 41, CALLS = 10 };
static char buffer[4096];

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void read_file(const char *path, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror(path); exit(1); }
    if (read(fd, buffer, len) < 0) { perror(path); exit(1); }
    close(fd);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *values) {
    qsort(values, ROUNDS, sizeof *values, by_value);
    return values[ROUNDS / 2];
}

int main(int argc, char **argv) {
    const char *cgroup = argv[1], *tmpfile = argv[2], *mapped = argv[3];
    const char *names[] = {
        "open+read+close of a cgroup file", "access of a cgroup file",
        "open+read+close of /proc/stat", "open+read+close of /proc/meminfo",
        "open+read+close of a file in /tmp", "fcntl(F_GETFD) of stdin", "fstat of stdin",
        "page fault, anonymous", "page fault, the binary (16 pages)",
    };
    int kinds = sizeof names / sizeof *names;
    int fd = open(mapped, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror(mapped); return 1; }
    size_t file_len = st.st_size & ~(size_t)0xffff;
    if (file_len < CALLS * 0x10000) { fprintf(stderr, "%s: too small\n", mapped); return 1; }
    printf("%-36s %10s %12s\n", "call (after 20 ms idle)", "per call", "first call");
    for (int kind = 0; kind < kinds; kind++) {
        double per[ROUNDS], first[ROUNDS];
        for (int round = 0; round < ROUNDS; round++) {
            char *anon = mmap(NULL, CALLS * 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            volatile char *file = mmap(NULL, file_len, PROT_READ, MAP_PRIVATE, fd, 0);
            if (anon == MAP_FAILED || file == MAP_FAILED) { perror("mmap"); return 1; }
            struct stat out;
            usleep(20000);
            double start = now_us(), after_first = start;
            for (int call = 0; call < CALLS; call++) {
                switch (kind) {
                case 0: read_file(cgroup, 64); break;
                case 1: access(cgroup, F_OK); break;
                case 2: read_file("/proc/stat", 256); break;
                case 3: read_file("/proc/meminfo", 2000); break;
                case 4: read_file(tmpfile, 64); break;
                case 5: fcntl(0, F_GETFD); break;
                case 6: fstat(0, &out); break;
                case 7: anon[call * 4096] = 1; break;
                case 8: (void)file[call * 0x10000]; break;
                }
                if (call == 0) after_first = now_us();
            }
            double end = now_us();
            per[round] = (end - start) / CALLS;
            first[round] = after_first - start;
            munmap(anon, CALLS * 4096);
            munmap((void *)file, file_len);
        }
        printf("%-36s %7.1f us %9.1f us\n", names[kind], median(per), median(first));
    }
    return 0;
}
EOF
gcc -O2 -o "$work/cold" "$work/cold.c"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
echo "cgroup file: $cgroup_file; mapped: $mapped"
"$work/cold" "$cgroup_file" "$work/file" "$mapped"
