/* extract_input.c - report bytes into the extractor: plain JSON, gzip (every member) or zlib,
 * told apart by the first two bytes; the byte limit on the inflated JSON; truncation; files. */
#include "extract_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Map a yajl status after parse/complete to our code and message. */
static int after_parse(mf_extract_t *ex, yajl_status s, const unsigned char *buf, size_t len)
{
    if (s == yajl_status_ok)
        return MF_OK;
    if (s == yajl_status_client_canceled && !ex->err)
        return MF_OK; /* stopped on purpose: a cap or a callback */
    if (!ex->err) {
        unsigned char *msg = yajl_get_error(ex->yh, 0, buf, len);
        uint64_t at = ex->chunk_base + yajl_get_bytes_consumed(ex->yh);
        ex->err = MF_EJSON;
        snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: %s", (unsigned long long)at,
                 msg ? (const char *)msg : "parse error");
        if (msg)
            yajl_free_error(ex->yh, msg);
        /* yajl ends its message with a newline: the detail is one line in logs and answers */
        size_t n = strlen(ex->errmsg);
        while (n > 0 && (ex->errmsg[n - 1] == '\n' || ex->errmsg[n - 1] == ' '))
            ex->errmsg[--n] = '\0';
    }
    return ex->err;
}

/* Hand `len` bytes that start at JSON byte `base` to yajl. */
static int parse_now(mf_extract_t *ex, const unsigned char *buf, size_t len, uint64_t base)
{
    ex->chunk_base = base;
    ex->yajl_calls++;
    yajl_status s = yajl_parse(ex->yh, buf, len);
    int rc = after_parse(ex, s, buf, len);
    if (rc == MF_OK && ex->stopped)
        ex->st.truncated = 1;
    /* yajl buffers a token that straddles chunks; bound it so memory stays bounded. */
    if (rc == MF_OK && ex->yajl_block > MF_MAX_STRING) {
        ex->err = MF_ELIMIT;
        snprintf(ex->errmsg, sizeof ex->errmsg,
                 "byte %llu: a single JSON token longer than %u bytes",
                 (unsigned long long)ex->st.bytes, MF_MAX_STRING);
        return ex->err;
    }
    return rc;
}

/* Parse what was held back, if anything. */
static int parse_pending(mf_extract_t *ex)
{
    if (ex->npend == 0)
        return MF_OK;
    size_t n = ex->npend;
    ex->npend = 0;
    return parse_now(ex, ex->pend, n, ex->st.bytes - n);
}

/* Parse `len` bytes of JSON text (decoded input).
 * yajl re-reads a token that straddles chunks from its first byte at every new chunk, so a
 * long token fed 64 KiB at a time cost time quadratic in its length (15 MiB: 17 s). Its token
 * buffer is at least as large as the token it holds (it doubles), so chunks of a quarter of
 * its largest block at least make every re-read pay for itself: linear time, at the price of
 * holding back up to that quarter. Ordinary reports never grow the buffer past a few KiB and
 * are parsed as they come, without a copy. */
int mf__extract_parse(mf_extract_t *ex, const unsigned char *buf, size_t len)
{
    if (ex->opts.max_bytes && ex->st.bytes + len > ex->opts.max_bytes) {
        ex->err = MF_ELIMIT;
        snprintf(ex->errmsg, sizeof ex->errmsg, "report larger than %llu bytes%s",
                 (unsigned long long)ex->opts.max_bytes,
                 ex->st.encoding == MF_ENC_PLAIN ? "" : " after decompression");
        return ex->err;
    }
    size_t want = ex->yajl_block / 4;
    if (ex->npend == 0 && len >= want) {
        ex->st.bytes += len;
        return parse_now(ex, buf, len, ex->st.bytes - len);
    }
    if (ex->npend + len > ex->pend_cap) {
        size_t cap = want + len; /* npend < want: room until the flush */
        unsigned char *p = mf__realloc(ex->pend, cap);
        if (!p) {
            ex->err = MF_ENOMEM;
            snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: out of memory for a long token",
                     (unsigned long long)ex->st.bytes);
            return ex->err;
        }
        ex->pend = p;
        ex->pend_cap = cap;
    }
    memcpy(ex->pend + ex->npend, buf, len);
    ex->npend += len;
    ex->st.bytes += len;
    return ex->npend >= want ? parse_pending(ex) : MF_OK;
}

