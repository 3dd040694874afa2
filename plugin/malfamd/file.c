/* file.c - safe open of a report under allowed_roots, top-level scan, atomic write-back. */
#include "private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mf.h"

/* ---- opening ----------------------------------------------------------------------------- */

/* Where canonical path `p` ("" is "/") lies against the roots (realpath'ed at load):
 * 2 a root or under one, 1 a directory above a root, 0 elsewhere. */
static int place(const char *p, const char roots[][4096], int nroots)
{
    int above = 0;
    size_t n = strlen(p);
    for (int i = 0; i < nroots; i++) {
        const char *r = roots[i];
        size_t rn = strlen(r);
        if (rn == 1 && r[0] == '/')
            return 2;
        if (strncmp(p, r, rn) == 0 && (p[rn] == '\0' || p[rn] == '/'))
            return 2;
        if (strncmp(r, p, n) == 0 && r[n] == '/')
            above = 1;
    }
    return above;
}

static int errno_rc(int e)
{
    return e == ENOENT || e == ENOTDIR ? MF_ENOENT : e == EACCES || e == ELOOP ? MF_EPERM : MF_EIO;
}

/* Resolve `path` (absolute) into `out` as realpath would, without telling anything about the
 * files outside the roots: every failure there, and every path that ends outside, gets the
 * same words, which name no target. Components outside the roots are still followed (a report
 * path may go through a symlink outside the roots that leads into one, as a host may spell
 * it), but ".." is refused there, so that no path can step into a directory outside and back
 * again to learn whether that directory exists. */
static int resolve(const char *path, const char roots[][4096], int nroots, char *out,
                   char *err, size_t errlen)
{
    static const char outside[] = "the path is outside allowed_roots";
    char rest[2 * PATH_MAX], tmp[2 * PATH_MAX], cand[PATH_MAX], link[PATH_MAX];
    size_t clen = 0;
    int links = 0;
    out[0] = '\0';
    if (strlen(path) >= sizeof rest) {
        snprintf(err, errlen, "path too long");
        return MF_EINVAL;
    }
    strcpy(rest, path);
    size_t at = 0;
    while (rest[at]) {
        while (rest[at] == '/')
            at++;
        size_t n = strcspn(rest + at, "/");
        const char *comp = rest + at;
        at += n;
        if (n == 0 || (n == 1 && comp[0] == '.'))
            continue;
        if (n == 2 && comp[0] == '.' && comp[1] == '.') {
            if (place(out, roots, nroots) == 0)
                goto outside;
            while (clen > 0 && out[clen - 1] != '/')
                clen--;
            if (clen > 0)
                clen--;
            out[clen] = '\0';
            continue;
        }
        if (n > NAME_MAX || clen + 1 + n >= PATH_MAX) {
            snprintf(err, errlen, "path too long");
            return MF_EINVAL;
        }
        memcpy(cand, out, clen);
        cand[clen] = '/';
        memcpy(cand + clen + 1, comp, n);
        cand[clen + 1 + n] = '\0';
        int inside = place(cand, roots, nroots) == 2;
        struct stat st;
        if (lstat(cand, &st) < 0) {
            int e = errno;
            if (!inside)
                goto outside;
            snprintf(err, errlen, "%s", strerror(e));
            return errno_rc(e);
        }
        if (S_ISLNK(st.st_mode)) {
            ssize_t ln = readlink(cand, link, sizeof link - 1);
            if (++links > 40 || ln <= 0) {
                if (!inside)
                    goto outside;
                snprintf(err, errlen, "%s", ln <= 0 ? "unreadable symlink" : strerror(ELOOP));
                return MF_EPERM;
            }
            link[ln] = '\0';
            int r = snprintf(tmp, sizeof tmp, "%s%s", link, rest + at);
            if (r < 0 || (size_t)r >= sizeof tmp) {
                snprintf(err, errlen, "path too long");
                return MF_EINVAL;
            }
            strcpy(rest, tmp);
            at = 0;
            if (link[0] == '/')
                clen = 0, out[0] = '\0';
            continue;
        }
        if (rest[at] && !S_ISDIR(st.st_mode)) {
            if (!inside)
                goto outside;
            snprintf(err, errlen, "%s", strerror(ENOTDIR));
            return MF_ENOENT;
        }
        memcpy(out, cand, clen + 1 + n + 1);
        clen += 1 + n;
    }
    if (place(out, roots, nroots) == 2)
        return MF_OK;
outside:
    snprintf(err, errlen, "%s", outside);
    return MF_EPERM;
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
    int rc = resolve(path, roots, nroots, f->real, err, errlen);
    if (rc != MF_OK)
        return rc;
    /* Open it again from "/" one component at a time, refusing symlinks: the roots and the
     * directories above them included, so that a root (or a parent) swapped for a symlink
     * after the resolution fails here instead of leading outside. */
    rc = MF_EPERM;
    int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "open /: %s", strerror(errno));
        return MF_EIO;
    }
    const char *p = f->real + 1;
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

