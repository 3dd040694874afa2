/* eval.c - `malfam eval`: the scoring modes measured side by side on a labelled split
 * (tables, JSON and SVG reports, open set, cross-validation, pattern regeneration), with the
 * model and samples of source.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cli.h"
#include "dataset.h"
#include "eval.h"
#include "json.h"
#include "mf.h"
#include "model.h"
#include "pattern.h"
#include "score.h"
#include "trace.h"
#include "vocab.h"

static const char *fam_name(const mf_model_t *m, int f)
{
    return f >= 0 && f < m->nfam && m->fam[f].name ? m->fam[f].name : "?";
}

/* ---- printing ----------------------------------------------------------------------------- */

/* Reliability bins of the top-1 p (10 of width 0.1) for the expected calibration error. */
enum { ECE_BINS = 10 };

typedef struct run {
    int mode;
    double thr;
    mf_metrics_t mt;
    size_t bin_n[ECE_BINS];   /* known-family answers with a p in the bin */
    double bin_p[ECE_BINS];   /* their summed top-1 p */
    double bin_ok[ECE_BINS];  /* how many of them had the right top-1 family */
    double ci[3][2];          /* 95 % intervals of top1, top3 (Wilson), macro-F1 (bootstrap) */
} run_t;

static void ece_add(run_t *r, int truth, const mf_result_t *res)
{
    if (truth < 0 || truth >= r->mt.nclass || res->ntop < 1 || !isfinite(res->top[0].p))
        return;
    int b = (int)(res->top[0].p * ECE_BINS);
    b = b < 0 ? 0 : b >= ECE_BINS ? ECE_BINS - 1 : b;
    r->bin_n[b]++;
    r->bin_p[b] += res->top[0].p;
    r->bin_ok[b] += res->top[0].family == truth;
}

/* Expected calibration error of the top-1 p: sum over the bins of |accuracy - mean p|
 * weighted by the bin's share of the answers; NAN when no answer had a p. */
static double ece(const run_t *r)
{
    size_t n = 0;
    double e = 0;
    for (int b = 0; b < ECE_BINS; b++) {
        n += r->bin_n[b];
        e += fabs(r->bin_ok[b] - r->bin_p[b]);
    }
    return n ? e / (double)n : NAN;
}

/* One answer of the evaluation, for the JSON's per-report predictions. */
typedef struct pred {
    int guess;      /* top-1 family, -1 when nothing was ranked */
    int unknown;
    double p;       /* its probability, NAN when the mode has none */
} pred_t;

/* Classes a table shows: those with samples (a model family absent from the data would only
 * add rows of zeros). */
static int has_samples(const mf_metrics_t *mt, int c)
{
    return mt->cls_n[c] > 0;
}

/* Precision and recall of class c's top-1 guess, from the confusion matrix (0 when there is
 * no guess of c / no sample of c). */
static void prec_recall(const mf_metrics_t *mt, int c, double *prec, double *rec)
{
    size_t k = (size_t)mt->nclass, col = 0, row = 0, tp = mt->conf[(size_t)c * k + c];
    for (size_t j = 0; j < k; j++) {
        col += mt->conf[j * k + c];
        row += mt->conf[(size_t)c * k + j];
    }
    *prec = col ? (double)tp / col : 0.0;
    *rec = row ? (double)tp / row : 0.0;
}

/* Width of the name column: the longest shown name, so long names stay aligned. */
static int name_width(const mf_model_t *m, const mf_metrics_t *mt)
{
    int w = 10;
    for (int c = 0; c < mt->nclass; c++)
        if (has_samples(mt, c) && (int)strlen(fam_name(m, c)) > w)
            w = (int)strlen(fam_name(m, c));
    return w;
}

static void print_tables(FILE *f, const mf_model_t *m, const run_t *r)
{
    const mf_metrics_t *mt = &r->mt;
    int w = name_width(m, mt), shown = 0, skipped = 0;
    fprintf(f, "\n[%s] per class (classes with samples)\n  %3s %-*s %5s %6s %6s %6s %6s %6s\n",
            mf_score_mode_name(r->mode), "#", w, "class", "n", "top-1", "top-3", "prec", "recall",
            "F1");
    for (int c = 0; c < mt->nclass; c++) {
        if (!has_samples(mt, c)) {
            skipped++;
            continue;
        }
        double prec, rec;
        prec_recall(mt, c, &prec, &rec);
        fprintf(f, "  %3d %-*s %5zu  %.3f  %.3f  %.3f  %.3f  %.3f\n", ++shown, w, fam_name(m, c),
                mt->cls_n[c], (double)mt->cls_top1[c] / mt->cls_n[c],
                (double)mt->cls_top3[c] / mt->cls_n[c], prec, rec, mf_metrics_f1(mt, c));
    }
    if (skipped)
        fprintf(f, "  (%d famil%s of the model without samples here not shown)\n", skipped,
                skipped == 1 ? "y" : "ies");
    /* columns are numbered as the rows above: names of any length keep the grid aligned;
     * a class without samples gets a column only when something was guessed as it */
    int cw = 4;
    for (size_t i = 0; i < (size_t)mt->nclass * mt->nclass; i++)
        for (size_t v = mt->conf[i]; v >= 1000; v /= 10)
            cw = cw > 9 ? cw : cw + 1;
    int *col = calloc((size_t)mt->nclass, sizeof *col);
    if (!col)
        return;
    for (int b = 0, k = 0; b < mt->nclass; b++) {
        size_t sum = 0;
        for (int a = 0; a < mt->nclass; a++)
            sum += mt->conf[(size_t)a * mt->nclass + b];
        col[b] = has_samples(mt, b) ? ++k : sum ? -1 : 0; /* -1: guessed, no samples */
    }
    fprintf(f, "[%s] confusion (rows = truth, columns = top-1 guess, numbered as the rows)\n"
               "  %3s %-*s", mf_score_mode_name(r->mode), "", w, "");
    for (int b = 0; b < mt->nclass; b++)
        if (col[b] > 0)
            fprintf(f, " %*d", cw, col[b]);
        else if (col[b] < 0)
            fprintf(f, " %*.*s", cw, cw, fam_name(m, b));
    fprintf(f, "\n");
    for (int a = 0, k = 0; a < mt->nclass; a++) {
        if (!has_samples(mt, a))
            continue;
        fprintf(f, "  %3d %-*s", ++k, w, fam_name(m, a));
        for (int b = 0; b < mt->nclass; b++)
            if (col[b])
                fprintf(f, " %*zu", cw, mt->conf[(size_t)a * mt->nclass + b]);
        fprintf(f, "\n");
    }
    int extra = 0;
    for (int b = 0; b < mt->nclass; b++)
        if (col[b] < 0)
            fprintf(f, "%s %s", extra++ ? "," : "  unnumbered columns: guessed, without samples here:",
                    fam_name(m, b));
    if (extra)
        fprintf(f, "\n");
    free(col);
}

/* The mean over left-out families of each open-set figure (what the targets are set on). */
static mf_openset_t openset_mean(const mf_openset_t *os, int n)
{
    mf_openset_t m = {0};
    for (int i = 0; i < n; i++) {
        m.auroc += os[i].auroc / n;
        m.fu_rate += os[i].fu_rate / n;
        m.detect += os[i].detect / n;
        m.detect_at += os[i].detect_at / n;
    }
    return m;
}