enum { ZCHUNK = 64 * 1024 };

static int zfail(mf_extract_t *ex, int err, const char *what)
{
    ex->err = err;
    snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu of the %s file: %s",
             (unsigned long long)(ex->st.raw_bytes - ex->z.avail_in),
             ex->st.encoding == MF_ENC_GZIP ? "gzip" : "zlib", what);
    return err;
}

/* The first two bytes decide the encoding. zlib: a deflate header with a 32 KiB window
 * (0x78) and a valid check; no JSON report starts with 'x'. */
static int start_decoding(mf_extract_t *ex)
{
    const unsigned char *m = ex->magic;
    if (m[0] == 0x1f && m[1] == 0x8b)
        ex->st.encoding = MF_ENC_GZIP;
    else if (m[0] == 0x78 && ((unsigned)m[0] << 8 | m[1]) % 31 == 0)
        ex->st.encoding = MF_ENC_ZLIB;
    else
        ex->st.encoding = MF_ENC_PLAIN;
    if (ex->st.encoding == MF_ENC_PLAIN)
        return MF_OK;
    ex->zbuf = mf__malloc(ZCHUNK);
    if (!ex->zbuf || inflateInit2(&ex->z, 15 + 32) != Z_OK) { /* 32: gzip or zlib header */
        ex->err = MF_ENOMEM;
        snprintf(ex->errmsg, sizeof ex->errmsg, "out of memory for inflate");
        return ex->err;
    }
    ex->zinit = 1;
    return MF_OK;
}

/* Inflate `len` compressed bytes and parse what comes out, ZCHUNK at a time, so a small
 * file that inflates to gigabytes is stopped by max_bytes, not by memory. */
static int inflate_feed(mf_extract_t *ex, const unsigned char *buf, size_t len)
{
    z_stream *z = &ex->z;
    z->next_in = (unsigned char *)buf;
    z->avail_in = (uInt)len;
    for (;;) {
        if (ex->stopped)
            return MF_OK;
        if (ex->zend) {
            if (z->avail_in == 0)
                return MF_OK;
            if (ex->st.encoding == MF_ENC_ZLIB)
                return zfail(ex, MF_EFORMAT, "data after the end of the stream");
            if (inflateReset(z) != Z_OK) /* concatenated gzip members: a new one begins */
                return zfail(ex, MF_EFORMAT, "cannot start the next member");
            ex->zend = 0;
        }
        z->next_out = ex->zbuf;
        z->avail_out = ZCHUNK;
        int zr = inflate(z, Z_NO_FLUSH);
        if (zr == Z_MEM_ERROR)
            return zfail(ex, MF_ENOMEM, "out of memory");
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
            return zfail(ex, MF_EFORMAT, z->msg ? z->msg : "corrupt data");
        size_t got = ZCHUNK - z->avail_out;
        if (got) {
            int rc = mf__extract_parse(ex, ex->zbuf, got);
            if (rc != MF_OK)
                return rc;
        }
        if (zr == Z_STREAM_END)
            ex->zend = 1;
        else if (zr == Z_BUF_ERROR || (z->avail_in == 0 && z->avail_out != 0))
            return MF_OK; /* all input taken, all output drained: wait for more */
    }
}

/* Bytes of the report as its encoding wants them: inflated first, or parsed as they are. */
static int decode(mf_extract_t *ex, const unsigned char *buf, size_t len)
{
    return ex->zinit ? inflate_feed(ex, buf, len) : mf__extract_parse(ex, buf, len);
}

