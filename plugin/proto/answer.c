/* answer.c - answer values and protocol answer lines (see answer.h for the shapes). */
#include "answer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mf.h"
#include "proto.h"

static void put_model_mode(mfp_buf_t *b, const mf_model_t *m, int mode)
{
    mfp_buf_adds(b, ",\"mode\":");
    mfp_buf_json_cstr(b, mf_score_mode_name(mode));
    mfp_buf_adds(b, ",\"model\":");
    mfp_buf_json_str(b, m ? m->version : "", m ? strnlen(m->version, sizeof m->version) : 0);
}

/* The family name of rank i, "?" when the index is not the model's. */
static const char *fam_name(const mf_result_t *r, const mf_model_t *m, int i)
{
    int f = r->top[i].family;
    return m && f >= 0 && f < m->nfam ? m->fam[f].name : "?";
}

void mfp_verdict(mfp_buf_t *b, const mf_result_t *r, const mf_model_t *m)
{
    if (r->ntop == 0) { /* an empty trace's note (mfp_value_empty) is in explain */
        mfp_buf_printf(b, "unknown (%s)", r->explain[0] ? r->explain : "nothing scored");
        return;
    }
    const char *name = fam_name(r, m, 0);
    /* the one number a reader gets: the calibrated p; else the raw score, named as such */
    char num[96];
    if (isfinite(r->top[0].p))
        snprintf(num, sizeof num, "p %.0f %%", 100 * r->top[0].p);
    else
        snprintf(num, sizeof num, "%s score %.3g, not a probability",
                 mf_score_mode_name(r->mode), r->top[0].score);
    mfp_buf_printf(b, r->unknown ? "unknown (closest: %s, %s)" : "%s (%s)", name, num);
}

/* ,"verdict":<mfp_verdict as a JSON string> */
static void put_verdict(mfp_buf_t *b, const mf_result_t *r, const mf_model_t *m)
{
    mfp_buf_t v = {0};
    mfp_verdict(&v, r, m);
    mfp_buf_adds(b, ",\"verdict\":");
    if (v.oom)
        b->oom = 1;
    else
        mfp_buf_json_str(b, v.p, v.n);
    mfp_buf_free(&v);
}

void mfp_value_result(mfp_buf_t *b, const mf_result_t *r, const mf_model_t *m)
{
    mfp_buf_adds(b, "{\"families\":[");
    double span = r->ntop ? r->top[0].score - r->floor : 0;
    for (int i = 0; i < r->ntop; i++) {
        mfp_buf_adds(b, i ? ",{\"family\":" : "{\"family\":");
        mfp_buf_json_cstr(b, fam_name(r, m, i));
        mfp_buf_adds(b, ",\"score\":");
        mfp_buf_json_num(b, r->top[i].score);
        mfp_buf_adds(b, ",\"rel\":");
        mfp_buf_json_num(b, span > 0 ? (r->top[i].score - r->floor) / span : 1.0);
        if (isfinite(r->top[i].p)) {
            mfp_buf_adds(b, ",\"p\":");
            mfp_buf_json_num(b, r->top[i].p);
        }
        mfp_buf_adds(b, "}");
    }
    mfp_buf_adds(b, r->unknown ? "],\"unknown\":true,\"novelty\":"
                               : "],\"unknown\":false,\"novelty\":");
    mfp_buf_json_num(b, r->novelty);
    mfp_buf_adds(b, ",\"threshold\":");
    mfp_buf_json_num(b, r->threshold);
    put_model_mode(b, m, r->mode);
    mfp_buf_printf(b, ",\"calls\":%zu,\"explain\":", r->calls);
    mfp_buf_json_str(b, r->explain, strnlen(r->explain, sizeof r->explain));
    put_verdict(b, r, m);
    mfp_buf_adds(b, "}");
}

void mfp_empty_result(mf_result_t *r, int mode, int report_had_calls)
{
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->unknown = 1;
    snprintf(r->explain, sizeof r->explain, "%s", report_had_calls ? "no known calls" : "no trace");
}

void mfp_value_empty(mfp_buf_t *b, const mf_model_t *m, const mf_result_t *r)
{
    mfp_buf_adds(b, "{\"families\":[],\"unknown\":true");
    put_model_mode(b, m, r->mode);
    mfp_buf_adds(b, ",\"calls\":0,\"note\":");
    mfp_buf_json_cstr(b, r->explain);
    put_verdict(b, r, m);
    mfp_buf_adds(b, "}");
}

void mfp_value_error(mfp_buf_t *b, int rc, const char *message)
{
    mfp_buf_printf(b, "{\"error\":\"%s\",\"message\":", mf_err_name(rc));
    mfp_buf_json_cstr(b, message && *message ? message : mf_strerror(rc));
    mfp_buf_adds(b, "}");
}

int mfp_classify(const mf_scorer_t *s, const mf_model_t *m, const mfp_classify_opts_t *o,
                 const mf_trace_t *t, const mf_extract_stats_t *st, mfp_buf_t *b,
                 mf_result_t *res)
{
    mf_result_t local;
    mf_result_t *r = res ? res : &local;
    memset(r, 0, sizeof *r);
    r->mode = o->mode;
    if (t->n == 0) {
        /* nothing to rank: say so rather than guess */
        mfp_empty_result(r, o->mode, st && st->calls > 0);
        mfp_value_empty(b, m, r);
        return MF_OK;
    }
    int rc = mf_score_trace(s, o->mode, t, o->top, r);
    if (rc != MF_OK) {
        memset(r, 0, sizeof *r);
        return rc;
    }
    if (!isnan(o->threshold)) {
        r->threshold = o->threshold;
        r->unknown = r->ntop == 0 || r->novelty < o->threshold;
    }
    mfp_value_result(b, r, m);
    return MF_OK;
}

void mfp_answer_line(mfp_buf_t *b, const char *id, int ok, const char *value, size_t n,
                     double ms)
{
    mfp_buf_printf(b, "{\"v\":%d,\"id\":%s,\"ok\":%s", MFP_PROTO_VERSION,
                   id && *id ? id : "null", ok ? "true" : "false");
    /* the value is an object: splice its members in */
    if (n > 2) {
        mfp_buf_adds(b, ",");
        mfp_buf_add(b, value + 1, n - 2);
    }
    if (ms >= 0)
        mfp_buf_printf(b, ",\"ms\":%.3f", ms);
    mfp_buf_adds(b, "}\n");
}

void mfp_answer_error(mfp_buf_t *b, const char *id, int rc, const char *message)
{
    mfp_buf_t v = {0};
    mfp_value_error(&v, rc, message);
    if (v.oom) { /* still answer: the id and code need no allocation of their own */
        mfp_buf_printf(b, "{\"v\":%d,\"id\":%s,\"ok\":false,\"error\":\"%s\"}\n",
                       MFP_PROTO_VERSION, id && *id ? id : "null", mf_err_name(rc));
    } else {
        mfp_answer_line(b, id, 0, v.p, v.n, -1);
    }
    mfp_buf_free(&v);
}
