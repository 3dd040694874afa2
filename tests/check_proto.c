/* check_proto.c - the shared answer builder and JSON writer (plugin/proto/answer.h, json.h). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "internal.h"
#include "json.h"
#include "model.h"

static mf_model_t *names_model(const char *const *names, int n)
{
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->vocab = mf_vocab_new();
    ck_assert_ptr_nonnull(m->vocab);
    for (int f = 0; f < n; f++)
        ck_assert_int_ge(mf_model_add_family(m, names[f]), 0);
    snprintf(m->version, sizeof m->version, "abc123");
    return m;
}

static mf_result_t two_families(void)
{
    mf_result_t r;
    memset(&r, 0, sizeof r);
    r.mode = MF_MODE_PAPER;
    r.ntop = 2;
    r.top[0].family = 2;
    r.top[0].score = 0.5;
    r.top[1].family = 0;
    r.top[1].score = 0.25;
    r.top[0].p = 0.75; /* a probability is printed when there is one */
    r.top[1].p = NAN;
    r.floor = 0.0;
    r.unknown = 1;
    r.novelty = 0.5;
    r.threshold = -INFINITY;
    r.calls = 42;
    snprintf(r.explain, sizeof r.explain, "a\\b\n\"c\"\x01");
    return r;
}

START_TEST(test_value_result)
{
    const char *names[] = {"alpha", "beta", "gam\"ma"};
    mf_model_t *m = names_model(names, 3);
    mf_result_t r = two_families();
    mfp_buf_t b = {0};
    mfp_value_result(&b, &r, m);
    ck_assert_str_eq(b.p, "{\"families\":[{\"family\":\"gam\\\"ma\",\"score\":0.5,\"rel\":1,"
                          "\"p\":0.75},"
                          "{\"family\":\"alpha\",\"score\":0.25,\"rel\":0.5}],\"unknown\":true,"
                          "\"novelty\":0.5,\"threshold\":null,\"mode\":\"paper\","
                          "\"model\":\"abc123\",\"calls\":42,"
                          "\"explain\":\"a\\\\b\\n\\\"c\\\"\\u0001\","
                          "\"verdict\":\"unknown (closest: gam\\\"ma, p 75 %)\"}");
    /* one number a person reads: p when there is one, else the raw score named as such */
    mfp_buf_reset(&b);
    r.unknown = 0;
    mfp_verdict(&b, &r, m);
    ck_assert_str_eq(b.p, "gam\"ma (p 75 %)");
    mfp_buf_reset(&b);
    r.top[0].p = NAN;
    r.unknown = 1;
    mfp_verdict(&b, &r, m);
    ck_assert_str_eq(b.p, "unknown (closest: gam\"ma, paper score 0.5, not a probability)");
    r.top[0].p = 0.75;
    r.unknown = 1;
    /* scores carry 10 significant digits: answers can be compared to 1e-9 */
    mfp_buf_reset(&b);
    r.top[0].score = 0.123456789012;
    mfp_value_result(&b, &r, m);
    ck_assert_ptr_nonnull(strstr(b.p, "\"score\":0.123456789,"));
    mfp_buf_free(&b);
    mf_model_free(m);
}
END_TEST

/* A family name that is not UTF-8 (a model file is input too) still gives valid JSON: each
 * byte that starts no well-formed sequence becomes U+FFFD, good sequences are kept. */