int mf_extract_feed(mf_extract_t *ex, const void *buf, size_t len)
{
    if (ex->err)
        return ex->err;
    ex->st.raw_bytes += len;
    if (ex->stopped)
        return MF_OK; /* accepted and ignored */
    const unsigned char *p = buf;
    if (ex->st.encoding == MF_ENC_UNKNOWN) {
        while (ex->nmagic < 2 && len > 0) {
            ex->magic[ex->nmagic++] = *p++;
            len--;
        }
        if (ex->nmagic < 2)
            return MF_OK; /* a one-byte chunk: wait for the second byte */
        int rc = start_decoding(ex);
        if (rc == MF_OK)
            rc = decode(ex, ex->magic, 2);
        if (rc != MF_OK || len == 0)
            return rc;
    }
    return decode(ex, p, len);
}

int mf_extract_finish(mf_extract_t *ex)
{
    if (ex->err)
        return ex->err;
    if (ex->stopped)
        return MF_OK;
    if (ex->st.encoding == MF_ENC_UNKNOWN && ex->nmagic == 1) {
        ex->st.encoding = MF_ENC_PLAIN; /* a one-byte report: parse it (and fail) as JSON */
        int rc = mf__extract_parse(ex, ex->magic, 1);
        if (rc != MF_OK)
            return rc;
    }
    int prc = parse_pending(ex);
    if (prc != MF_OK || ex->stopped)
        return prc;
    if (ex->zinit && !ex->zend)
        return zfail(ex, MF_EFORMAT, "truncated (the stream ends inside a member)");
    if (ex->st.bytes == 0) {
        ex->err = MF_EJSON;
        snprintf(ex->errmsg, sizeof ex->errmsg, "byte 0: empty input");
        return ex->err;
    }
    ex->chunk_base = ex->st.bytes;
    int rc = after_parse(ex, yajl_complete_parse(ex->yh), NULL, 0);
    if (rc == MF_EJSON && ex->depth > 0) {
        snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: truncated input (%d open)",
                 (unsigned long long)ex->st.bytes, ex->depth);
    }
    return rc;
}

/* ---- whole files ------------------------------------------------------------------------- */

int mf_extract_fd(mf_extract_t *ex, int fd)
{
    enum { CHUNK = 64 * 1024 };
    unsigned char *in = mf__malloc(CHUNK);
    if (!in)
        return MF_ENOMEM;
    int rc = MF_OK;
    while (rc == MF_OK && !ex->stopped) {
        ssize_t n = read(fd, in, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ex->err = rc = MF_EIO;
            snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: read: %s",
                     (unsigned long long)ex->st.raw_bytes, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        rc = mf_extract_feed(ex, in, (size_t)n);
    }
    mf__free(in);
    if (rc == MF_OK)
        rc = mf_extract_finish(ex);
    return rc;
}

int mf_extract_file(const char *path, const mf_extract_opts_t *opts, const mf_prep_t *prep,
                    mf_vocab_t *vocab, mf_trace_t *out, mf_extract_stats_t *stats,
                    mf_report_meta_t *meta, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", strerror(errno));
        return MF_EIO;
    }
    mf_extract_opts_t o;
    if (opts)
        o = *opts;
    else
        mf_prep_extract_opts(prep, &o);
    o.want_meta = o.want_meta || meta; /* the label fields come in the same single pass */
    mf_extract_t *ex = mf_extract_new_trace(&o, prep, vocab, out);
    int rc = ex ? mf_extract_fd(ex, fd) : MF_ENOMEM;
    if (ex && rc != MF_OK && err && errlen)
        snprintf(err, errlen, "%s", ex->err ? ex->errmsg : mf_strerror(rc));
    if (ex && stats)
        *stats = ex->st;
    if (ex && meta && rc == MF_OK)
        *meta = ex->meta;
    mf_extract_free(ex);
    close(fd);
    return rc;
}