const char *mfd_fd_path(int fd, char buf[MFD_FD_PATH_LEN])
{
    snprintf(buf, MFD_FD_PATH_LEN, "/proc/self/fd/%d", fd);
    return buf;
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

/* ---- who may write back ------------------------------------------------------------------ */

/* Is `gid` one of the groups of user `uid` in the group database? */
static int in_groups_of(uid_t uid, gid_t primary, gid_t gid)
{
    char buf[4096];
    struct passwd pw, *res = NULL;
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) != 0 || !res)
        return 0;
    gid_t groups[256];
    int n = 256;
    if (getgrouplist(pw.pw_name, primary, groups, &n) < 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

int mfd_wb_allowed(const mfd_config_t *cfg, const mfd_peer_t *peer, const struct stat *st,
                   char *err, size_t errlen)
{
    if (!peer || !peer->known) {
        snprintf(err, errlen, "write_back refused: the client's credentials are unknown");
        return MF_EPERM;
    }
    if (peer->uid == 0 || peer->uid == geteuid())
        return MF_OK;
    for (int i = 0; i < cfg->nwrite_back_uids; i++)
        if (peer->uid == cfg->write_back_uids[i])
            return MF_OK;
    for (int i = 0; i < cfg->nwrite_back_gids; i++)
        if (peer->gid == cfg->write_back_gids[i])
            return MF_OK;
    /* the permission class the kernel would use for the peer: owner, group, others */
    mode_t w = peer->uid == st->st_uid ? S_IWUSR
             : peer->gid == st->st_gid || in_groups_of(peer->uid, peer->gid, st->st_gid)
                 ? S_IWGRP : S_IWOTH;
    if (st->st_mode & w)
        return MF_OK;
    snprintf(err, errlen, "write_back refused: uid %ld may not write this report itself "
             "(write_back_uids / write_back_gids in malfamd.conf)", (long)peer->uid);
    return MF_EPERM;
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

static void key_byte(mfd_wb_scan_t *s, char c)
{
    if (s->keylen < sizeof s->key)
        s->key[s->keylen] = c;
    s->keylen++;
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
                s->uhex = 0;
            } else if (c == '}' && s->nmembers == 0) {
                s->state = S_TRAIL;
                s->depth = 0;
            } else if (!is_ws(c)) {
                return scan_fail(s, MF_EFORMAT, "expected a key");
            }
            break;
        case S_KEYSTR:
            /* the key as a JSON parser sees it (escapes decoded), first bytes only: any
             * spelling of "malfam" (e.g. "malf\u0061m") is the same member */
            if (s->uhex) {
                int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (h < 0)
                    return scan_fail(s, MF_EFORMAT, "bad \\u escape in a key");
                s->ucode = s->ucode << 4 | (unsigned)h;
                if (--s->uhex == 0)
                    /* non-ASCII never spells "malfam": one byte >= 0x80 stands for it */
                    key_byte(s, s->ucode < 0x80 ? (char)s->ucode : (char)0x80);
            } else if (s->esc) {
                s->esc = 0;
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                const char *e = c ? strchr(from, c) : NULL;
                if (c == 'u')
                    s->uhex = 4, s->ucode = 0;
                else if (e)
                    key_byte(s, to[e - from]);
                else
                    return scan_fail(s, MF_EFORMAT, "bad escape in a key");
            } else if (c == '\\') {
                s->esc = 1;
            } else if (c == '"') {
                s->state = S_COLON;
            } else {
                key_byte(s, (char)c);
            }
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

/* Same file, same size and mtime? */
static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Extended attributes (user.*, POSIX ACLs as system.posix_acl_*, security labels) of `in` onto
 * `out`. One the temp file already holds with the same value (a default label) is fine; any
 * other that cannot be set refuses the write-back rather than drop it. */
static int copy_xattrs(int in, int out, char *err, size_t errlen)
{
    ssize_t n = flistxattr(in, NULL, 0);
    if (n < 0 && (errno == ENOTSUP || errno == ENOSYS))
        return MF_OK;
    if (n <= 0) {
        if (n < 0)
            snprintf(err, errlen, "list extended attributes: %s", strerror(errno));
        return n < 0 ? MF_EIO : MF_OK;
    }
    char *names = malloc((size_t)n), *val = NULL, *have = NULL;
    int rc = MF_ENOMEM;
    snprintf(err, errlen, "out of memory");
    if (!names || (n = flistxattr(in, names, (size_t)n)) < 0) {
        if (names)
            snprintf(err, errlen, "list extended attributes: %s", strerror(errno)), rc = MF_EIO;
        goto done;
    }
    rc = MF_OK;
    for (char *name = names; name < names + n; name += strlen(name) + 1) {
        ssize_t v = fgetxattr(in, name, NULL, 0);
        free(val);
        val = v >= 0 ? malloc((size_t)v + 1) : NULL;
        if (v < 0 || !val || (v = fgetxattr(in, name, val, (size_t)v)) < 0) {
            snprintf(err, errlen, "read extended attribute %s: %s", name,
                     val ? strerror(errno) : "out of memory");
            rc = val ? MF_EIO : MF_ENOMEM;
            break;
        }
        if (fsetxattr(out, name, val, (size_t)v, 0) == 0)
            continue;
        int e = errno;
        free(have);
        have = malloc((size_t)v + 1);
        if (have && fgetxattr(out, name, have, (size_t)v + 1) == v && memcmp(have, val, (size_t)v) == 0)
            continue;
        snprintf(err, errlen, "cannot keep extended attribute %s: %s", name, strerror(e));
        rc = e == EPERM || e == EACCES ? MF_EPERM : MF_EIO;
        break;
    }
done:
    free(names);
    free(val);
    free(have);
    return rc;
}

/* This daemon's instance in temp-file names: PID, boot id and the process's start time (clock
 * ticks since boot, /proc/PID/stat field 22), so that a later daemon with the same PID (PID 1
 * in a container) still knows the temps of an earlier one for stale. */
static char boot_id[13] = "000000000000";
static unsigned long long start_ticks;
static pthread_once_t instance_once = PTHREAD_ONCE_INIT;

/* Start time of process `pid`, 0 when unknown. */
static unsigned long long proc_start(long pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *s = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!s)
        return 0;
    s++;
    for (int field = 3; field < 22; field++) { /* s is before field 3 (state) */
        s = strchr(s + 1, ' ');
        if (!s)
            return 0;
    }
    return strtoull(s + 1, NULL, 10);
}

static void instance_init(void)
{
    char b[64] = "";
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, b, sizeof b - 1);
        close(fd);
        b[n > 0 ? n : 0] = '\0';
    }
    for (size_t i = 0, j = 0; b[i] && j < 12; i++)
        if ((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'f'))
            boot_id[j++] = b[i];
    start_ticks = proc_start((long)getpid());
}

