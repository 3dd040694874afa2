/* check_mf.c - error codes and the allocation-failure hook. */
#include <check.h>
#include <string.h>

#include "internal.h"
#include "mf.h"

START_TEST(test_strerror_every_code)
{
    static const int codes[] = {
#define MF_ERR_CODE(name, val, msg) MF_##name,
        MF_ERRNO_MAP(MF_ERR_CODE)
#undef MF_ERR_CODE
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(mf_strerror(codes[i]));
        ck_assert_str_ne(mf_strerror(codes[i]), "unknown error");
        ck_assert_int_eq(strncmp(mf_err_name(codes[i]), "MF_", 3), 0);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(mf_strerror(codes[i]), mf_strerror(codes[j]));
    }
    ck_assert_str_eq(mf_strerror(-9999), "unknown error");
    ck_assert_str_eq(mf_err_name(MF_EJSON), "MF_EJSON");
}
END_TEST

START_TEST(test_alloc_fail_after)
{
    mf__alloc_fail_after(2);
    void *a = mf__malloc(8);
    void *b = mf__malloc(8);
    void *c = mf__calloc(2, 8);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(mf__alloc_fail_after(0), 3);
    void *d = mf__malloc(8);
    ck_assert_ptr_nonnull(d);
    mf__free(a);
    mf__free(d);
}
END_TEST

START_TEST(test_grow)
{
    int *p = NULL;
    size_t cap = 0;
    ck_assert_int_eq(mf__grow((void **)&p, &cap, 100, sizeof *p), MF_OK);
    ck_assert_uint_ge(cap, 100);
    size_t old = cap;
    mf__alloc_fail_after(1);
    ck_assert_int_eq(mf__grow((void **)&p, &cap, old + 1, sizeof *p), MF_ENOMEM);
    mf__alloc_fail_after(0);
    ck_assert_uint_eq(cap, old); /* unchanged on failure */
    ck_assert_int_eq(mf__grow((void **)&p, &cap, (size_t)-1 / 2, sizeof *p), MF_ENOMEM);
    mf__free(p);
}
END_TEST

Suite *suite_mf(void)
{
    Suite *s = suite_create("mf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_strerror_every_code);
    tcase_add_test(tc, test_alloc_fail_after);
    tcase_add_test(tc, test_grow);
    suite_add_tcase(s, tc);
    return s;
}
