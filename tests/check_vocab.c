/* check_vocab.c - the API vocabulary, on the real ApiIndex.txt and on bad files. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "mf.h"
#include "testutil.h"
#include "vocab.h"

START_TEST(test_load_apiindex)
{
    mf_vocab_t *v = NULL;
    char err[256] = "";
    ck_assert_int_eq(mf_vocab_load(&v, tu_path("mal-api-2019-808/ApiIndex.txt"), err, sizeof err),
                     MF_OK);
    ck_assert_int_eq(mf_vocab_count(v), 340);
    ck_assert_int_eq(mf_vocab_size(v), 342);
    ck_assert_ptr_null(mf_vocab_name(v, 109)); /* unused ids per the data README */
    ck_assert_ptr_null(mf_vocab_name(v, 111));
    ck_assert_str_eq(mf_vocab_name(v, 0), "__process__");
    ck_assert_int_eq(mf_vocab_find(v, "certcontrolstore", 16), 4);
    ck_assert_int_eq(mf_vocab_find(v, "CertControlStore", 16), 4); /* any case */
    ck_assert_int_eq(mf_vocab_find(v, "NoSuchApi", 9), MF_UNK);
    ck_assert_int_eq(mf_vocab_find(v, "ntclose", 7), mf_vocab_find(v, "NtClose", 7));
    mf_vocab_free(v);
}
END_TEST

START_TEST(test_add_put_find)
{
    mf_vocab_t *v = mf_vocab_new();
    ck_assert_int_eq(mf_vocab_add(v, "NtClose", 7), 0);
    ck_assert_int_eq(mf_vocab_add(v, "ntclose", 7), 0); /* same name, any case */
    ck_assert_int_eq(mf_vocab_add(v, "RegOpenKeyExW", 13), 1);
    ck_assert_str_eq(mf_vocab_name(v, 1), "regopenkeyexw");
    ck_assert_int_eq(mf_vocab_put(v, "x", 1, 0), MF_EINVAL);      /* id taken */
    ck_assert_int_eq(mf_vocab_put(v, "NTCLOSE", 7, 9), MF_EINVAL); /* name taken */
    ck_assert_int_eq(mf_vocab_put(v, "gap", 3, 9), MF_OK);
    ck_assert_int_eq(mf_vocab_size(v), 10);
    ck_assert_int_eq(mf_vocab_add(v, "next", 4), 10);
    ck_assert_int_eq(mf_vocab_add(v, "", 0), MF_EINVAL);
    char longname[MF_MAX_API_LEN + 2];
    memset(longname, 'a', sizeof longname);
    ck_assert_int_eq(mf_vocab_add(v, longname, sizeof longname), MF_ELIMIT);
    /* Growth past many rehashes keeps every name findable. */
    char name[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(name, sizeof name, "Api%d", i);
        ck_assert_int_ge(mf_vocab_add(v, name, (size_t)n), 0);
    }
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(name, sizeof name, "API%d", i);
        ck_assert_int_eq(mf_vocab_find(v, name, (size_t)n), 11 + i);
    }
    mf_vocab_t *c = mf_vocab_clone(v);
    ck_assert_int_eq(mf_vocab_count(c), mf_vocab_count(v));
    ck_assert_int_eq(mf_vocab_find(c, "gap", 3), 9);
    mf_vocab_free(c);
    mf_vocab_free(v);
    mf_vocab_free(NULL);
}
END_TEST

static int load_text(const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/mf_vocab_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    mf_vocab_t *v = NULL;
    int rc = mf_vocab_load(&v, path, err, errlen);
    ck_assert(rc == MF_OK ? v != NULL : v == NULL);
    mf_vocab_free(v);
    unlink(path);
    return rc;
}

START_TEST(test_bad_files)
{
    char err[256];
    ck_assert_int_eq(load_text("a=0\nb=1\n\n", err, sizeof err), MF_OK);
    ck_assert_int_eq(load_text("a=0\nnoequals\n", err, sizeof err), MF_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, ":2:"));
    ck_assert_int_eq(load_text("a=0\na=1\n", err, sizeof err), MF_EFORMAT);  /* dup name */
    ck_assert_int_eq(load_text("a=0\nb=0\n", err, sizeof err), MF_EFORMAT);  /* dup id */
    ck_assert_int_eq(load_text("a=-1\n", err, sizeof err), MF_EFORMAT);
    ck_assert_int_eq(load_text("a=12x\n", err, sizeof err), MF_EFORMAT);
    ck_assert_int_eq(load_text("=3\n", err, sizeof err), MF_EFORMAT);
    ck_assert_int_eq(load_text("a=99999999\n", err, sizeof err), MF_EFORMAT);
    mf_vocab_t *v = NULL;
    ck_assert_int_eq(mf_vocab_load(&v, "/nonexistent/ApiIndex.txt", err, sizeof err), MF_EIO);
}
END_TEST

START_TEST(test_oom_load)
{
    const char *path = tu_path("mal-api-2019-808/ApiIndex.txt");
    for (size_t n = 1;; n++) {
        mf_vocab_t *v = NULL;
        mf__alloc_fail_after(n);
        int rc = mf_vocab_load(&v, path, NULL, 0);
        size_t made = mf__alloc_fail_after(0);
        if (rc == MF_OK) {
            ck_assert_uint_lt(made, n); /* succeeded without reaching the failure */
            mf_vocab_free(v);
            break;
        }
        ck_assert_int_eq(rc, MF_ENOMEM);
        ck_assert_ptr_null(v);
    }
}
END_TEST

Suite *suite_vocab(void)
{
    Suite *s = suite_create("vocab");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_load_apiindex);
    tcase_add_test(tc, test_add_put_find);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_oom_load);
    suite_add_tcase(s, tc);
    return s;
}
