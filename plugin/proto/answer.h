/* answer.h - the one builder of malfam's answers, shared by `malfam score` and malfamd.
 *
 * An answer *value* is what the classification of one report comes to. The daemon sends it
 * inside a protocol line and stores it under "malfam" in the report; the CLI prints it. Shapes:
 *   scored          {"families":[{"family":s,"score":x,"rel":x[,"p":x]},...],"unknown":b,
 *                    "novelty":x,"threshold":x,"mode":s,"model":s,"calls":n,"explain":s,
 *                    "verdict":s}
 *   no trace        {"families":[],"unknown":true,"mode":s,"model":s,"calls":0,
 *                    "note":"no trace","verdict":"unknown (no trace)"}
 *                                                  (the report lists no API call at all)
 *   no known calls  the same with "note":"no known calls" (calls, none in the vocabulary)
 *   error           {"error":"MF_EJSON","message":s}
 * Numbers have 10 significant digits; non-finite ones are null. "rel" places a score between
 * the worst family (0) and the best (1), whatever the mode's scale, for bars in a UI where no
 * "p" exists. "verdict" is the one line a person reads (mfp_verdict).
 */
#ifndef MF_PROTO_ANSWER_H
#define MF_PROTO_ANSWER_H

#include <stddef.h>

#include "json.h"
#include "model.h"
#include "score.h"
#include "trace.h"

/* The choices of one classification besides the model. */
typedef struct mfp_classify_opts {
    int mode;         /* scoring mode (MF_MODE_*) */
    int top;          /* families in the answer, 1..MF_MAX_TOP */
    double threshold; /* unknown threshold overriding the model's; NAN = the model's */
} mfp_classify_opts_t;

/* Score trace `t` (built by mf_extract_new_trace with the model's prep; `st` its extraction
 * stats) and append the answer value to b. An empty trace is not scored: the value says "no
 * trace" or "no known calls". `res` (may be NULL) receives the result (ntop 0 when nothing
 * was scored). MF_OK, or the scoring error (MF_EINVAL: mode not available, bad top;
 * MF_ENOMEM), and then nothing is appended. */
int mfp_classify(const mf_scorer_t *s, const mf_model_t *m, const mfp_classify_opts_t *o,
                 const mf_trace_t *t, const mf_extract_stats_t *st, mfp_buf_t *b,
                 mf_result_t *res);

/* The verdict of a result, the one confidence number a person reads: "Virus (p 90 %)",
 * "unknown (closest: Virus, p 28 %)"; where the mode has no calibrated probability the raw
 * score, named: "Backdoor (paper score 0.122, not a probability)". */
void mfp_verdict(mfp_buf_t *b, const mf_result_t *r, const mf_model_t *m);

/* The value of a scored result (r->mode, r->calls and the model's version are written). */
void mfp_value_result(mfp_buf_t *b, const mf_result_t *r, const mf_model_t *m);
/* The result of an empty trace (nothing ranked, unknown): its note, "no trace" when the report
 * had no call at all, else "no known calls", is kept in r->explain, so that mfp_verdict says it. */
void mfp_empty_result(mf_result_t *r, int mode, int report_had_calls);
/* The value of such a result. */
void mfp_value_empty(mfp_buf_t *b, const mf_model_t *m, const mf_result_t *r);
/* The value of a failure: {"error":"<mf_err_name(rc)>","message":<message or strerror>}. */
void mfp_value_error(mfp_buf_t *b, int rc, const char *message);

/* A protocol answer line (with "\n"): {"v":1,"id":<id JSON or null>,"ok":<ok>, then the
 * members of `value` (a JSON object, n bytes) and, when ms >= 0, "ms":<ms>}. */
void mfp_answer_line(mfp_buf_t *b, const char *id, int ok, const char *value, size_t n,
                     double ms);
/* An error answer line: mfp_answer_line of mfp_value_error, ok false, no ms. */
void mfp_answer_error(mfp_buf_t *b, const char *id, int rc, const char *message);

#endif