void (*mfd_wb_race_hook)(const mfd_file_t *f);

void mfd_wb_instance(char boot[13], unsigned long long *start)
{
    pthread_once(&instance_once, instance_init);
    memcpy(boot, boot_id, 13);
    *start = start_ticks;
}

/* Put the temp file (written, synced) in place of the report, but only if the report is still
 * the file that was read: a replacement that lands at any moment must never be overwritten by
 * this older, labelled copy. The names are exchanged atomically, then what came out is looked
 * at; if it is not the file read, it goes back. */
static int put_in_place(const mfd_file_t *f, const char *tmp, const struct stat *mine, char *err,
                        size_t errlen)
{
    static const char changed[] = "the report changed while being labelled; left as it is";
    if (!mfd_file_unchanged(f)) {
        snprintf(err, errlen, "%s", changed);
        return MF_ECANCELED;
    }
    if (mfd_wb_race_hook)
        mfd_wb_race_hook(f);
    if (renameat2(f->dirfd, tmp, f->dirfd, f->name, RENAME_EXCHANGE) < 0) {
        if (errno != EINVAL && errno != ENOSYS) {
            snprintf(err, errlen, "rename: %s", strerror(errno));
            return MF_EIO;
        }
        /* a file system without exchange: a plain rename after the check above */
        if (renameat(f->dirfd, tmp, f->dirfd, f->name) < 0) {
            snprintf(err, errlen, "rename: %s", strerror(errno));
            return MF_EIO;
        }
        return MF_OK;
    }
    struct stat out;
    if (fstatat(f->dirfd, tmp, &out, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&out, &f->st)) {
        unlinkat(f->dirfd, tmp, 0); /* the old report */
        return MF_OK;
    }
    /* replaced just before the exchange: give the name back to the newer file */
    if (renameat2(f->dirfd, tmp, f->dirfd, f->name, RENAME_EXCHANGE) == 0 &&
        fstatat(f->dirfd, tmp, &out, AT_SYMLINK_NOFOLLOW) == 0 &&
        (out.st_ino != mine->st_ino || out.st_dev != mine->st_dev))
        /* and our copy was itself replaced meanwhile: what came back is newer still */
        (void)renameat(f->dirfd, tmp, f->dirfd, f->name);
    snprintf(err, errlen, "%s", changed);
    return MF_ECANCELED;
}

