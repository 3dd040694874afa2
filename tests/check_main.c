/* check_main.c - the one Check runner: every suite listed in suites.h.
 * Fork mode stays on (one crash fails one test); CK_FORK=no for gdb/valgrind.
 * Optional argument: run only the suite of that name. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUITE(x) Suite *suite_##x(void);
#include "suites.h"
#undef SUITE

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    SRunner *sr = NULL;
#define SUITE(x)                                                          \
    if (!only || strcmp(only, #x) == 0) {                                  \
        if (!sr)                                                           \
            sr = srunner_create(suite_##x());                              \
        else                                                               \
            srunner_add_suite(sr, suite_##x());                            \
    }
#include "suites.h"
#undef SUITE
    if (!sr) {
        fprintf(stderr, "check_all: no suite named %s\n", only);
        return 2;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
