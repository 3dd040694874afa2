/* fuzz_extract.c - the streaming trace extractor (core/trace.h) on hostile reports.
 *
 * Control byte: when the input starts with a byte >= 0x80 (no JSON text can), that byte is the
 * control and the rest is the report; otherwise the control is a hash of the input, so real
 * reports replay unchanged. Bits of the control:
 *   0-1  repeat mode: ASIS, EXPAND, FOLD, or 3 = EXPAND with a cap of 5 calls. EXPAND is always
 *        capped at 2^16 calls: "repeated": 1e6 legally turns 30 bytes into a million calls.
 *   2    grow the vocabulary (else a fixed one of four names)
 *   3    the call callback stops the parse after 7 calls
 *   4-7  chunking k: 0 = one feed, else chunk sizes in 1..2^k (xorshift seeded by the input)
 * Checked besides memory errors: every call name is NUL-terminated, within limits and has the
 * vocabulary's id; an error has its detail and success has none; MF_ENOMEM never happens.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mf.h"
#include "trace.h"

typedef struct { mf_vocab_t *v; int grow; size_t n, stop; } fx_t;

static int on_call(void *ud, const mf_call_t *c)
{
    fx_t *f = ud;
    /* the name is NUL-terminated, lower-case, and its id agrees with the vocabulary */
    if (strlen(c->api) != c->api_len || c->api_len == 0 || c->api_len > MF_MAX_API_LEN)
        abort();
    if (c->id != mf_vocab_find(f->v, c->api, c->api_len))
        abort();
    return f->stop && ++f->n >= f->stop;
}

static int on_proc(void *ud, const mf_proc_t *p)
{
    (void)ud;
    if (strlen(p->name) > MF_MAX_PROC_NAME)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u, ctl;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    if (size > 0 && data[0] >= 0x80)
        ctl = data[0], data++, size--;
    else
        ctl = h & 0xff;

    static const char *fixed[] = {"NtCreateFile", "ntwritefile", "LdrLoadDll", "regopenkeyexw"};
    fx_t f = {mf_vocab_new(), (ctl >> 2) & 1, 0, (ctl & 8) ? 7 : 0};
    for (size_t i = 0; f.v && !f.grow && i < sizeof fixed / sizeof *fixed; i++)
        mf_vocab_add(f.v, fixed[i], strlen(fixed[i]));

    mf_extract_opts_t o;
    mf_extract_opts_default(&o);
    o.repeat = (ctl & 3) == 3 ? MF_REPEAT_EXPAND : (mf_repeat_mode)(ctl & 3);
    o.max_calls = (ctl & 3) == 3 ? 5 : o.repeat == MF_REPEAT_EXPAND ? 1u << 16 : 0;
    o.grow_vocab = f.grow;
    mf_extract_cbs_t cbs = {on_call, on_proc};
    mf_extract_t *ex = f.v ? mf_extract_new(&o, f.v, &cbs, &f) : NULL;

    uint32_t rng = (h | 1), k = ctl >> 4;
    int rc = MF_OK;
    for (size_t off = 0; ex && off < size && rc == MF_OK;) {
        rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
        size_t n = k ? 1 + rng % (1u << k) : size;
        n = n < size - off ? n : size - off;
        rc = mf_extract_feed(ex, data + off, n);
        off += n;
    }
    if (ex && rc == MF_OK)
        rc = mf_extract_finish(ex);
    if (rc == MF_ENOMEM)
        abort(); /* no allocation fails here (libFuzzer stops at its RSS limit instead) */
    if (ex && (rc != MF_OK) != (mf_extract_errmsg(ex)[0] != '\0'))
        abort(); /* an error always has its detail, success never has one */
    mf_extract_free(ex);
    mf_vocab_free(f.v);
    return 0;
}
