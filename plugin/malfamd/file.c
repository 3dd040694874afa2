/* file.c - safe open of a report under allowed_roots, top-level scan, atomic write-back. */
#include "private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mf.h"

/* ---- opening ----------------------------------------------------------------------------- */

static int under_root(const char *real, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return real[0] == '/';
    return strncmp(real, root, n) == 0 && real[n] == '/';
}

int mfd_file_open(mfd_file_t *f, const char roots[][4096], int nroots, const char *path, char *err,
                  size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->dirfd = f->fd = -1;
    if (path[0] != '/') {
        snprintf(err, errlen, "path must be absolute");
        return MF_EINVAL;
    }
    if (!realpath(path, f->real)) {
        int e = errno;
        snprintf(err, errlen, "%s", strerror(e));
        return e == ENOENT || e == ENOTDIR ? MF_ENOENT : e == EACCES ? MF_EPERM : MF_EIO;
    }
    const char *root = NULL;
    for (int i = 0; i < nroots && !root; i++)
        if (under_root(f->real, roots[i]))
            root = roots[i];
    if (!root) {
        snprintf(err, errlen, "%s is outside allowed_roots", f->real);
        return MF_EPERM;
    }
    int rc = MF_EPERM;
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "open root %s: %s", root, strerror(errno));
        return MF_EIO;
    }
    /* walk the rest from the root, one component at a time, refusing symlinks */
    const char *p = f->real + (strlen(root) == 1 ? 1 : strlen(root) + 1);
    for (;;) {
        const char *slash = strchr(p, '/');
        if (!slash)
            break;
        char comp[NAME_MAX + 1];
        size_t n = (size_t)(slash - p);
        if (n == 0 || n > NAME_MAX) {
            snprintf(err, errlen, "bad path component");
            goto err;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        int nfd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            int e = errno;
            snprintf(err, errlen, "%s: %s (changed while opening?)", comp, strerror(e));
            rc = e == ENOENT ? MF_ENOENT : MF_EPERM;
            goto err;
        }
        close(dfd);
        dfd = nfd;
        p = slash + 1;
    }
    size_t n = strlen(p);
    if (n == 0 || n >= sizeof f->name) {
        snprintf(err, errlen, "bad file name");
        goto err;
    }
    memcpy(f->name, p, n + 1);
    /* look before opening so that a device is never opened at all */
    struct stat st;
    if (fstatat(dfd, f->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s", strerror(e));
        rc = e == ENOENT ? MF_ENOENT : MF_EIO;
        goto err;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", f->real);
        goto err;
    }
    f->fd = openat(dfd, f->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "open: %s", strerror(e));
        rc = e == ENOENT ? MF_ENOENT : e == ELOOP || e == EACCES ? MF_EPERM : MF_EIO;
        goto err;
    }
    if (fstat(f->fd, &f->st) < 0 || !S_ISREG(f->st.st_mode) || f->st.st_ino != st.st_ino ||
        f->st.st_dev != st.st_dev) {
        snprintf(err, errlen, "%s changed while opening", f->real);
        goto err;
    }
    int fl = fcntl(f->fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(f->fd, F_SETFL, fl & ~O_NONBLOCK);
    f->dirfd = dfd;
    return MF_OK;
err:
    if (f->fd >= 0)
        close(f->fd);
    close(dfd);
    f->fd = f->dirfd = -1;
    return rc;
}

void mfd_file_close(mfd_file_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->dirfd >= 0)
        close(f->dirfd);
    f->fd = f->dirfd = -1;
}

