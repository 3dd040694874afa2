/* mf.h - malfam: errors, limits, version, logging hook.
 *
 * Every public function of libmalfam returns 0 (MF_OK) or a negative mf_err code,
 * unless its header says it returns a count. mf_strerror() turns a code into text.
 */
#ifndef MF_MF_H
#define MF_MF_H

#include <stddef.h>
#include <stdint.h>

#define MF_VERSION "0.1.0"

/* X-macro: name, value, message. The enum and mf_strerror() both come from it. */
#define MF_ERRNO_MAP(X)                                                   \
    X(OK, 0, "success")                                                   \
    X(ENOMEM, -1, "out of memory")                                        \
    X(EIO, -2, "I/O error")                                               \
    X(EJSON, -3, "malformed JSON")                                        \
    X(ELIMIT, -4, "limit exceeded")                                       \
    X(EFORMAT, -5, "bad file format")                                     \
    X(EINVAL, -6, "invalid argument")                                     \
    X(ETYPE, -7, "unexpected JSON type")                                  \
    X(ENOENT, -8, "not found")                                            \
    X(ECHECKSUM, -9, "checksum mismatch")                                 \
    X(EVERSION, -10, "unsupported version")                               \
    X(ECANCELED, -11, "canceled")                                         \
    X(EPERM, -12, "not permitted")

typedef enum {
#define MF_ERR_ENUM(name, val, msg) MF_##name = (val),
    MF_ERRNO_MAP(MF_ERR_ENUM)
#undef MF_ERR_ENUM
} mf_err;

/* Text for an error code; never NULL (unknown codes give "unknown error"). */
const char *mf_strerror(int err);
/* Name of an error code ("MF_EJSON"); never NULL. */
const char *mf_err_name(int err);

/* Limits on untrusted input. Hitting one gives MF_ELIMIT or a flagged truncation. */
#define MF_MAX_DEPTH 128            /* JSON nesting depth */
#define MF_MAX_STRING (16u << 20)   /* one JSON token (string, number), bytes */
#define MF_MAX_API_LEN 255          /* an API name; longer names are an error */
#define MF_MAX_PROC_NAME 255        /* a process name is cut to this many bytes */
#define MF_MAX_VOCAB 65536          /* distinct API names in one vocabulary */
#define MF_MAX_REPEATED (1u << 20)  /* an expanded CAPE "repeated" count is capped here */
#define MF_MAX_FAMILIES 4096        /* families in one model */
#define MF_MAX_REQUEST 65536        /* one daemon request line, bytes */
#define MF_MAX_TRACE (1u << 24)     /* calls kept in one trace (64 MiB of ids), whatever the
                                       model's max_len: "repeated" can make a small report
                                       stand for billions of calls */
#define MF_MAX_META_FAMILIES 16     /* distinct family names kept per list of a report's label
                                       fields (detections, signature families); more are
                                       counted as dropped */
#define MF_MAX_META_NAME 127        /* a family name or tag in the label fields is cut to this
                                       many bytes */

/* Log levels for mf_log_fn. */
enum { MF_LOG_ERROR = 0, MF_LOG_WARN = 1, MF_LOG_INFO = 2, MF_LOG_DEBUG = 3 };

/* The library never prints; when given one, it reports progress through this. */
typedef void (*mf_log_fn)(void *ud, int level, const char *msg);

#endif
