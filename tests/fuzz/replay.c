/* replay.c - a plain main() for the fuzz targets: runs every file named on the command line,
 * or found (recursively) under a directory named there, once through LLVMFuzzerTestOneInput.
 * Linked with one tests/fuzz/fuzz_<entry>.c instead of libFuzzer, so `make check` replays the
 * seed and regression corpora with gcc, under ASan or valgrind, without clang.
 *
 * Each input is read into a malloc'd buffer of exactly its size, as libFuzzer does, so a read
 * past the end is caught by ASan. Exit status: 0 when every input ran (a crash aborts the
 * process, so it is never reached), 1 when a file or directory cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Present when linked with ASan/UBSan (gcc or clang): called before a sanitizer exits. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

/* The input being run, named when the process dies, so a failure in `make check` says which
 * file to rerun. Static because a signal handler has no other way to see it. */
static const char *current;

static void say_current(void)
{
    if (!current)
        return;
    /* write(2) only: this runs in a signal handler or a dying sanitizer */
    static const char pre[] = "replay: died on input ";
    ssize_t rc = write(2, pre, sizeof pre - 1);
    rc = write(2, current, strlen(current));
    rc = write(2, "\n", 1);
    (void)rc;
}

static void on_fatal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct {
    size_t files;
    uint64_t bytes;
    int verbose;
    int failed;
} replay_t;

static int run_file(replay_t *r, const char *path, off_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* exactly `size` bytes (libFuzzer does the same), so ASan sees a read one past the end */
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    size_t got = buf ? fread(buf, 1, (size_t)size, f) : 0;
    int bad = !buf || ferror(f) || got != (size_t)size;
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: short read\n", path);
        free(buf);
        return -1;
    }
    if (r->verbose)
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, got);
    current = path;
    LLVMFuzzerTestOneInput(buf, got);
    current = NULL;
    free(buf);
    r->files++;
    r->bytes += got;
    return 0;
}

static int run_path(replay_t *r, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode))
        return run_file(r, path, st.st_size);
    if (!S_ISDIR(st.st_mode) || depth > 8)
        return 0; /* FIFOs, devices, deep trees: not corpus files */

    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., and hidden files such as .gitkeep */
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *sub = malloc(n);
        if (!sub) {
            rc = -1;
            break;
        }
        snprintf(sub, n, "%s/%s", path, e->d_name);
        if (run_path(r, sub, depth + 1) != 0)
            rc = -1;
        free(sub);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    replay_t r = {0};
    int i = 1;
    signal(SIGABRT, on_fatal); /* a target's own check, or assert() */
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(say_current); /* sanitizers own SEGV and friends */
    } else {
        signal(SIGSEGV, on_fatal);
        signal(SIGBUS, on_fatal);
        signal(SIGFPE, on_fatal);
        signal(SIGILL, on_fatal);
    }
    if (i < argc && strcmp(argv[i], "-v") == 0) {
        r.verbose = 1;
        i++;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-v] FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (; i < argc; i++)
        if (run_path(&r, argv[i], 0) != 0)
            r.failed = 1;
    printf("%s: %zu inputs, %llu bytes replayed\n", argv[0], r.files,
           (unsigned long long)r.bytes);
    return r.failed;
}