/* What --leave-out measured: a row per mode and family left out (os[i] of mode[i], family
 * fam[i]), and each mode's mean over its rows when it has several (computed once: printed and
 * written to the JSON). */
typedef struct leave_out {
    mf_openset_t *os;
    int *mode, *fam, n;
    mf_openset_t mean[MF_NMODES];
    int mean_mode[MF_NMODES], mean_fams[MF_NMODES], nmean;
} leave_out_t;

/* The --json report, appended to out with the shared writer (json.h); check out->oom after. */
static void write_json(mfp_buf_t *out, const cli_src_t *s, const run_t *runs, int nrun,
                       const leave_out_t *lo, const pred_t *pred)
{
    const mf_model_t *m = s->m;
    mfp_buf_adds(out, "{\"split\":");
    mfp_buf_json_cstr(out, s->split == MF_SPLIT_TEST    ? "test"
                           : s->split == MF_SPLIT_TRAIN ? "train"
                                                        : "all");
    mfp_buf_adds(out, ",\"model\":");
    mfp_buf_json_cstr(out, s->model ? s->model : "(train split, in memory)");
    mfp_buf_adds(out, ",\"fu_rate\":");
    mfp_buf_json_num(out, s->fu_rate);
    const mf_score_opts_t *o = &s->o;
    mfp_buf_printf(out, ",\"options\":{\"ngram_n\":%d,\"knn_k\":%d,\"knn_hi\":%d,"
                        "\"knn_idf\":%d,\"combo_hi\":%d,\"fuse_w\":%d,\"lin_hi\":%d,"
                        "\"lin_c\":%d,\"lin_bal\":%d,\"lin_df\":%d,\"lin_tf\":%d,"
                        "\"lin_proto\":%d,\"lin_fthr\":%d,\"lin_nov\":%d,\"nov_protos\":%d}",
                   o->ngram_n, o->knn_k, o->knn_hi, o->knn_idf, o->combo_hi, o->fuse_w,
                   o->lin_hi, o->lin_c, o->lin_bal, o->lin_df, o->lin_tf, o->lin_proto,
                   o->lin_fthr, o->lin_nov, o->nov_protos);
    mfp_buf_adds(out, ",\"classes\":[");
    for (int c = 0; c < m->nfam; c++) {
        mfp_buf_adds(out, c ? "," : "");
        mfp_buf_json_cstr(out, fam_name(m, c));
    }
    mfp_buf_adds(out, "],\"modes\":[");
    for (int i = 0; i < nrun; i++) {
        const mf_metrics_t *mt = &runs[i].mt;
        mfp_buf_printf(out, "%s{\"mode\":", i ? "," : "");
        mfp_buf_json_cstr(out, mf_score_mode_name(runs[i].mode));
        mfp_buf_printf(out, ",\"n\":%zu,\"top1\":", mt->n);
        mfp_buf_json_num(out, mf_metrics_top1(mt));
        mfp_buf_adds(out, ",\"top3\":");
        mfp_buf_json_num(out, mf_metrics_top3(mt));
        mfp_buf_adds(out, ",\"macro_f1\":");
        mfp_buf_json_num(out, mf_metrics_macro_f1(mt));
        static const char *const ci_key[3] = {"top1_ci", "top3_ci", "macro_f1_ci"};
        for (int j = 0; j < 3; j++) {
            mfp_buf_printf(out, ",\"%s\":[", ci_key[j]);
            mfp_buf_json_num(out, runs[i].ci[j][0]);
            mfp_buf_adds(out, ",");
            mfp_buf_json_num(out, runs[i].ci[j][1]);
            mfp_buf_adds(out, "]");
        }
        mfp_buf_adds(out, ",\"unknown_rate\":");
        mfp_buf_json_num(out, mf_metrics_unknown_rate(mt));
        mfp_buf_adds(out, ",\"mean_p_top1\":");
        mfp_buf_json_num(out, mf_metrics_mean_p(mt));
        mfp_buf_adds(out, ",\"log_loss\":");
        mfp_buf_json_num(out, mf_metrics_log_loss(mt));
        mfp_buf_adds(out, ",\"ece\":");
        mfp_buf_json_num(out, ece(&runs[i]));
        mfp_buf_adds(out, ",\"threshold\":");
        mfp_buf_json_num(out, runs[i].thr);
        mfp_buf_printf(out, ",\"foreign\":%zu,\"foreign_unknown\":%zu,\"per_class\":[",
                       mt->foreign, mt->foreign_unknown);
        for (int c = 0; c < mt->nclass; c++) {
            mfp_buf_printf(out, "%s{\"class\":", c ? "," : "");
            mfp_buf_json_cstr(out, fam_name(m, c));
            mfp_buf_printf(out, ",\"n\":%zu,\"top1\":", mt->cls_n[c]);
            mfp_buf_json_num(out, mt->cls_n[c] ? (double)mt->cls_top1[c] / mt->cls_n[c] : 0.0);
            mfp_buf_adds(out, ",\"top3\":");
            mfp_buf_json_num(out, mt->cls_n[c] ? (double)mt->cls_top3[c] / mt->cls_n[c] : 0.0);
            double prec, rec;
            prec_recall(mt, c, &prec, &rec);
            mfp_buf_adds(out, ",\"precision\":");
            mfp_buf_json_num(out, prec);
            mfp_buf_adds(out, ",\"recall\":");
            mfp_buf_json_num(out, rec);
            mfp_buf_adds(out, ",\"f1\":");
            mfp_buf_json_num(out, mf_metrics_f1(mt, c));
            mfp_buf_adds(out, "}");
        }
        mfp_buf_adds(out, "],\"confusion\":[");
        for (int a = 0; a < mt->nclass; a++) {
            mfp_buf_printf(out, "%s[", a ? "," : "");
            for (int b = 0; b < mt->nclass; b++)
                mfp_buf_printf(out, "%s%zu", b ? "," : "",
                               mt->conf[(size_t)a * mt->nclass + b]);
            mfp_buf_adds(out, "]");
        }
        mfp_buf_adds(out, "]}");
    }
    mfp_buf_adds(out, "],\"leave_out\":[");
    const mf_openset_t *os = lo->os;
    for (int i = 0; i < lo->n; i++) {
        mfp_buf_printf(out, "%s{\"mode\":", i ? "," : "");
        mfp_buf_json_cstr(out, mf_score_mode_name(lo->mode[i]));
        mfp_buf_adds(out, ",\"class\":");
        mfp_buf_json_cstr(out, fam_name(m, lo->fam[i]));
        mfp_buf_adds(out, ",\"auroc\":");
        mfp_buf_json_num(out, os[i].auroc);
        mfp_buf_adds(out, ",\"threshold\":");
        mfp_buf_json_num(out, os[i].thr);
        mfp_buf_adds(out, ",\"false_unknown\":");
        mfp_buf_json_num(out, os[i].fu_rate);
        mfp_buf_adds(out, ",\"detected\":");
        mfp_buf_json_num(out, os[i].detect);
        mfp_buf_adds(out, ",\"detected_at_rate\":");
        mfp_buf_json_num(out, os[i].detect_at);
        mfp_buf_printf(out, ",\"n_known\":%zu,\"n_out\":%zu}", os[i].nknown, os[i].nout);
    }
    /* each mode's means over its left-out families, when there are several (as printed) */
    mfp_buf_adds(out, "],\"leave_out_mean\":[");
    for (int k = 0; k < lo->nmean; k++) {
        const mf_openset_t *mean = &lo->mean[k];
        mfp_buf_printf(out, "%s{\"mode\":", k ? "," : "");
        mfp_buf_json_cstr(out, mf_score_mode_name(lo->mean_mode[k]));
        mfp_buf_printf(out, ",\"families\":%d,\"auroc\":", lo->mean_fams[k]);
        mfp_buf_json_num(out, mean->auroc);
        mfp_buf_adds(out, ",\"false_unknown\":");
        mfp_buf_json_num(out, mean->fu_rate);
        mfp_buf_adds(out, ",\"detected\":");
        mfp_buf_json_num(out, mean->detect);
        mfp_buf_adds(out, ",\"detected_at_rate\":");
        mfp_buf_json_num(out, mean->detect_at);
        mfp_buf_adds(out, "}");
    }
    /* per report: its line in the source (index.csv or the report list), its label, and
     * each mode's top-1 guess (null when nothing was ranked), unknown flag and p */
    mfp_buf_adds(out, "],\"predictions\":[");
    size_t k = 0;
    for (size_t i = 0; pred && i < s->ds.n; i++) {
        const mf_sample_t *x = &s->ds.samples[i];
        if (s->split != MF_SPLIT_ANY && x->split != s->split)
            continue;
        mfp_buf_printf(out, "%s{\"line\":%d,\"truth\":", k ? "," : "", x->row + 1);
        mfp_buf_json_cstr(out, x->label >= 0 && x->label < s->ds.nlabels ? s->ds.labels[x->label]
                                                                       : "?");
        mfp_buf_adds(out, ",\"guesses\":[");
        for (int r = 0; r < nrun; r++) {
            const pred_t *q = &pred[k * MF_NMODES + (size_t)r];
            mfp_buf_printf(out, "%s{\"mode\":", r ? "," : "");
            mfp_buf_json_cstr(out, mf_score_mode_name(runs[r].mode));
            mfp_buf_adds(out, ",\"family\":");
            if (q->guess >= 0)
                mfp_buf_json_cstr(out, fam_name(m, q->guess));
            else
                mfp_buf_adds(out, "null");
            mfp_buf_printf(out, ",\"unknown\":%s", q->unknown ? "true" : "false");
            if (isfinite(q->p)) {
                mfp_buf_adds(out, ",\"p\":");
                mfp_buf_json_num(out, q->p);
            }
            mfp_buf_adds(out, "}");
        }
        mfp_buf_adds(out, "]}");
        k++;
    }
    mfp_buf_adds(out, "]}\n");
}

