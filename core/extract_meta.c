/* extract_meta.c - the label fields a report carries (opts.want_meta): target hashes, CAPE's
 * detections (a list or a 2.2-era string) and malfamily_tag, signature families. Captured in
 * the extractor's one pass; a value of a wrong type is ignored, never an error; every list is
 * bounded (MF_MAX_META_FAMILIES, MF_MAX_META_NAME). */
#include "extract_priv.h"

#include <string.h>

int mf__meta_role(int r)
{
    return (r >= R_TARGET && r <= R_SIG_FAMS) || (r >= V_MD5 && r <= V_SIG_FAM);
}

/* Copy a borrowed string into dst[cap] (cap includes the NUL), cut at cap - 1 bytes and at
 * an embedded NUL. Returns the length kept. */
static size_t copy_cut(char *dst, size_t cap, const unsigned char *s, size_t n)
{
    const unsigned char *nul = memchr(s, '\0', n);
    if (nul)
        n = (size_t)(nul - s);
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return n;
}

static int same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* Count `name` in the bounded list fam[*n]; its slot index, or -1 when it was dropped (empty,
 * or the list is full). */
static int meta_add(mf_report_meta_t *m, mf_meta_family_t *fam, size_t *n,
                    const unsigned char *s, size_t len)
{
    char name[MF_MAX_META_NAME + 1];
    if (copy_cut(name, sizeof name, s, len) == 0) {
        m->dropped++;
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        if (same_name(fam[i].name, name))
            return (int)i;
    if (*n >= MF_MAX_META_FAMILIES) {
        m->dropped++;
        return -1;
    }
    memcpy(fam[*n].name, name, sizeof name);
    fam[*n].count = 0;
    return (int)(*n)++;
}

static void meta_detection(mf_extract_t *ex, const unsigned char *s, size_t n)
{
    mf_report_meta_t *m = &ex->meta;
    int i = meta_add(m, m->det, &m->ndet, s, n);
    if (i >= 0) {
        m->det[i].count++;
        m->det_entries++;
    }
}

/* One name of a signature's families list: counted once per signature. */
static void meta_sig_family(mf_extract_t *ex, const unsigned char *s, size_t n)
{
    mf_report_meta_t *m = &ex->meta;
    int i = meta_add(m, m->sig, &m->nsig, s, n);
    if (i < 0 || ex->sig_stamp[i] == ex->sig_cur)
        return;
    ex->sig_stamp[i] = ex->sig_cur;
    m->sig[i].count++;
    if (ex->sig_counted != ex->sig_cur) {
        ex->sig_counted = ex->sig_cur;
        m->sig_entries++;
    }
}

/* A hash of `digits` hex digits into dst (lower-case), else left "". */
static void meta_hash(char *dst, size_t digits, const unsigned char *s, size_t n)
{
    if (n != digits)
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (unsigned char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            dst[0] = '\0';
            return;
        }
        dst[i] = (char)c;
    }
    dst[n] = '\0';
}

/* A string for a label-field role. Returns 1 when `r` was one. */
int mf__meta_string(mf_extract_t *ex, int r, const unsigned char *s, size_t n)
{
    mf_report_meta_t *m = &ex->meta;
    switch (r) {
    case V_MD5:
        meta_hash(m->md5, 32, s, n);
        return 1;
    case V_SHA256:
        meta_hash(m->sha256, 64, s, n);
        return 1;
    case V_DETECTIONS:
        m->det_kind = MF_DET_STRING;
        meta_detection(ex, s, n);
        return 1;
    case V_DET_FAMILY:
        meta_detection(ex, s, n);
        return 1;
    case V_TAG:
        copy_cut(m->tag, sizeof m->tag, s, n);
        return 1;
    case V_SIG_FAM:
        meta_sig_family(ex, s, n);
        return 1;
    case R_DET:
        m->dropped++; /* a detection entry that is not an object */
        return 1;
    default:
        return mf__meta_role(r); /* any other label role: ignored */
    }
}

/* A number, bool or null for a label-field role. Returns 1 when `r` was one. */
int mf__meta_scalar(mf_extract_t *ex, int r, int is_null)
{
    if (r == V_DETECTIONS) {
        if (!is_null)
            ex->meta.det_kind = MF_DET_OTHER;
        return 1;
    }
    if (r == R_DET || r == V_DET_FAMILY || r == V_SIG_FAM) {
        ex->meta.dropped++;
        return 1;
    }
    return mf__meta_role(r);
}

/* A container opens for a label-field role: the role it gets (R_OTHER = skipped). */
int mf__meta_container(mf_extract_t *ex, int r, int is_map)
{
    mf_report_meta_t *m = &ex->meta;
    switch (r) {
    case V_DETECTIONS:
        m->det_kind = is_map ? MF_DET_OTHER : MF_DET_LIST;
        return is_map ? R_OTHER : R_DETS;
    case R_DET:
        if (!is_map) {
            m->dropped++;
            return R_OTHER;
        }
        ex->det_cur = ex->det_open++;
        return R_DET;
    case R_DET_DETAIL: /* only the first entry's first details object names its source */
        return is_map && ex->det_cur == 0 && !m->det_by[0] ? R_DET_DETAIL : R_OTHER;
    case R_SIG:
        if (is_map)
            ex->sig_cur++;
        return is_map ? R_SIG : R_OTHER;
    case V_DET_FAMILY:
    case V_SIG_FAM:
        m->dropped++;
        return R_OTHER;
    case R_TARGET:
    case R_TFILE:
        return is_map ? r : R_OTHER;
    case R_DET_DETAILS:
    case R_SIGS:
    case R_SIG_FAMS:
        return is_map ? R_OTHER : r;
    default:
        return R_OTHER;
    }
}

void mf__meta_detail_key(mf_extract_t *ex, const unsigned char *k, size_t n)
{
    if (!ex->meta.det_by[0]) /* the first key of a detection's details says what found it */
        copy_cut(ex->meta.det_by, sizeof ex->meta.det_by, k, n);
}