int mfd_file_unchanged(const mfd_file_t *f)
{
    struct stat st;
    if (fstatat(f->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    return st.st_ino == f->st.st_ino && st.st_dev == f->st.st_dev &&
           st.st_size == f->st.st_size && st.st_mtim.tv_sec == f->st.st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec;
}

/* ---- top-level scan ---------------------------------------------------------------------- */

/* Where the scanner is. Inside nested values only strings and brackets matter. */
enum {
    S_START,      /* before the top-level '{' */
    S_KEY,        /* depth 1: expecting a key or '}' */
    S_KEYSTR,     /* depth 1: inside a key string */
    S_COLON,      /* depth 1: after a key */
    S_VALUE,      /* depth 1: expecting a value */
    S_SCALAR,     /* depth 1: inside a number / true / false / null */
    S_STR,        /* inside a string value (any depth) */
    S_NESTED,     /* depth > 1, outside strings */
    S_NEXT,       /* depth 1: after a value, expecting ',' or '}' */
    S_TRAIL       /* after the top-level '}' */
};

void mfd_wb_scan_init(mfd_wb_scan_t *s)
{
    memset(s, 0, sizeof *s);
    s->state = S_START;
}

static int scan_fail(mfd_wb_scan_t *s, int rc, const char *what)
{
    s->err = rc;
    snprintf(s->errmsg, sizeof s->errmsg, "byte %llu: %s", (unsigned long long)s->off, what);
    return rc;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A top-level value ended just before offset `end`. */
static int value_done(mfd_wb_scan_t *s, uint64_t end)
{
    s->last_end = end;
    s->nmembers++;
    if (s->is_malfam)
        s->range[s->nranges++][1] = end;
    s->is_malfam = 0;
    s->state = S_NEXT;
    return MF_OK;
}

int mfd_wb_scan_feed(mfd_wb_scan_t *s, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (s->err)
        return s->err;
    for (size_t i = 0; i < len; i++, s->off++) {
        unsigned char c = p[i];
        switch (s->state) {
        case S_START:
            if (c == '{') {
                s->state = S_KEY;
                s->depth = 1;
                s->last_end = s->off + 1;
            } else if (!is_ws(c)) {
                return scan_fail(s, MF_EFORMAT, "the report is not a JSON object");
            }
            break;
        case S_KEY:
            if (c == '"') {
                s->state = S_KEYSTR;
                s->keylen = 0;
                s->esc = 0;
            } else if (c == '}' && s->nmembers == 0) {
                s->state = S_TRAIL;
                s->depth = 0;
            } else if (!is_ws(c)) {
                return scan_fail(s, MF_EFORMAT, "expected a key");
            }
            break;
        case S_KEYSTR:
            if (s->esc) {
                s->esc = 0;
            } else if (c == '\\') {
                s->esc = 1;
            } else if (c == '"') {
                s->state = S_COLON;
                break;
            }
            /* keep the raw key; only its first bytes are needed to spot "malfam" */
            if (s->keylen < sizeof s->key)
                s->key[s->keylen] = (char)c;
            s->keylen++;
            break;
        case S_COLON:
            if (c == ':') {
                s->state = S_VALUE;
                s->is_malfam = s->keylen == 6 && memcmp(s->key, "malfam", 6) == 0;
            } else if (!is_ws(c)) {
                return scan_fail(s, MF_EFORMAT, "expected ':'");
            }
            break;
        case S_VALUE:
            if (is_ws(c))
                break;
            if (s->is_malfam) {
                if (s->nranges == MFD_WB_MAX_KEYS)
                    return scan_fail(s, MF_ELIMIT, "too many \"malfam\" keys");
                s->range[s->nranges][0] = s->off;
            }
            if (c == '"') {
                s->state = S_STR;
                s->esc = 0;
            } else if (c == '{' || c == '[') {
                s->state = S_NESTED;
                s->depth = 2;
            } else if (c == ',' || c == '}' || c == ']' || c == ':') {
                return scan_fail(s, MF_EFORMAT, "expected a value");
            } else {
                s->state = S_SCALAR;
            }
            break;
        case S_SCALAR:
            if (c == ',' || c == '}' || is_ws(c)) {
                value_done(s, s->off);
                i--, s->off--; /* look at this byte again in S_NEXT */
            }
            break;
        case S_STR:
            if (s->esc)
                s->esc = 0;
            else if (c == '\\')
                s->esc = 1;
            else if (c == '"') {
                if (s->depth == 1)
                    value_done(s, s->off + 1);
                else
                    s->state = S_NESTED;
            }
            break;
        case S_NESTED:
            if (c == '"') {
                s->state = S_STR;
                s->esc = 0;
            } else if (c == '{' || c == '[') {
                s->depth++;
            } else if (c == '}' || c == ']') {
                if (--s->depth == 1)
                    value_done(s, s->off + 1);
            }
            break;
        case S_NEXT:
            if (c == ',')
                s->state = S_KEY;
            else if (c == '}') {
                s->state = S_TRAIL;
                s->depth = 0;
            } else if (!is_ws(c)) {
                return scan_fail(s, MF_EFORMAT, "expected ',' or '}'");
            }
            break;
        case S_TRAIL:
            if (!is_ws(c))
                return scan_fail(s, MF_EFORMAT, "bytes after the top-level object");
            break;
        }
    }
    return MF_OK;
}

int mfd_wb_scan_finish(mfd_wb_scan_t *s)
{
    if (s->err)
        return s->err;
    if (s->state != S_TRAIL)
        return scan_fail(s, MF_EFORMAT, "the report ends inside its top-level object");
    return MF_OK;
}

/* ---- applying the edit ------------------------------------------------------------------- */

/* The edit as a sequence of steps: copy [from, to) of the original, or write the value. */
typedef int (*copy_fn)(void *ctx, uint64_t from, uint64_t to);
typedef int (*emit_fn)(void *ctx, const char *p, size_t n);

static int apply(const mfd_wb_scan_t *s, uint64_t size, const char *value, size_t vlen,
                 copy_fn copy, emit_fn emit, void *ctx)
{
    int rc;
    if (s->nranges == 0) {
        /* add the key after the last member, before the whitespace and the '}' */
        static const char key_first[] = "\"malfam\": ";
        static const char key_next[] = ", \"malfam\": ";
        const char *k = s->nmembers ? key_next : key_first;
        if ((rc = copy(ctx, 0, s->last_end)) || (rc = emit(ctx, k, strlen(k))) ||
            (rc = emit(ctx, value, vlen)) || (rc = copy(ctx, s->last_end, size)))
            return rc;
        return MF_OK;
    }
    uint64_t at = 0;
    for (int i = 0; i < s->nranges; i++) {
        if ((rc = copy(ctx, at, s->range[i][0])) || (rc = emit(ctx, value, vlen)))
            return rc;
        at = s->range[i][1];
    }
    return copy(ctx, at, size);
}

typedef struct {
    const char *orig;
    mfp_buf_t *out;
} mem_ctx_t;

static int mem_copy(void *ctx, uint64_t from, uint64_t to)
{
    mem_ctx_t *m = ctx;
    mfp_buf_add(m->out, m->orig + from, (size_t)(to - from));
    return m->out->oom ? MF_ENOMEM : MF_OK;
}

static int mem_emit(void *ctx, const char *p, size_t n)
{
    mem_ctx_t *m = ctx;
    mfp_buf_add(m->out, p, n);
    return m->out->oom ? MF_ENOMEM : MF_OK;
}

int mfd_wb_apply_mem(const mfd_wb_scan_t *s, const char *orig, size_t len, const char *value,
                     size_t vlen, mfp_buf_t *out)
{
    if (s->err || s->state != S_TRAIL || s->off != len)
        return MF_EINVAL;
    mem_ctx_t m = {orig, out};
    return apply(s, len, value, vlen, mem_copy, mem_emit, &m);
}

typedef struct {
    int in, out;
    char *buf;
    size_t cap;
    char *err;
    size_t errlen;
} fd_ctx_t;

static int write_all(fd_ctx_t *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(c->out, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(c->err, c->errlen, "write: %s", strerror(errno));
            return MF_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return MF_OK;
}

static int fd_copy(void *ctx, uint64_t from, uint64_t to)
{
    fd_ctx_t *c = ctx;
    while (from < to) {
        size_t want = to - from < c->cap ? (size_t)(to - from) : c->cap;
        ssize_t r = pread(c->in, c->buf, want, (off_t)from);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(c->err, c->errlen, "read: %s", r < 0 ? strerror(errno)
                                                          : "report shrank while labelling");
            return r < 0 ? MF_EIO : MF_ECANCELED;
        }
        int rc = write_all(c, c->buf, (size_t)r);
        if (rc)
            return rc;
        from += (uint64_t)r;
    }
    return MF_OK;
}

static int fd_emit(void *ctx, const char *p, size_t n)
{
    return write_all(ctx, p, n);
}

int mfd_wb_commit(const mfd_file_t *f, const mfd_wb_scan_t *s, const char *value,
                  size_t vlen, char *err, size_t errlen)
{
    static unsigned counter;
    if (s->err || s->state != S_TRAIL || (off_t)s->off != f->st.st_size) {
        snprintf(err, errlen, "report not fully scanned");
        return MF_EINVAL;
    }
    char tmp[300];
    unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    if (strlen(f->name) + 40 < 256)
        snprintf(tmp, sizeof tmp, ".%s.malfam-%ld-%u.tmp", f->name, (long)getpid(), n);
    else
        snprintf(tmp, sizeof tmp, ".malfam-%ld-%u.tmp", (long)getpid(), n);
    int out = openat(f->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        snprintf(err, errlen, "create temp file: %s", strerror(errno));
        return errno == EACCES || errno == EROFS ? MF_EPERM : MF_EIO;
    }
    int rc = MF_OK;
    char *buf = malloc(1 << 16);
    if (!buf) {
        rc = MF_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* owner first (chown may clear set-id bits), then the mode */
    if ((f->st.st_uid != geteuid() || f->st.st_gid != getegid()) &&
        fchown(out, f->st.st_uid, f->st.st_gid) < 0) {
        snprintf(err, errlen, "cannot keep owner %ld:%ld: %s", (long)f->st.st_uid,
                 (long)f->st.st_gid, strerror(errno));
        rc = MF_EPERM;
        goto fail;
    }
    if (fchmod(out, f->st.st_mode & 07777) < 0) {
        snprintf(err, errlen, "fchmod: %s", strerror(errno));
        rc = MF_EIO;
        goto fail;
    }
    fd_ctx_t c = {f->fd, out, buf, 1 << 16, err, errlen};
    if ((rc = apply(s, (uint64_t)f->st.st_size, value, vlen, fd_copy, fd_emit, &c)))
        goto fail;
    if (fsync(out) < 0) {
        snprintf(err, errlen, "fsync: %s", strerror(errno));
        rc = MF_EIO;
        goto fail;
    }
    if (close(out) < 0) {
        out = -1;
        snprintf(err, errlen, "close: %s", strerror(errno));
        rc = MF_EIO;
        goto fail;
    }
    out = -1;
    if (!mfd_file_unchanged(f)) {
        snprintf(err, errlen, "the report changed while being labelled; left as it is");
        rc = MF_ECANCELED;
        goto fail;
    }
    if (renameat(f->dirfd, tmp, f->dirfd, f->name) < 0) {
        snprintf(err, errlen, "rename: %s", strerror(errno));
        rc = MF_EIO;
        goto fail;
    }
    free(buf);
    /* the rename is durable only once the directory is */
    if (fsync(f->dirfd) < 0) {
        snprintf(err, errlen, "fsync directory: %s", strerror(errno));
        return MF_EIO;
    }
    return MF_OK;
fail:
    if (out >= 0)
        close(out);
    unlinkat(f->dirfd, tmp, 0);
    free(buf);
    return rc;
}

/* The PID in a temp name of ours for report `name`: ".NAME.malfam-PID-N.tmp". 0 if `ent` is
 * not one (so no caller ever probes PID 0 or a negative one, which kill() would broadcast). */
static pid_t stale_pid(const char *ent, const char *name)
{
    size_t n = strlen(name);
    if (ent[0] != '.' || strncmp(ent + 1, name, n) != 0 || strncmp(ent + 1 + n, ".malfam-", 8))
        return 0;
    const char *p = ent + 1 + n + 8;
    long long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (!digits || *p++ != '-' || !(*p >= '0' && *p <= '9'))
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (strcmp(p, ".tmp") != 0 || pid <= 0 || pid > INT_MAX)
        return 0;
    return (pid_t)pid;
}

int mfd_wb_clean_stale(const mfd_file_t *f)
{
    /* fdopendir takes the descriptor it is given: hand it a duplicate */
    int dfd = fcntl(f->dirfd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid = stale_pid(e->d_name, f->name);
        if (pid <= 0 || !(kill(pid, 0) < 0 && errno == ESRCH))
            continue;
        struct stat st;
        if (fstatat(f->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            unlinkat(f->dirfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