/* ---- SVG ----------------------------------------------------------------------------------
 * Hand-written, self-contained: per-class top-3 bars (one colour per mode), then one
 * confusion heat map per mode (cell shade = share of the row). */

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

/* s with XML's special characters escaped. */
static void svg_esc(FILE *f, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '<')
            fputs("&lt;", f);
        else if (*p == '>')
            fputs("&gt;", f);
        else if (*p == '&')
            fputs("&amp;", f);
        else
            fputc(*p, f);
    }
}

/* A text; rotated by `rot` degrees about (x, y) when rot != 0. A name longer than `maxc`
 * characters (maxc > 0) is cut with "..." and keeps its whole self in a <title> tooltip, so
 * labels never run into their neighbours. */
static void svg_label(FILE *f, double x, double y, const char *anchor, int size, const char *s,
                      int maxc, int rot)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"", x, y, anchor,
            size);
    if (rot)
        fprintf(f, " transform=\"rotate(%d %.1f %.1f)\"", rot, x, y);
    fputc('>', f);
    if (maxc > 0 && (int)strlen(s) > maxc) {
        char cut[64];
        snprintf(cut, sizeof cut, "%.*s...", maxc - 3 < 60 ? maxc - 3 : 60, s);
        fputs("<title>", f);
        svg_esc(f, s);
        fputs("</title>", f);
        svg_esc(f, cut);
    } else {
        svg_esc(f, s);
    }
    fputs("</text>\n", f);
}

static void svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *s)
{
    svg_label(f, x, y, anchor, size, s, 0, 0);
}

#define SVG_NAME 16 /* characters of a class name on an axis (the rest in its tooltip) */

