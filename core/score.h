/* score.h - turning a trace into ranked family guesses.
 *
 * INTERFACE SKETCH (owner: the scoring work). The daemon and CLI rely on these names;
 * the owner may add modes, functions and fields, not rename these.
 *
 * A scorer is built once per loaded model (precomputed bitsets, n-gram sets...) and is then
 * read-only, so one scorer serves many threads; per-call scratch lives in the result or on
 * the stack.
 */
#ifndef MF_SCORE_H
#define MF_SCORE_H

#include <stddef.h>

#include "model.h"
#include "trace.h"

#define MF_MAX_TOP 16
#define MF_EXPLAIN_LEN 512

typedef struct mf_rank {
    int family;   /* index into model->fam */
    double score; /* higher = more similar; scale depends on the mode */
} mf_rank_t;

typedef struct mf_result {
    int mode;
    int ntop;
    mf_rank_t top[MF_MAX_TOP];
    int unknown;                   /* best score below the mode's calibrated threshold */
    double threshold;
    size_t calls;                  /* calls scored (after preprocessing) */
    char explain[MF_EXPLAIN_LEN];  /* e.g. "shared: ntclose, regopenkeyexw, ..." */
} mf_result_t;

typedef struct mf_scorer mf_scorer_t;

/* Mode names for config/CLI ("paper", "likelihood", ...). -1 when unknown. */
int mf_score_mode_parse(const char *name);
const char *mf_score_mode_name(int mode); /* never NULL */
int mf_score_nmodes(void);
int mf_score_default_mode(void);

/* NULL on allocation failure. The model must outlive the scorer. */
mf_scorer_t *mf_scorer_new(const mf_model_t *m);
void mf_scorer_free(mf_scorer_t *s);

/* Rank all families for trace `t` (already preprocessed with model->prep), keep `top`
 * (1..MF_MAX_TOP). MF_OK, MF_EINVAL, MF_ENOMEM. */
int mf_score_trace(const mf_scorer_t *s, int mode, const mf_trace_t *t, int top,
                   mf_result_t *res);

/* The answer as a JSON object (no newline): {"families":[{"family":..,"score":..}],
 * "unknown":..,"mode":..,"model":..,"calls":..,"explain":..}. snprintf semantics: returns
 * the length needed, writes at most cap bytes. */
int mf_result_json(const mf_result_t *r, const mf_model_t *m, char *buf, size_t cap);

#endif
