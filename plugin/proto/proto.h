/* proto.h - the malfamd wire protocol, shared by the daemon and its clients.
 *
 * One request per line: a JSON object, at most MF_MAX_REQUEST bytes including the newline.
 * One answer per line, in request order. The protocol version (MFP_PROTO_VERSION) is sent as
 * "v" in every answer (answer.h builds them). See docs/protocol.md.
 *
 * Everything here is pure (no I/O except the client helpers at the end) so that the parser
 * can be unit-tested and fuzzed on its own.
 */
#ifndef MF_PROTO_PROTO_H
#define MF_PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "json.h"
#include "mf.h"

#define MFP_PROTO_VERSION 1
#define MFP_ID_MAX 256      /* "id" as JSON text (a string is kept escaped), bytes incl. NUL */
#define MFP_PATH_MAX 4096   /* a request path, bytes incl. NUL */
#define MFP_MODE_MAX 32     /* a scoring mode name */
#define MFP_REQ_DEPTH 8     /* nesting allowed inside ignored (unknown) keys */

typedef enum {
    MFP_OP_NONE = 0,
    MFP_OP_PING,
    MFP_OP_STATS,
    MFP_OP_RELOAD,
    MFP_OP_CLASSIFY,
    MFP_OP_STREAM       /* "classify_stream": `bytes` bytes of report follow the line */
} mfp_op;

/* A parsed request. Fields not given keep the values of mfp_req_init(). */
typedef struct mfp_req {
    mfp_op op;
    char id[MFP_ID_MAX];     /* JSON text to echo back ("null" when absent) */
    char path[MFP_PATH_MAX]; /* classify, and classify_stream with write_back: the report
                              * path (no NUL inside, may be relative) */
    char mode[MFP_MODE_MAX]; /* optional scoring mode name, "" = configured default */
    int write_back;          /* add the answer to the report at path */
    int top;                 /* families to return, 0 = configured default */
    int64_t task_id;         /* -1 when absent; only logged */
    int64_t bytes;           /* classify_stream: body length, -1 when absent */
} mfp_req_t;

void mfp_req_init(mfp_req_t *r);

/* Parse one request line (`len` bytes, no newline needed; a trailing "\r" is allowed).
 * Returns MF_OK, or MF_EJSON (not JSON / not an object), MF_EINVAL (missing op, unknown op,
 * wrong type, bad value, duplicate key), MF_ELIMIT (a field too long, nesting too deep).
 * On error `msg` (cap bytes, may be NULL) gets a one-line reason, and r->id still holds the
 * id when it was read before the error, so the answer can carry it. Never allocates more
 * than the JSON parser's own state. */
int mfp_req_parse(mfp_req_t *r, const char *line, size_t len, char *msg, size_t cap);

/* Name of an op as it appears on the wire ("classify_stream"); "" for MFP_OP_NONE. */
const char *mfp_op_name(mfp_op op);

/* ---- client side ------------------------------------------------------------------------- */

/* A connection to malfamd: fd plus the bytes read past the last answer. */
typedef struct mfp_client {
    int fd;
    char *in;
    size_t n, cap;
} mfp_client_t;

/* Connect to the Unix socket `path`. MF_OK, MF_EINVAL (path too long), MF_ENOENT (no socket
 * there), MF_EPERM (permission denied), MF_EIO (nothing listens, not a socket, other), with
 * detail in err that says what to check ("... is malfamd running (systemctl status ...)"). */
int mfp_client_open(mfp_client_t *c, const char *path, char *err, size_t errlen);
void mfp_client_close(mfp_client_t *c);

/* Write all of buf. MF_OK or MF_EIO (the peer went away). */
int mfp_client_send(mfp_client_t *c, const void *buf, size_t len);

/* Read one answer line into *line (malloc'd, NUL-terminated, newline stripped; the caller
 * frees it). MF_OK, MF_EIO (closed or error), MF_ELIMIT (line over `max` bytes), MF_ENOMEM.
 * `timeout_ms` < 0 waits forever. */
int mfp_client_recv(mfp_client_t *c, char **line, size_t max, int timeout_ms);

#endif
