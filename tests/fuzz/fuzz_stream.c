/* fuzz_stream.c - a classify_stream request as the daemon processes it, minus the socket:
 * the first line goes through mfp_req_parse; for op classify_stream the next `bytes` bytes
 * of the input are the report, fed in random chunk sizes to mfd_classify_feed/finish with a
 * real (tiny) model, and the answer line is built as conn.c builds it. A body shorter
 * than `bytes` is a client that hung up: the classification is dropped unfinished.
 *
 * NOT covered: the framing itself (process_input/take_body in plugin/malfamd/conn.c are static
 * and driven by libuv reads), so the split of one input into line and body is done here.
 *
 * The model is loaded once from $MF_FUZZ_MODEL, by default the seed
 * tests/fuzz/corpus/fuzz_model/two_families.model (run from the repository root). Checked:
 * every answer is one line of valid JSON (yajl, UTF-8 checked).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "mf.h"
#include "private.h"
#include "proto.h"

static mfd_model_t *model;   /* loaded once: it is read-only, as in the daemon */
static mfd_scoring_t scoring;

static void load_once(void)
{
    const char *path = getenv("MF_FUZZ_MODEL");
    char err[512];
    mfd_config_t *cfg = malloc(sizeof *cfg);
    if (!cfg)
        abort();
    mfd_config_default(cfg);
    if (!path)
        path = "tests/fuzz/corpus/fuzz_model/two_families.model";
    if (mfd_model_load(&model, path, -1, err, sizeof err) != MF_OK ||
        mfd_scoring_init(&scoring, cfg, err, sizeof err) != MF_OK) {
        fprintf(stderr, "fuzz_stream: %s (set MF_FUZZ_MODEL)\n", err);
        abort();
    }
    free(cfg);
}

static void check_answer(mfp_buf_t *b)
{
    mfp_buf_add(b, "", 1);
    char err[128];
    yajl_val v = b->oom || b->n < 3 || b->p[b->n - 2] != '\n' || memchr(b->p, '\n', b->n - 2)
                     ? NULL : yajl_tree_parse(b->p, err, sizeof err);
    if (!v || !YAJL_IS_OBJECT(v))
        abort(); /* not one line of JSON: the client cannot read it */
    yajl_tree_free(v);
    mfp_buf_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model)
        load_once();
    const uint8_t *nl = memchr(data, '\n', size);
    size_t llen = nl ? (size_t)(nl - data) : size;
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t blen = size - (size_t)(body - data);

    mfp_req_t r;
    char msg[512];
    mfp_buf_t b = {0};
    int rc = mfp_req_parse(&r, (const char *)data, llen, msg, sizeof msg);
    if (rc != MF_OK || r.op != MFP_OP_STREAM) {
        mfp_answer_error(&b, r.id, rc ? rc : MF_EINVAL, rc ? msg : "not a stream");
        check_answer(&b);
        return 0;
    }
    mfd_classify_t *cl = malloc(sizeof *cl);
    if (!cl)
        abort();
    rc = mfd_classify_init(cl, model, &scoring, r.mode, r.top, 1u << 20, 0);
    uint32_t rng = 2166136261u ^ (uint32_t)blen, k = (uint32_t)(r.bytes % 13);
    size_t want = (uint64_t)r.bytes < blen ? (size_t)r.bytes : blen;
    for (size_t off = 0; rc == MF_OK && off < want;) {
        rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
        size_t n = k ? 1 + rng % (1u << k) : want;
        n = n < want - off ? n : want - off;
        mfd_classify_feed(cl, body + off, n); /* errors are sticky in cl->rc */
        off += n;
    }
    if ((uint64_t)r.bytes <= blen) { /* the whole body arrived: answer */
        if (rc == MF_OK && mfd_classify_finish(cl) == MF_OK)
            mfd_classify_answer(cl, r.id, 1.5, &b);
        else
            mfp_answer_error(&b, r.id, cl->rc, cl->err);
        check_answer(&b);
    }
    mfd_classify_destroy(cl);
    free(cl);
    return 0;
}
