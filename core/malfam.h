/* malfam.h - libmalfam's public API in one include.
 *
 * libmalfam labels Cuckoo / CAPE malware reports by family from their API-call traces: it
 * streams a report.json (plain or gzip) into a sequence of API ids, and ranks a trained
 * model's families for it (per-family LSTMs and patterns, nearest neighbours over the
 * training traces, a linear classifier). It never prints and keeps no global state; every
 * function returns MF_OK or a negative MF_E* code (mf_strerror).
 *
 * Life cycle of a program that labels reports:
 *     mf_model_load(&m, path, err, errlen)          once; read-only afterwards
 *     s = mf_scorer_new(m)                          once; shareable across threads
 *     mode = mf_score_pick_default(m)
 *     per report:
 *         mf_trace_init(&t)
 *         mf_extract_file(report, NULL, &m->prep, m->vocab, &t, &stats, NULL, err, errlen)
 *         mf_score_trace(s, mode, &t, top, &res)    (t.n == 0: nothing to rank)
 *         mf_trace_destroy(&t)
 *     mf_scorer_free(s); mf_model_free(m)
 * The model's own preprocessing (m->prep) must be the one given to the extractor, so the
 * trace scored is cut and folded as the training traces were.
 *
 * examples/example.c is the smallest complete user of this API (examples/README.md).
 * Each header below compiles on its own and documents its functions; this list is also the
 * list of headers `make install` installs (the Makefile reads it from here).
 */
#ifndef MF_MALFAM_H
#define MF_MALFAM_H

#include "mf.h"
#include "rng.h"
#include "blas.h"
#include "vocab.h"
#include "trace.h"
#include "dataset.h"
#include "lstm.h"
#include "train.h"
#include "model.h"
#include "pattern.h"
#include "simil.h"
#include "linear.h"
#include "score.h"
#include "eval.h"

#endif
