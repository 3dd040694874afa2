/* extract_priv.h - the extractor's state, shared by extract.c (the parser), extract_input.c
 * (decoding and feeding) and extract_meta.c (label fields). Not installed.
 *
 * The extractor keeps one role per open JSON container (root, behavior, processes array,
 * process, calls array, call, other). A key inside a known map sets what the next value is;
 * everything else is skipped by counting depth, without copying. A call is emitted when its
 * object closes, because "repeated" comes after "api" in CAPE and key order is not guaranteed.
 */
#ifndef MF_EXTRACT_PRIV_H
#define MF_EXTRACT_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_parse.h>
#include <zlib.h>

#include "mf.h"
#include "trace.h"

enum role {
    R_OTHER = 0, /* skipped container */
    R_ROOT,      /* the top-level object */
    R_INFO,      /* info */
    R_BEHAVIOR,  /* behavior */
    R_PROCS,     /* behavior.processes or a bare processes array */
    R_PROC,      /* one process */
    R_CALLS,     /* its calls array */
    R_CALL,      /* one call */
    /* label fields (opts.want_meta): a wrong type is ignored, never an error */
    R_TARGET,    /* target */
    R_TFILE,     /* target.file */
    R_DETS,      /* detections as a list */
    R_DET,       /* one detection entry */
    R_DET_DETAILS, /* its details list */
    R_DET_DETAIL,  /* one details object: its first key says what detected it */
    R_SIGS,      /* signatures */
    R_SIG,       /* one signature */
    R_SIG_FAMS,  /* its families list */
    /* scalar values we keep */
    V_INFO_ID,
    V_PID,
    V_PNAME,
    V_API,
    V_REPEATED,
    V_MD5,
    V_SHA256,
    V_DETECTIONS, /* a string, a list, or anything else */
    V_DET_FAMILY,
    V_TAG,
    V_SIG_FAM,
};

/* A trace uses few distinct APIs, so nearly every call hits this cache and skips the
 * vocabulary's hash table. len 0 = empty (API names are never empty). */
typedef struct {
    uint32_t hash;
    int id;
    size_t len;
    char name[MF_MAX_API_LEN + 1];
} name_slot_t;

struct mf_extract {
    yajl_handle yh;
    yajl_callbacks cb; /* yajl keeps this pointer, so arm() can switch callbacks mid-parse */
    mf_extract_opts_t opts;
    mf_vocab_t *vocab;
    mf_extract_cbs_t cbs;
    void *ud;

    unsigned char role[MF_MAX_DEPTH + 1]; /* role of the open container at each depth */
    int depth;                            /* 0 = outside the root value */
    int skip;                             /* levels open inside a skipped container */
    int expect;                           /* role of the value after the last key */

    /* the current process */
    int64_t pid;
    char pname[MF_MAX_PROC_NAME + 1];
    size_t proc_calls;
    char last_api[MF_MAX_API_LEN + 1]; /* last emitted name in this process (fold) */
    size_t last_len;
    name_slot_t cache[64]; /* names already looked up, direct-mapped by hash */

    /* the current call */
    char api[MF_MAX_API_LEN + 1];
    size_t api_len;
    uint32_t api_hash;
    int has_api;
    uint32_t repeated;

    /* label fields (opts.want_meta) */
    mf_report_meta_t meta;
    int calls_done;      /* calls stopped (cap, callback, full trace); the rest is read for meta */
    size_t det_open;     /* detection entries opened so far */
    size_t det_cur;      /* index of the open one */
    uint32_t sig_cur;    /* 1-based number of the open signature */
    uint32_t sig_stamp[MF_MAX_META_FAMILIES]; /* last signature that counted meta.sig[i] */
    uint32_t sig_counted;  /* last signature counted in meta.sig_entries */

    uint64_t *seen; /* (MF_MAX_VOCAB/64) bitset of emitted ids, for stats.distinct */
    mf_extract_stats_t st;

    /* the trace being built (mf_extract_new_trace), else out is NULL */
    mf_trace_t *out;
    mf_prep_t prep;
    const mf_prep_t *prep_p; /* &prep, or NULL: keep every known call */

    /* input decoding: the first two bytes decide plain / gzip / zlib */
    unsigned char magic[2];
    size_t nmagic;
    z_stream z;
    int zinit;              /* inflateInit2 done */
    int zend;               /* the last compressed member ended; nothing pending */
    unsigned char *zbuf;    /* ZCHUNK bytes of inflated output */

    uint64_t chunk_base; /* JSON bytes parsed before the current chunk */
    size_t yajl_block;   /* largest block yajl has (re)allocated: its token buffer */
    /* JSON bytes held back from yajl until there are yajl_block/4 of them (see
     * mf__extract_parse); yajl_calls counts yajl_parse calls, for the tests */
    unsigned char *pend;
    size_t npend, pend_cap;
    uint64_t yajl_calls;
    int stopped;         /* a cap or callback ended the parse early */
    int err;             /* sticky error */
    char errmsg[256];
};

/* Parse `len` bytes of decoded JSON text (extract_input.c). MF_OK or the error. */
int mf__extract_parse(mf_extract_t *ex, const unsigned char *buf, size_t len);

/* Label fields (extract_meta.c), called by the parser when opts.want_meta. */
int mf__meta_role(int r);                      /* is r a role of a label field? */
int mf__meta_string(mf_extract_t *ex, int r, const unsigned char *s, size_t n);
int mf__meta_scalar(mf_extract_t *ex, int r, int is_null);
int mf__meta_container(mf_extract_t *ex, int r, int is_map);
void mf__meta_detail_key(mf_extract_t *ex, const unsigned char *k, size_t n);

#endif
