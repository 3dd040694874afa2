/* testutil.h - helpers shared by the Check suites (header-only, static). */
#ifndef MF_TESTUTIL_H
#define MF_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Root of the shared data ($MF_DATA, default ../shared/data). Fails the test loudly when it
 * is missing: real fixtures are not optional. */
static inline const char *tu_data(void)
{
    const char *d = getenv("MF_DATA");
    if (!d || !*d)
        d = "../shared/data";
    static char probe[4096];
    snprintf(probe, sizeof probe, "%s/mal-api-2019-808/ApiIndex.txt", d);
    FILE *f = fopen(probe, "r");
    ck_assert_msg(f != NULL, "shared data not found at %s (set MF_DATA)", d);
    fclose(f);
    return d;
}

/* "$MF_DATA/<rel>" in a static buffer (one at a time). */
static inline const char *tu_path(const char *rel)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s/%s", tu_data(), rel);
    return p;
}

/* Read a whole file into a malloc'd buffer; *len gets its size. NULL when it cannot. */
static inline char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; }
            else b = nb;
        }
    }
    fclose(f);
    if (len)
        *len = n;
    return b;
}

/* Python interpreter with Debian's packages (torch, django): $PYTHON or /usr/bin/python3. */
static inline const char *tu_python(void)
{
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

#endif