START_TEST(test_bad_utf8_family_name)
{
    const char *names[] = {"ok\xc3\xa9", "bad\xff\xc3", "cut\xe2\x82", "sur\xed\xa0\x80"};
    mf_model_t *m = names_model(names, 4);
    mf_result_t r;
    memset(&r, 0, sizeof r);
    r.ntop = 4;
    for (int i = 0; i < 4; i++)
        r.top[i].family = i, r.top[i].p = NAN;
    mfp_buf_t b = {0};
    mfp_value_result(&b, &r, m);
    ck_assert_ptr_nonnull(strstr(b.p, "\"family\":\"ok\xc3\xa9\""));
    ck_assert_ptr_nonnull(strstr(b.p, "\"family\":\"bad\\ufffd\\ufffd\""));
    ck_assert_ptr_nonnull(strstr(b.p, "\"family\":\"cut\\ufffd\\ufffd\""));
    ck_assert_ptr_nonnull(strstr(b.p, "\"family\":\"sur\\ufffd\\ufffd\\ufffd\""));
    for (const unsigned char *p = (const unsigned char *)b.p; *p; p++)
        ck_assert_msg(*p != 0xff && !(p[0] == 0xc3 && p[1] == '"'), "raw byte at %s", p);
    mfp_buf_free(&b);
    mf_model_free(m);
}
END_TEST

START_TEST(test_empty_and_error_values)
{
    const char *names[] = {"alpha"};
    mf_model_t *m = names_model(names, 1);
    mfp_buf_t b = {0};
    mf_result_t er;
    mfp_empty_result(&er, MF_MODE_KNN, 0);
    mfp_value_empty(&b, m, &er);
    ck_assert_str_eq(b.p, "{\"families\":[],\"unknown\":true,\"mode\":\"knn\","
                          "\"model\":\"abc123\",\"calls\":0,\"note\":\"no trace\","
                          "\"verdict\":\"unknown (no trace)\"}");
    mfp_buf_reset(&b);
    mfp_empty_result(&er, MF_MODE_KNN, 1);
    mfp_value_empty(&b, m, &er);
    ck_assert_ptr_nonnull(strstr(b.p, "\"note\":\"no known calls\",\"verdict\":\"unknown (no known calls)\"}"));
    /* mfp_classify answers an empty trace without scoring, by what the report held */
    mf_trace_t t;
    mf_trace_init(&t);
    mf_extract_stats_t st;
    memset(&st, 0, sizeof st);
    st.calls = 7;
    mfp_classify_opts_t o = {MF_MODE_LINEAR, 3, NAN};
    mfp_buf_reset(&b);
    mf_result_t res;
    ck_assert_int_eq(mfp_classify(NULL, m, &o, &t, &st, &b, &res), MF_OK);
    ck_assert_int_eq(res.ntop, 0);
    ck_assert_ptr_nonnull(strstr(b.p, "\"mode\":\"linear\""));
    ck_assert_ptr_nonnull(strstr(b.p, "\"note\":\"no known calls\",\"verdict\":\"unknown (no known calls)\"}"));
    /* the result says the same verdict by itself (what `malfam score` prints) */
    mfp_buf_reset(&b);
    mfp_verdict(&b, &res, m);
    ck_assert_str_eq(b.p, "unknown (no known calls)");
    mfp_buf_reset(&b);
    mfp_value_error(&b, MF_EJSON, "byte 3: bad \xff");
    ck_assert_str_eq(b.p, "{\"error\":\"MF_EJSON\",\"message\":\"byte 3: bad \\ufffd\"}");
    /* an answer line splices the value's members after ok */
    mfp_buf_t line = {0};
    mfp_answer_line(&line, "7", 0, b.p, b.n, -1);
    ck_assert_str_eq(line.p, "{\"v\":1,\"id\":7,\"ok\":false,\"error\":\"MF_EJSON\","
                             "\"message\":\"byte 3: bad \\ufffd\"}\n");
    mfp_buf_reset(&line);
    mfp_answer_line(&line, NULL, 1, "{}", 2, 1.5);
    ck_assert_str_eq(line.p, "{\"v\":1,\"id\":null,\"ok\":true,\"ms\":1.500}\n");
    mfp_buf_free(&line);
    mfp_buf_free(&b);
    mf_model_free(m);
}
END_TEST

Suite *suite_proto(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("answers");
    tcase_add_test(tc, test_value_result);
    tcase_add_test(tc, test_bad_utf8_family_name);
    tcase_add_test(tc, test_empty_and_error_values);
    suite_add_tcase(s, tc);
    return s;
}
