/* mf.c - error text and the allocation wrappers with their failure hook. */
#include "mf.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

const char *mf_strerror(int err)
{
    switch (err) {
#define MF_ERR_STR(name, val, msg) case MF_##name: return msg;
        MF_ERRNO_MAP(MF_ERR_STR)
#undef MF_ERR_STR
    }
    return "unknown error";
}

const char *mf_err_name(int err)
{
    switch (err) {
#define MF_ERR_NAME(name, val, msg) case MF_##name: return "MF_" #name;
        MF_ERRNO_MAP(MF_ERR_NAME)
#undef MF_ERR_NAME
    }
    return "MF_UNKNOWN";
}

/* Failure hook state. A test-only knob; _Thread_local keeps forked Check tests and the daemon's
 * worker threads independent of each other. */
static _Thread_local size_t fail_at;   /* 0 = never fail */
static _Thread_local size_t alloc_count;

size_t mf__alloc_fail_after(size_t n)
{
    size_t made = alloc_count;
    fail_at = n;
    alloc_count = 0;
    return made;
}

static int should_fail(void)
{
    alloc_count++;
    return fail_at && alloc_count >= fail_at;
}

void *mf__malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *mf__calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *mf__realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void mf__free(void *p)
{
    free(p);
}

char *mf__strndup(const char *s, size_t n)
{
    char *d = mf__malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int mf__grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return MF_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size)
            return MF_ENOMEM;
        ncap *= 2;
    }
    void *np = mf__realloc(*p, ncap * size);
    if (!np)
        return MF_ENOMEM;
    *p = np;
    *cap = ncap;
    return MF_OK;
}

void mf__lower(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) { /* branch-free, so the compiler vectorises it */
        unsigned char c = (unsigned char)s[i];
        s[i] = (char)(c + (((unsigned)(c - 'A') < 26u) << 5));
    }
}
