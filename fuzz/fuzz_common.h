/* Shared by the harnesses: the parsers take paths, so each input goes into a memory-backed file
 * (memfd) and is opened through /proc/self/fd, which runs the real open/stat/read code. */
#ifndef FNN_FUZZ_COMMON_H
#define FNN_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Allocations the harnesses' inputs may legitimately ask for (a 2^20-unit dense layer) fail
 * with NULL above 64 MiB, as malloc does on a machine without the memory, so the library's
 * out-of-memory paths are fuzzed instead of libFuzzer stopping at its malloc limit. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=64:detect_leaks=1";
}

/* A path naming a file whose content is exactly data[0, size); slot picks one of a few files
 * (a harness that needs two at once). The files live as long as the process. */
static const char *fuzz_file(int slot, const uint8_t *data, size_t size)
{
    static int fds[4] = {-1, -1, -1, -1};
    static char paths[4][32];
    if (fds[slot] < 0) {
        fds[slot] = memfd_create("fnn-fuzz", 0);
        if (fds[slot] < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
    }
    if (ftruncate(fds[slot], 0) != 0 ||
        (size > 0 && pwrite(fds[slot], data, size, 0) != (ssize_t)size)) {
        perror("fuzz_file");
        abort();
    }
    return paths[slot];
}

/* A property the code under test must keep; a violation is a finding like any crash. */
#define FUZZ_CHECK(cond)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#endif
