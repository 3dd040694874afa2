/* fuzz_writeback.c - the daemon's write-back edit (plugin/malfamd/internal.h): mfd_wb_scan_* over a
 * report fed in random chunk sizes (from a hash of the input), then mfd_wb_apply_mem.
 *
 * Checked besides memory errors: when the scan accepts the report, the edit succeeds; a report
 * that is strict JSON (yajl, no comments) stays strict JSON; scanning the result finds a
 * "malfam" value, and applying the same edit again changes nothing (labelling is idempotent).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "mf.h"
#include "private.h"

static const char value[] = "{\"families\":[{\"family\":\"x\",\"score\":0.5}],\"model\":\"0\"}";

static int strict_json(const uint8_t *p, size_t n)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    if (!h)
        abort();
    int ok = yajl_parse(h, p, n) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

static int scan(mfd_wb_scan_t *s, const uint8_t *p, size_t n, uint32_t rng)
{
    mfd_wb_scan_init(s);
    unsigned k = rng & 15;
    for (size_t off = 0; off < n;) {
        rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
        size_t c = k ? 1 + rng % (1u << k) : n;
        c = c < n - off ? c : n - off;
        if (mfd_wb_scan_feed(s, p + off, c) != MF_OK)
            return s->err;
        off += c;
    }
    return mfd_wb_scan_finish(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    mfd_wb_scan_t s;
    if (scan(&s, data, size, h | 1) != MF_OK)
        return 0;
    if (s.nranges < 0 || s.nranges > MFD_WB_MAX_KEYS || s.last_end > size)
        abort();
    mfp_buf_t once = {0}, twice = {0};
    if (mfd_wb_apply_mem(&s, (const char *)data, size, value, strlen(value), &once) != MF_OK)
        abort();
    if (strict_json(data, size) && !strict_json((const uint8_t *)once.p, once.n))
        abort(); /* valid JSON in, invalid JSON out */
    if (scan(&s, (const uint8_t *)once.p, once.n, h >> 1 | 1) != MF_OK || s.nranges < 1)
        abort(); /* the labelled report must scan, with its label */
    if (mfd_wb_apply_mem(&s, once.p, once.n, value, strlen(value), &twice) != MF_OK ||
        twice.n != once.n || memcmp(twice.p, once.p, once.n) != 0)
        abort(); /* labelling twice must give the same bytes */
    mfp_buf_free(&once);
    mfp_buf_free(&twice);
    return 0;
}