int mfd_wb_commit(const mfd_file_t *f, const mfd_wb_scan_t *s, const char *value,
                  size_t vlen, char *err, size_t errlen)
{
    static unsigned counter;
    if (s->err || s->state != S_TRAIL || (off_t)s->off != f->st.st_size) {
        snprintf(err, errlen, "report not fully scanned");
        return MF_EINVAL;
    }
    pthread_once(&instance_once, instance_init);
    char tmp[300];
    unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    if (strlen(f->name) + 80 < 256)
        snprintf(tmp, sizeof tmp, ".%s.malfam-%ld.%s.%llu-%u.tmp", f->name, (long)getpid(),
                 boot_id, start_ticks, n);
    else
        snprintf(tmp, sizeof tmp, ".malfam-%ld.%s.%llu-%u.tmp", (long)getpid(), boot_id,
                 start_ticks, n);
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
    /* mode and extended attributes while the temp is still ours, then the owner: giving a
     * file away needs CAP_CHOWN (root, or a daemon that writes as a group member) */
    mode_t mode = f->st.st_mode & 07777;
    if (fchmod(out, mode) < 0) {
        snprintf(err, errlen, "fchmod: %s", strerror(errno));
        rc = MF_EIO;
        goto fail;
    }
    if ((rc = copy_xattrs(f->fd, out, err, errlen)))
        goto fail;
    if (f->st.st_uid != geteuid() || f->st.st_gid != getegid()) {
        if (fchown(out, f->st.st_uid, f->st.st_gid) < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot keep owner %ld:%ld: %s%s", (long)f->st.st_uid,
                     (long)f->st.st_gid, strerror(e),
                     e == EPERM ? " (malfamd runs as a group member without CAP_CHOWN: "
                                  "see malfamd(8), WRITE-BACK)" : "");
            rc = MF_EPERM;
            goto fail;
        }
        /* chown clears set-id bits */
        struct stat now;
        if (fstat(out, &now) == 0 && (now.st_mode & 07777) != mode && fchmod(out, mode) < 0) {
            snprintf(err, errlen, "cannot keep mode %04o: %s", (unsigned)mode, strerror(errno));
            rc = MF_EPERM;
            goto fail;
        }
    }
    fd_ctx_t c = {f->fd, out, buf, 1 << 16, err, errlen};
    if ((rc = apply(s, (uint64_t)f->st.st_size, value, vlen, fd_copy, fd_emit, &c)))
        goto fail;
    struct stat mine;
    if (fsync(out) < 0 || fstat(out, &mine) < 0) {
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
    if ((rc = put_in_place(f, tmp, &mine, err, errlen)))
        goto fail;
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

/* Is `ent` a temp of ours for report `name` left by a daemon that is gone? The names are
 * ".NAME.malfam-PID.BOOT.START-N.tmp" (and ".NAME.malfam-PID-N.tmp" from older daemons, which
 * are judged by the PID alone). Stale: another boot, no process PID, or a process PID that
 * started at another time (the PID was reused). Nothing here ever probes PID 0 or a negative
 * one, which kill() would broadcast. */
static int is_stale(const char *ent, const char *name)
{
    size_t n = strlen(name);
    if (ent[0] != '.' || strncmp(ent + 1, name, n) != 0 || strncmp(ent + 1 + n, ".malfam-", 8))
        return 0;
    const char *p = ent + 1 + n + 8;
    long long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (!digits || pid <= 0 || pid > INT_MAX)
        return 0;
    char boot[13] = "";
    unsigned long long start = 0;
    int instance = *p == '.';
    if (instance) {
        p++;
        size_t b = strspn(p, "0123456789abcdef");
        if (b != 12 || p[12] != '.')
            return 0;
        memcpy(boot, p, 12);
        boot[12] = '\0';
        p += 13;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        start = strtoull(p, (char **)&p, 10);
    }
    if (*p++ != '-' || !(*p >= '0' && *p <= '9'))
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (strcmp(p, ".tmp") != 0)
        return 0;
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return 1;
    if (!instance)
        return 0;
    pthread_once(&instance_once, instance_init);
    if (strcmp(boot, boot_id) != 0)
        return 1;
    unsigned long long now = proc_start((long)pid);
    return now != 0 && now != start;
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
        if (!is_stale(e->d_name, f->name))
            continue;
        struct stat st;
        if (fstatat(f->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            unlinkat(f->dirfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
