/* mkmodel.c - test-only stand-in for `malfam train` while it has not landed: builds a
 * nearest-neighbour model (no LSTM) from the train split of the Mal-API data, calibrates its
 * unknown threshold and saves it, through libmalfam's public calls only. Used by conftest.py
 * when no model is available; the real `malfam train` takes precedence once it exists.
 *   mkmodel CALLS.gz INDEX.csv API_INDEX.txt OUT.model */
#include <stdio.h>

#include "dataset.h"
#include "eval.h"
#include "model.h"
#include "score.h"
#include "vocab.h"

int main(int argc, char **argv)
{
    char err[512] = "";
    if (argc != 5) {
        fprintf(stderr, "usage: mkmodel CALLS.gz INDEX.csv API_INDEX.txt OUT.model\n");
        return 2;
    }
    mf_model_t *m = mf_model_new();
    mf_dataset_t ds;
    mf_dataset_init(&ds);
    int rc = m ? mf_vocab_load(&m->vocab, argv[3], err, sizeof err) : MF_ENOMEM;
    if (rc == MF_OK)
        rc = mf_dataset_load_malapi(&ds, argv[1], argv[2], m->vocab, MF_SPLIT_TRAIN, &m->prep,
                                    NULL, err, sizeof err);
    if (rc == MF_OK)
        rc = mf_eval_model_from_dataset(m, &ds, MF_SPLIT_TRAIN);
    mf_score_opts_t o;
    mf_score_opts_default(&o);
    if (rc == MF_OK)
        rc = mf_score_opts_save(&o, m);
    if (rc == MF_OK)
        rc = mf_score_calibrate(m, 0.05);
    if (rc == MF_OK)
        rc = mf_model_save(m, argv[4], err, sizeof err);
    if (rc != MF_OK)
        fprintf(stderr, "mkmodel: %s: %s\n", mf_strerror(rc), err);
    mf_dataset_destroy(&ds);
    mf_model_free(m);
    return rc == MF_OK ? 0 : 1;
}