static void write_svg(FILE *f, const cli_src_t *s, const run_t *runs, int nrun)
{
    const mf_model_t *m = s->m;
    /* the classes with samples, as in the tables */
    int *cls = calloc((size_t)m->nfam + 1, sizeof *cls), nc = 0;
    if (!cls)
        return;
    for (int c = 0; c < m->nfam; c++)
        if (nrun > 0 && has_samples(&runs[0].mt, c))
            cls[nc++] = c;
    /* axis labels are rotated and cut at SVG_NAME characters: their extent is bounded */
    double name_px = SVG_NAME * 6.0 * 0.75; /* a cut name at font size 10, rotated 45 deg */
    double bw = 10, gap = 14, cw = nrun * bw + gap; /* bar width, gap between classes */
    double ch = 200, left = 50, top = 50;           /* chart height and margins */
    double chart_w = left + nc * cw + 200;
    double cell = 24, colh = SVG_NAME * 5.0 + 10;   /* heat map cell, column label height */
    double hm_w = 110 + nc * cell + 20, hm_h = 50 + colh + nc * cell;
    int per_row = (int)(chart_w / hm_w) > 0 ? (int)(chart_w / hm_w) : 1;
    if (per_row > nrun)
        per_row = nrun > 0 ? nrun : 1;
    double W = chart_w > per_row * hm_w ? chart_w : per_row * hm_w;
    double hm_top = top + ch + name_px + 40;
    double H = hm_top + ((nrun + per_row - 1) / per_row) * hm_h;
    char t[256];
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" "
               "fill=\"white\"/>\n", W, H);
    snprintf(t, sizeof t, "malfam eval: per-class top-3 accuracy by mode (%s split)",
             s->split == MF_SPLIT_TEST ? "test" : s->split == MF_SPLIT_TRAIN ? "train" : "all");
    svg_text(f, left, 24, "start", 15, t);
    for (int g = 0; g <= 4; g++) { /* grid every 0.25 */
        double y = top + ch - g * ch / 4;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                left, y, left + nc * cw, y);
        snprintf(t, sizeof t, "%.2f", g / 4.0);
        svg_text(f, left - 4, y + 4, "end", 10, t);
    }
    for (int j = 0; j < nc; j++) {
        int c = cls[j];
        for (int i = 0; i < nrun; i++) {
            const mf_metrics_t *mt = &runs[i].mt;
            double v = (double)mt->cls_top3[c] / mt->cls_n[c];
            double x = left + j * cw + gap / 2 + i * bw;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                       "<title>", x, top + ch - v * ch, bw - 1, v * ch, palette[i % 10]);
            svg_esc(f, fam_name(m, c));
            fprintf(f, " %s: %.3f</title></rect>\n", mf_score_mode_name(runs[i].mode), v);
        }
        /* rotated 45 degrees, ending under its group: neighbours never overlap */
        svg_label(f, left + j * cw + cw / 2, top + ch + 12, "end", 10, fam_name(m, c), SVG_NAME,
                  -45);
    }
    for (int i = 0; i < nrun; i++) { /* legend with the overall figures */
        double y = top + 10 + i * 16;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>\n",
                left + nc * cw + 10, y - 9, palette[i % 10]);
        snprintf(t, sizeof t, "%s %.2f/%.2f/%.2f", mf_score_mode_name(runs[i].mode),
                 mf_metrics_top1(&runs[i].mt), mf_metrics_top3(&runs[i].mt),
                 mf_metrics_macro_f1(&runs[i].mt));
        svg_text(f, left + nc * cw + 24, y, "start", 10, t);
    }
    svg_text(f, left + nc * cw + 10, top + 14 + nrun * 16, "start", 9, "top-1/top-3/macro-F1");
    for (int i = 0; i < nrun; i++) {
        const mf_metrics_t *mt = &runs[i].mt;
        double ox = (i % per_row) * hm_w, oy = hm_top + (i / per_row) * hm_h;
        double gy = oy + 20 + colh; /* top of the grid */
        snprintf(t, sizeof t, "confusion: %s (rows truth, columns guess)",
                 mf_score_mode_name(runs[i].mode));
        svg_text(f, ox + 10, oy, "start", 11, t);
        for (int ja = 0; ja < nc; ja++) {
            int a = cls[ja];
            size_t row = 0;
            for (int b = 0; b < m->nfam; b++)
                row += mt->conf[(size_t)a * m->nfam + b];
            svg_label(f, ox + 106, gy + ja * cell + cell / 2 + 3, "end", 9, fam_name(m, a),
                      SVG_NAME, 0);
            for (int jb = 0; jb < nc; jb++) {
                int b = cls[jb];
                size_t v = mt->conf[(size_t)a * m->nfam + b];
                double share = row ? (double)v / row : 0.0;
                int shade = 255 - (int)(share * 200);
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"rgb(%d,%d,255)\" stroke=\"white\"><title>",
                        ox + 110 + jb * cell, gy + ja * cell, cell, cell, shade, shade);
                svg_esc(f, fam_name(m, a));
                fputs(" as ", f);
                svg_esc(f, fam_name(m, b));
                fprintf(f, ": %zu</title></rect>\n", v);
                snprintf(t, sizeof t, "%zu", v);
                svg_text(f, ox + 110 + jb * cell + cell / 2, gy + ja * cell + cell / 2 + 3,
                         "middle", 8, t);
            }
        }
        /* column names upright (rotated 90 degrees), one per cell width: no overlap */
        for (int jb = 0; jb < nc; jb++)
            svg_label(f, ox + 110 + jb * cell + cell / 2 + 3, gy - 4, "start", 9,
                      fam_name(m, cls[jb]), SVG_NAME, -90);
    }
    fprintf(f, "</svg>\n");
    free(cls);
}

/* ---- malfam eval -------------------------------------------------------------------------- */

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: malfam eval [--model MODEL] (--calls FILE --index FILE --api-index FILE |\n"
            "                   --reports LIST.csv) [--split test|train|all] [--mode M|all]\n"
            "                   [--json OUT.json] [--svg OUT.svg] [--leave-out CLASS,...|all]\n"
            "                   [--cv K] [--fu-rate R] [--seed N] [--ngram-n N] [--knn-k K]\n"
            "                   [--knn-hi N] [--knn-idf 0|1] [--combo-hi N] [--fuse-w 0..100]\n"
            "                   [--lin-hi N] [--lin-c C100] [--lin-bal 0|1] [--lin-df N]\n"
            "                   [--lin-tf 0|1] [--lin-proto W100] [--lin-nov 0..5]\n"
            "                   [--lin-fthr 0|1] [--nov-protos -1|0|N] [--max-len N]\n"
            "                   [--seeds N] [--gen-seed S] [--gen-len N] [--temp X] [--top-p P]\n"
            "                   [--start ID] [--no-repeat N] [--restart N] [--segment N]\n"
            "                   [--min-count N] [--gen-distinct D|-1] [--quiet]\n"
            "Modes (--mode M, or all): " CLI_MODE_NAMES "\n"
            "Generation flags regenerate every family's pattern before scoring, from the LSTM\n"
            "that sampled it (the gen_epoch snapshot when the model holds one, else the final\n"
            "network; defaults: the model's gen_len/temp/seed, start = its pattern's first\n"
            "call, so --seeds 1 alone replays the stored patterns exactly);\n"
            "--seeds N also prints the pattern modes for seeds S..S+N-1 with mean +- sd.\n"
            "Without --model, a model is built in memory from the train split (reference\n"
            "modes only: nn, knn, combo, linear). --cv K: K-fold cross-validation over the\n"
            "train split (reference modes, with a small grid of their options); the test\n"
            "split is not read; a --lin-hi or --lin-c given narrows linear's grid to it.\n"
            "--lin-c is the linear SVM's C in hundredths (100 = 1); --lin-bal 1 balances its\n"
            "costs by class; --lin-df N keeps n-grams of >= N training traces; --lin-tf 1\n"
            "values an n-gram by its presence (binary), 0 by 1 + ln count; --lin-proto W\n"
            "adds W/100 x the cosine to the family's nearest reference; --lin-nov\n"
            "judges linear's unknown on combo's similarity (0), its best decision value (1)\n"
            "or its top probability (2), or that times combo's (3), or the weakest of 3, the\n"
            "decision-value margin and combo's similarity to the top family (4), or the\n"
            "weaker of 3 and the compression distance to the top family's nearest reference\n"
            "(5), each against its 5 %% quantile and median on the references; --lin-fthr 1\n"
            "gives each family its own threshold of it; --nov-protos N takes combo's part\n"
            "(and 5's distance) over N prototypes per family (0 = every reference, -1 =\n"
            "auto: all up to 2000).\n"
            "--max-len N: the in-memory model's trace cap\n"
            "(default 5000, 0 = all; a --model keeps its own). --leave-out A,B leaves each\n"
            "family named out in turn (all: every family with samples here), with a line\n"
            "on stderr after each (time, ETA) unless --quiet. --leave-out with\n"
            "--split train scores the references: kept ones as calibrated (leave-one-out, or\n"
            "out-of-fold for linear's own novelty), the left-out family's without it.\n");
}

static int write_file(const char *path, const cli_src_t *s, const run_t *runs, int nrun,
                      const leave_out_t *lo, const pred_t *pred, int svg)
{
    mfp_buf_t json = {0};
    if (!svg) {
        write_json(&json, s, runs, nrun, lo, pred);
        if (json.oom) {
            cli_error(path, MF_ENOMEM, NULL);
            mfp_buf_free(&json);
            return 1;
        }
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error(path, MF_EIO, NULL);
        mfp_buf_free(&json);
        return 1;
    }
    if (svg)
        write_svg(f, s, runs, nrun);
    else
        fwrite(json.p, 1, json.n, f);
    mfp_buf_free(&json);
    /* ferror first: a failed write is not always reported again by fclose */
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        cli_error(path, MF_EIO, NULL);
        return 1;
    }
    return 0;
}

