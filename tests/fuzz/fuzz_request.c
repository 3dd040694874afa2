/* fuzz_request.c - the daemon's request-line parser, mfp_req_parse (plugin/proto.h).
 *
 * The input is one request line (not NUL-terminated, as the daemon hands it over). It is
 * parsed twice: with a message buffer of the daemon's size, whose error answer (the line the
 * client would get, with the echoed id) must be one line of valid JSON (yajl checks UTF-8);
 * and with a buffer of 0..15 bytes (from the length), which must be left NUL-terminated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "answer.h"
#include "proto.h"

static void check_req(const mfp_req_t *r)
{
    if (!memchr(r->id, 0, sizeof r->id) || !memchr(r->path, 0, sizeof r->path) ||
        !memchr(r->mode, 0, sizeof r->mode) || !r->id[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mfp_req_t r;
    char msg[512]; /* the daemon's (conn.c handle_line) */
    int rc = mfp_req_parse(&r, (const char *)data, size, msg, sizeof msg);
    check_req(&r);
    if (rc == MF_OK && r.op == MFP_OP_NONE)
        abort();

    mfp_buf_t b = {0};
    mfp_answer_error(&b, r.id, rc ? rc : MF_EINVAL, rc ? msg : "");
    mfp_buf_add(&b, "", 1); /* NUL for yajl_tree_parse */
    if (b.oom || b.n < 3 || b.p[b.n - 2] != '\n' || memchr(b.p, '\n', b.n - 2))
        abort(); /* one line, ending in a newline */
    char err[128];
    yajl_val v = yajl_tree_parse(b.p, err, sizeof err);
    if (!v || !YAJL_IS_OBJECT(v))
        abort(); /* the client could not read this answer */
    yajl_tree_free(v);
    mfp_buf_free(&b);

    size_t cap = size % 16;
    char *small = cap ? malloc(cap) : NULL; /* exact size: ASan sees an overflow */
    int rc2 = mfp_req_parse(&r, (const char *)data, size, small, cap);
    if (rc2 != rc || (small && !memchr(small, 0, cap)))
        abort();
    free(small);
    return 0;
}