/* Pattern regeneration (--seeds and friends). */
typedef struct gen {
    int set;        /* a generation flag was given: regenerate before scoring */
    int seeds;      /* > 0: report the mean over this many seeds */
    mf_gen_opts_t o; /* o.len 0 / o.temp < 0: the model's gen_len / gen_temp */
} gen_t;

/* 1 when the stored patterns came from an earlier epoch (gen_epoch) but some family lacks
 * that snapshot network (files trained before snapshots were stored): regeneration then
 * samples its final network, which is not what made its pattern. */
static int snapshot_missing(const mf_model_t *m)
{
    const mf_train_opts_t *o = &m->opts;
    if (o->gen_epoch <= 0 || o->gen_epoch >= o->epochs)
        return 0;
    for (int f = 0; f < m->nfam; f++)
        if (m->fam[f].lstm && !m->fam[f].gen_lstm)
            return 1;
    return 0;
}

/* Regenerate the patterns with seeds g->seed .. g->seed + g->seeds - 1 and print, per pattern
 * mode, each seed's figures and their mean and sd. */
static int gen_seeds(cli_src_t *s, const gen_t *g, const int *map, int only)
{
    enum { NPM = 3 };
    static const int pm[NPM] = {MF_MODE_PAPER, MF_MODE_MULTISET, MF_MODE_NGRAM};
    double sum[NPM][3] = {{0}}, sq[NPM][3] = {{0}}, dist = 0;
    printf("patterns regenerated: len %zu, temp %.2f, top-p %.2f, start %d, no-repeat %d, "
           "restart %d, segment %d, min-count %d, distinct cap %d, seeds %llu..%llu\n",
           g->o.len, (double)g->o.temp, (double)g->o.top_p, g->o.start, g->o.no_repeat,
           g->o.restart, g->o.segment, g->o.min_count, g->o.max_distinct,
           (unsigned long long)g->o.seed, (unsigned long long)(g->o.seed + (uint64_t)g->seeds - 1));
    for (int k = 0; k < g->seeds; k++) {
        mf_gen_opts_t go = g->o;
        go.seed += (uint64_t)k;
        int rc = mf_pattern_regen(s->m, &go);
        mf_scorer_t *sc = rc == MF_OK ? mf_scorer_new_ex(s->m, &s->o, NULL, NULL) : NULL;
        if (!sc) {
            cli_error("generate", rc == MF_OK ? MF_ENOMEM : rc, NULL);
            return 1;
        }
        double d = 0;
        int nf = 0;
        for (int f = 0; f < s->m->nfam; f++) {
            const mf_trace_t *p = &s->m->fam[f].pattern;
            if (!p->n)
                continue;
            unsigned char seen[MF_MAX_VOCAB] = {0};
            int c = 0;
            for (size_t i = 0; i < p->n; i++)
                if (p->ids[i] >= 0 && p->ids[i] < MF_MAX_VOCAB && !seen[p->ids[i]]++)
                    c++;
            d += c;
            nf++;
            if (k == 0)
                printf("  %s %d", fam_name(s->m, f), c);
        }
        dist += nf ? d / nf : 0;
        if (k == 0)
            printf("  (distinct APIs per pattern)\n");
        printf("  seed %llu (mean distinct APIs per pattern %.1f):",
               (unsigned long long)(g->o.seed + (uint64_t)k), nf ? d / nf : 0);
        for (int i = 0; i < NPM; i++) {
            if ((only >= 0 && pm[i] != only) || !mf_score_mode_available(sc, pm[i]))
                continue;
            mf_metrics_t mt;
            rc = mf_metrics_init(&mt, s->m->nfam);
            if (rc == MF_OK)
                rc = mf_eval_run(sc, pm[i], &s->ds, s->split, map, &mt, NULL, NULL, NULL);
            if (rc != MF_OK) {
                mf_metrics_destroy(&mt);
                mf_scorer_free(sc);
                cli_error(mf_score_mode_name(pm[i]), rc, NULL);
                return 1;
            }
            double v[3] = {mf_metrics_top1(&mt), mf_metrics_top3(&mt), mf_metrics_macro_f1(&mt)};
            printf("  %s %.3f/%.3f/%.3f", mf_score_mode_name(pm[i]), v[0], v[1], v[2]);
            for (int j = 0; j < 3; j++) {
                sum[i][j] += v[j];
                sq[i][j] += v[j] * v[j];
            }
            mf_metrics_destroy(&mt);
        }
        printf("\n");
        fflush(stdout);
        mf_scorer_free(sc);
    }
    int n = g->seeds;
    printf("mean over %d seeds (top1 / top3 / macroF1, +-sd), distinct APIs %.1f:\n", n,
           dist / n);
    for (int i = 0; i < NPM; i++) {
        if ((only >= 0 && pm[i] != only) || sum[i][1] == 0)
            continue;
        printf("  %-10s", mf_score_mode_name(pm[i]));
        for (int j = 0; j < 3; j++) {
            double mu = sum[i][j] / n, var = n > 1 ? (sq[i][j] - n * mu * mu) / (n - 1) : 0;
            printf("  %.3f+-%.3f", mu, sqrt(var > 0 ? var : 0));
        }
        printf("\n");
    }
    printf("\n");
    return 0;
}

/* One line of the CV grid: k-fold CV over the train split of `mode` with options o. */
static int cv_line(cli_src_t *s, const mf_score_opts_t *o, int mode, int k, uint64_t seed)
{
    char opts[96];
    if (mode == MF_MODE_LINEAR)
        snprintf(opts, sizeof opts, "lin_hi=%d lin_c=%d bal=%d df=%d tf=%d pr=%d", o->lin_hi,
                 o->lin_c, o->lin_bal, o->lin_df, o->lin_tf, o->lin_proto);
    else if (mode == MF_MODE_COMBO)
        snprintf(opts, sizeof opts, "knn_k=%d combo_hi=%d", o->knn_k, o->combo_hi);
    else if (mode == MF_MODE_KNN)
        snprintf(opts, sizeof opts, "knn_k=%d knn_hi=%d knn_idf=%d", o->knn_k, o->knn_hi,
                 o->knn_idf);
    else
        opts[0] = '\0';
    mf_metrics_t mt;
    int rc = mf_metrics_init(&mt, s->m->nfam);
    if (rc == MF_OK)
        rc = mf_eval_cv(s->m, o, mode, k, seed, &mt);
    if (rc != MF_OK) {
        mf_metrics_destroy(&mt);
        cli_error("cross-validation", rc, NULL);
        return 1;
    }
    printf("%-6s %-28s  %.3f  %.3f  %.3f\n", mf_score_mode_name(mode), opts,
           mf_metrics_top1(&mt), mf_metrics_top3(&mt), mf_metrics_macro_f1(&mt));
    fflush(stdout);
    mf_metrics_destroy(&mt);
    return 0;
}

static int cv_grid(cli_src_t *s, int k, uint64_t seed, int only_mode)
{
    /* a small grid around the defaults; every line is k-fold CV over the train split */
    static const int ks[] = {1, 3, 5, 7}, cs[] = {10, 30, 100, 300};
    int want[MF_NMODES];
    for (int mode = 0; mode < MF_NMODES; mode++)
        want[mode] = only_mode < 0 || mode == only_mode;
    printf("%-6s %-28s  %6s %6s %8s\n", "mode", "options", "top1", "top3", "macroF1");
    mf_score_opts_t o = s->o;
    if (want[MF_MODE_NN] && cv_line(s, &o, MF_MODE_NN, k, seed))
        return 1;
    for (int ki = 0; ki < 4; ki++) {
        o = s->o;
        o.knn_k = ks[ki];
        for (int hi = 1; hi <= 3; hi++)
            for (int idf = 0; idf <= 1; idf++) {
                o.knn_hi = hi;
                o.knn_idf = idf;
                if (want[MF_MODE_KNN] && cv_line(s, &o, MF_MODE_KNN, k, seed))
                    return 1;
            }
    }
    for (int ki = 0; ki < 4; ki++)
        for (int hi = 2; hi <= 3; hi++) { /* combo: both views idf-weighted */
            o = s->o;
            o.knn_k = ks[ki];
            o.combo_hi = hi;
            if (want[MF_MODE_COMBO] && cv_line(s, &o, MF_MODE_COMBO, k, seed))
                return 1;
        }
    int his[] = {1, 2, 3}, nhi = 3, nc = 4, c1[1] = {s->o.lin_c};
    const int *cl = cs;
    if (s->o_set[6]) { /* --lin-hi */
        his[0] = s->o.lin_hi;
        nhi = 1;
    }
    if (s->o_set[7]) { /* --lin-c */
        cl = c1;
        nc = 1;
    }
    for (int hi = 0; hi < nhi; hi++)
        for (int ci = 0; ci < nc; ci++) {
            o = s->o;
            o.lin_hi = his[hi];
            o.lin_c = cl[ci];
            if (want[MF_MODE_LINEAR] && cv_line(s, &o, MF_MODE_LINEAR, k, seed))
                return 1;
        }
    return 0;
}

/* The families --leave-out names (all, one, or a comma-separated list) into pick[nfam]:
 * each must be a family of the model with samples (nfs) here to detect; `all` takes every
 * such family. 0, or the exit status after saying why on stderr. */
static int pick_families(const mf_model_t *m, const char *leave, const size_t *nfs,
                         unsigned char *pick)
{
    if (!strcmp(leave, "all")) {
        for (int f = 0; f < m->nfam; f++)
            pick[f] = nfs[f] > 0; /* a family without samples has nothing to detect */
        return 0;
    }
    char *list = strdup(leave), *save = NULL;
    if (!list) {
        cli_error("leave-out", MF_ENOMEM, NULL);
        return 1;
    }
    int n = 0, st = 0;
    for (char *name = strtok_r(list, ",", &save); name && !st;
         name = strtok_r(NULL, ",", &save), n++) {
        int f = mf_model_find_family(m, name);
        if (f >= 0 && nfs[f] > 0) {
            pick[f] = 1;
            continue;
        }
        fprintf(stderr, "malfam eval: --leave-out %s: %s; families with samples here:", name,
                f < 0 ? "not a family of the model" : "no sample of it to score");
        for (int c = 0; c < m->nfam; c++)
            if (nfs[c])
                fprintf(stderr, " %s", fam_name(m, c));
        fprintf(stderr, "\n");
        st = 2;
    }
    free(list);
    if (n == 0) {
        fprintf(stderr, "malfam eval: --leave-out: no family named (all, FAMILY or A,B,...)\n");
        st = 2;
    }
    return st;
}

int cli_eval(int argc, char **argv)
{
    mf_blas_set_threads(1); /* one report's products are small: threads only add overhead */
    cli_src_t s;
    memset(&s, 0, sizeof s);
    mf_score_opts_default(&s.o);
    s.split = MF_SPLIT_TEST;
    s.fu_rate = -1;
    const char *mode_arg = "all", *json = NULL, *svg = NULL, *leave = NULL;
    int split_given = 0, quiet = 0;
    int cv = 0;
    uint64_t seed = 11;
    gen_t g = {0, 0, {0, -1.0f, 1.0f, -1, 0, 0, 0, 0, 1, 0}};
    int gen_seed_given = 0; /* else the model's training seed: regeneration replays training */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_src_flag(&s, argc, argv, &i);
        if (r < 0) {
            fprintf(stderr, "malfam eval: bad or missing value for %s\n", a);
            return 2;
        }
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            eval_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--split")) {
            split_given = 1;
            s.split = !strcmp(v, "test") ? MF_SPLIT_TEST : !strcmp(v, "train") ? MF_SPLIT_TRAIN
                      : !strcmp(v, "all") ? MF_SPLIT_ANY : -1;
            if (s.split < 0) {
                fprintf(stderr, "malfam eval: --split: test, train or all\n");
                return 2;
            }
        } else if (!strcmp(a, "--mode")) {
            mode_arg = v;
        } else if (!strcmp(a, "--json")) {
            json = v;
        } else if (!strcmp(a, "--svg")) {
            svg = v;
        } else if (!strcmp(a, "--leave-out")) {
            leave = v;
        } else if (!strcmp(a, "--cv")) {
            cv = atoi(v);
            if (cv < 2) {
                fprintf(stderr, "malfam eval: --cv needs K >= 2\n");
                return 2;
            }
        } else if (!strcmp(a, "--seed")) {
            seed = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--seeds")) {
            g.seeds = atoi(v);
            g.set = 1;
        } else if (!strcmp(a, "--gen-seed")) {
            g.o.seed = strtoull(v, NULL, 10);
            gen_seed_given = 1;
            g.set = 1;
        } else if (!strcmp(a, "--gen-len")) {
            g.o.len = (size_t)atol(v);
            g.set = 1;
        } else if (!strcmp(a, "--temp")) {
            g.o.temp = (float)strtod(v, NULL);
            g.set = 1;
        } else if (!strcmp(a, "--start")) {
            g.o.start = atoi(v);
            g.set = 1;
        } else if (!strcmp(a, "--no-repeat")) {
            g.o.no_repeat = atoi(v);
            g.set = 1;
        } else if (!strcmp(a, "--restart")) {
            g.o.restart = atoi(v);
            g.set = 1;
        } else if (!strcmp(a, "--segment")) {
            g.o.segment = atoi(v);
            g.set = 1;
        } else if (!strcmp(a, "--min-count")) {
            g.o.min_count = atoi(v);
            g.set = 1;
        } else if (!strcmp(a, "--top-p")) {
            g.o.top_p = (float)strtod(v, NULL);
            g.set = 1;
        } else if (!strcmp(a, "--gen-distinct")) {
            g.o.max_distinct = atoi(v);
            g.set = 1;
        } else {
            fprintf(stderr, "malfam eval: unknown option %s\n", a);
            eval_usage(stderr);
            return 2;
        }
    }
    if (s.reports && !split_given)
        s.split = MF_SPLIT_ANY; /* a report list has no split: it is evaluated as given */
    int only = -1;
    if (strcmp(mode_arg, "all") != 0 && (only = mf_score_mode_parse(mode_arg)) < 0) {
        fprintf(stderr, "malfam eval: unknown mode '%s'\n", mode_arg);
        return 2;
    }
    s.one_mode = only + 1;
    int st = cli_src_open(&s);
    if (st != 0) {
        cli_src_destroy(&s);
        return st;
    }
    size_t nsplit = 0;
    for (size_t i = 0; i < s.ds.n; i++)
        nsplit += s.split == MF_SPLIT_ANY || s.ds.samples[i].split == s.split;
    if (nsplit == 0 && !cv) { /* figures over nothing would read as a result */
        fprintf(stderr, "malfam eval: no sample to score in the %s split%s\n",
                s.split == MF_SPLIT_TEST ? "test" : s.split == MF_SPLIT_TRAIN ? "train" : "",
                s.reports ? " (a report list has no split: leave --split out)" : "");
        cli_src_destroy(&s);
        return 2;
    }
    if (cv) {
        st = cv_grid(&s, cv, seed, only);
        cli_src_destroy(&s);
        return st;
    }
    if (g.set && snapshot_missing(s.m))
        fprintf(stderr, "malfam eval: note: patterns are regenerated from the final networks "
                        "(epoch %d); the model's stored patterns came from epoch %d (gen_epoch), "
                        "whose networks this file does not hold (trained before they were "
                        "stored): score those without generation flags\n",
                s.m->opts.epochs, s.m->opts.gen_epoch);
    if (g.set) {
        if (g.o.len == 0)
            g.o.len = (size_t)s.m->opts.gen_len;
        if (g.o.temp < 0)
            g.o.temp = s.m->opts.gen_temp;
        if (!gen_seed_given)
            g.o.seed = s.m->opts.seed;
        if (g.o.len < 1 || g.seeds < 0 || !(g.o.top_p > 0 && g.o.top_p <= 1)) {
            fprintf(stderr, "malfam eval: bad --gen-len, --seeds or --top-p\n");
            cli_src_destroy(&s);
            return 2;
        }
        int *map0 = calloc(s.ds.nlabels ? (size_t)s.ds.nlabels : 1, sizeof *map0);
        if (!map0) {
            cli_src_destroy(&s);
            return 1;
        }
        mf_eval_label_map(s.m, &s.ds, map0);
        st = g.seeds > 0 ? gen_seeds(&s, &g, map0, only) : 0;
        free(map0);
        int rc = st ? MF_OK : mf_pattern_regen(s.m, &g.o);
        if (st || rc != MF_OK) {
            if (rc != MF_OK)
                cli_error("generate", rc, NULL);
            cli_src_destroy(&s);
            return st ? st : 1;
        }
    }
    /* one --mode: only what it needs (no SVM fit for knn on a model built in memory) */
    mf_scorer_t *sc = only >= 0 ? mf_scorer_new_mode(s.m, &s.o, only)
                                : mf_scorer_new_ex(s.m, &s.o, NULL, NULL);
    int *map = calloc(s.ds.nlabels ? (size_t)s.ds.nlabels : 1, sizeof *map);
    run_t runs[MF_NMODES];
    int nrun = 0;
    /* each answer of the --json report's predictions: nsplit x MF_NMODES */
    pred_t *pred = json ? calloc(nsplit * MF_NMODES, sizeof *pred) : NULL;
    size_t *nfs = NULL;
    unsigned char *pick = NULL; /* families --leave-out names */
    leave_out_t lo = {0};
    if (!sc || !map || (json && !pred)) {
        cli_error("scorer", MF_ENOMEM, NULL);
        st = 1;
        goto out;
    }
    mf_eval_label_map(s.m, &s.ds, map);
    /* samples per family in the split: a family left out must have some to detect */
    nfs = calloc((size_t)s.m->nfam + 1, sizeof *nfs);
    if (!nfs) {
        cli_error("scorer", MF_ENOMEM, NULL);
        st = 1;
        goto out;
    }
    for (size_t i = 0; i < s.ds.n; i++) {
        const mf_sample_t *x = &s.ds.samples[i];
        int f = x->label >= 0 && x->label < s.ds.nlabels ? map[x->label] : -1;
        if (f >= 0 && (s.split == MF_SPLIT_ANY || x->split == s.split))
            nfs[f]++;
    }
    /* the families left out one at a time (--leave-out), checked before any output */
    pick = calloc((size_t)s.m->nfam + 1, 1);
    if (!pick) {
        cli_error("leave-out", MF_ENOMEM, NULL);
        st = 1;
        goto out;
    }
    if (leave && (st = pick_families(s.m, leave, nfs, pick)) != 0)
        goto out;
    printf("split %s, fu-rate %.3f, ngram_n %d, knn_k %d, knn_hi %d, knn_idf %d, combo_hi %d\n",
           s.split == MF_SPLIT_TEST ? "test" : s.split == MF_SPLIT_TRAIN ? "train" : "all",
           s.fu_rate, s.o.ngram_n, s.o.knn_k, s.o.knn_hi, s.o.knn_idf, s.o.combo_hi);
    /* linear's too: which novelty judged "unknown" (lin_nov) is part of what was measured */
    printf("fuse_w %d, lin_hi %d, lin_c %d, lin_bal %d, lin_df %d, lin_tf %d, lin_proto %d, "
           "lin_fthr %d, lin_nov %d, nov_protos %d\n",
           s.o.fuse_w, s.o.lin_hi, s.o.lin_c, s.o.lin_bal, s.o.lin_df, s.o.lin_tf, s.o.lin_proto,
           s.o.lin_fthr, s.o.lin_nov, s.o.nov_protos);
    printf("%-10s %5s  %6s %6s %8s %8s %9s\n", "mode", "n", "top1", "top3", "macroF1",
           "unknown", "foreignU");
    /* columns not obvious from their name: said once, under the header */
    printf("(unknown: share of known-family reports flagged unknown, i.e. false unknowns;\n"
           " foreignU: reports of families the model does not know that were flagged unknown,\n"
           " of all such reports; - when there are none)\n");
    for (int mode = 0; mode < MF_NMODES; mode++) {
        if ((only >= 0 && mode != only) || !mf_score_mode_available(sc, mode))
            continue;
        run_t *r = &runs[nrun];
        memset(r, 0, sizeof *r);
        r->mode = mode;
        r->thr = mf_scorer_threshold(sc, mode);
        int rc = mf_metrics_init(&r->mt, s.m->nfam);
        /* mf_eval_run's loop, keeping each answer for the JSON's predictions */
        for (size_t i = 0, k = 0; rc == MF_OK && i < s.ds.n; i++) {
            const mf_sample_t *x = &s.ds.samples[i];
            if (s.split != MF_SPLIT_ANY && x->split != s.split)
                continue;
            mf_result_t res;
            rc = mf_score_trace(sc, mode, &x->trace, MF_MAX_TOP, &res);
            if (rc != MF_OK)
                break;
            int truth = x->label >= 0 && x->label < s.ds.nlabels ? map[x->label] : -1;
            mf_metrics_add(&r->mt, truth, &res);
            ece_add(r, truth, &res);
            if (pred) {
                pred_t *q = &pred[k * MF_NMODES + (size_t)nrun];
                q->guess = res.ntop ? res.top[0].family : -1;
                q->unknown = res.unknown != 0;
                q->p = res.ntop ? res.top[0].p : NAN;
            }
            k++;
        }
        if (rc == MF_OK) {
            mf_metrics_top1_ci(&r->mt, r->ci[0]);
            mf_metrics_top3_ci(&r->mt, r->ci[1]);
            rc = mf_metrics_macro_f1_ci(&r->mt, MF_BOOT_SEED, r->ci[2]);
        }
        if (rc != MF_OK) {
            mf_metrics_destroy(&r->mt);
            cli_error(mf_score_mode_name(mode), rc, NULL);
            st = 1;
            goto out;
        }
        nrun++;
        char fu[48] = "-";
        if (r->mt.foreign)
            snprintf(fu, sizeof fu, "%zu/%zu", r->mt.foreign_unknown, r->mt.foreign);
        printf("%-10s %5zu  %.3f  %.3f  %.3f    %.3f %9s\n", mf_score_mode_name(mode), r->mt.n,
               mf_metrics_top1(&r->mt), mf_metrics_top3(&r->mt), mf_metrics_macro_f1(&r->mt),
               mf_metrics_unknown_rate(&r->mt), fu);
        fflush(stdout);
    }
    if (nrun == 0) {
        fprintf(stderr, "malfam eval: no mode available with this model\n");
        st = 1;
        goto out;
    }
    /* a table of its own: three ranges would not fit the columns above */
    printf("95 %% intervals (top1, top3: Wilson score; macroF1: bootstrap, %d draws of the "
           "samples)\n%-10s  %-11s  %-11s  %s\n", MF_BOOT_DRAWS, "mode", "top1", "top3",
           "macroF1");
    for (int i = 0; i < nrun; i++) {
        printf("%-10s", mf_score_mode_name(runs[i].mode));
        for (int j = 0; j < 3; j++)
            printf("  %.3f-%.3f", runs[i].ci[j][0], runs[i].ci[j][1]);
        printf("\n");
    }
    printf("default mode of this model: %s (score, malfamd without a configured mode)\n",
           mf_score_mode_name(mf_score_pick_default(s.m)));
    for (int i = 0; i < nrun; i++) {
        char tn[48];
        snprintf(tn, sizeof tn, "%s.temp", mf_score_mode_name(runs[i].mode));
        if (runs[i].mt.np)
            printf("%s probabilities (temperature %.3g): mean p of the top-1 guess %.3f against "
                   "top-1 accuracy %.3f; ECE %.3f (10 bins); log loss %.3f (uniform guess "
                   "%.3f)\n",
                   mf_score_mode_name(runs[i].mode), mf_model_param(s.m, tn, NAN),
                   mf_metrics_mean_p(&runs[i].mt), mf_metrics_top1(&runs[i].mt), ece(&runs[i]),
                   mf_metrics_log_loss(&runs[i].mt), log((double)s.m->nfam));
    }
    for (int i = 0; i < nrun; i++)
        print_tables(stdout, s.m, &runs[i]);
    if (leave) {
        printf("\nopen set (fu-rate %.3f): class left out, AUROC of the unknown score, "
               "false-unknown on known classes and left-out flagged unknown at the calibrated "
               "threshold, left-out flagged at the ROC point of that false-unknown rate on "
               "these samples (at-rate)\n", s.fu_rate);
        size_t cap = (size_t)nrun * (size_t)(s.m->nfam ? s.m->nfam : 1); /* --leave-out all */
        lo.os = calloc(cap, sizeof *lo.os);
        lo.mode = calloc(cap, sizeof *lo.mode);
        lo.fam = calloc(cap, sizeof *lo.fam);
        if (!lo.os || !lo.mode || !lo.fam) {
            cli_error("leave-out", MF_ENOMEM, NULL);
            st = 1;
            goto out;
        }
        /* progress on stderr after each family left out (the runs are long at scale:
         * every one refits linear's SVM and its out-of-fold fits) */
        int total = 0, done = 0;
        for (int f = 0; f < s.m->nfam; f++)
            total += pick[f] ? nrun : 0;
        double t0 = cli_now();
        for (int i = 0; i < nrun; i++) {
            int first = lo.n;
            for (int f = 0; f < s.m->nfam; f++) {
                if (!pick[f])
                    continue;
                double t1 = cli_now();
                int rc = mf_eval_leave_out(s.m, &s.o, runs[i].mode, f, s.fu_rate, &s.ds,
                                           s.split, map, &lo.os[lo.n]);
                if (rc != MF_OK) {
                    cli_error("leave-out", rc, fam_name(s.m, f));
                    st = 1;
                    goto out;
                }
                printf("  %-10s %-12s auroc %.3f  false-unknown %.3f  detected %.3f  "
                       "at-rate %.3f\n",
                       mf_score_mode_name(runs[i].mode), fam_name(s.m, f), lo.os[lo.n].auroc,
                       lo.os[lo.n].fu_rate, lo.os[lo.n].detect, lo.os[lo.n].detect_at);
                fflush(stdout);
                lo.mode[lo.n] = runs[i].mode;
                lo.fam[lo.n++] = f;
                if (!quiet && total > 1) {
                    double now = cli_now(), el = now - t0;
                    char eta[32];
                    done++;
                    cli_fmt_secs(eta, sizeof eta, el / done * (total - done));
                    fprintf(stderr, "malfam eval: leave-out %d/%d %s %s (%.1f s, ETA %s)\n",
                            done, total, mf_score_mode_name(runs[i].mode), fam_name(s.m, f),
                            now - t1, eta);
                }
            }
            if (lo.n - first > 1) {
                int k = lo.nmean++;
                const mf_openset_t *mean = &lo.mean[k];
                lo.mean[k] = openset_mean(lo.os + first, lo.n - first);
                lo.mean_mode[k] = runs[i].mode;
                lo.mean_fams[k] = lo.n - first;
                printf("  %-10s mean of %-4d auroc %.3f  false-unknown %.3f  detected %.3f  "
                       "at-rate %.3f\n",
                       mf_score_mode_name(runs[i].mode), lo.mean_fams[k], mean->auroc,
                       mean->fu_rate, mean->detect, mean->detect_at);
            }
        }
    }
    if (json && (st = write_file(json, &s, runs, nrun, &lo, pred, 0)) != 0)
        goto out;
    if (svg && (st = write_file(svg, &s, runs, nrun, &lo, NULL, 1)) != 0)
        goto out;
out:
    free(nfs);
    free(pick);
    free(pred);
    for (int i = 0; i < nrun; i++)
        mf_metrics_destroy(&runs[i].mt);
    free(lo.os);
    free(lo.mode);
    free(lo.fam);
    free(map);
    mf_scorer_free(sc);
    cli_src_destroy(&s);
    return st;
}
