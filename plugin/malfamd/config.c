/* config.c - malfamd's INI settings (libinih). Order: defaults, file, flags, check. */
#include "private.h"

#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mf.h"

void mfd_config_default(mfd_config_t *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->socket, "/run/malfam/malfamd.sock");
    c->socket_mode = 0660;
    strcpy(c->model, "/var/lib/malfam/malfam.model");
    c->top = 3;
    c->unknown_threshold = NAN;
    c->max_report_bytes = 512ull << 20;
    c->max_write_back_bytes = 4ull << 30;
    c->max_jobs = 4;
    c->max_queue = 256;
    c->max_clients = 1024;
    c->idle_timeout_ms = 60000;
    c->shutdown_timeout_ms = 10000;
    c->max_request = MF_MAX_REQUEST;
    c->log_level = MF_LOG_INFO;
    c->log_target = MFD_LOG_STDERR;
    c->memory_budget = 512ull << 20;
    c->request_timeout_ms = 30000;
    c->max_peer_requests = 0;
}

/* Unsigned decimal with an optional K/M/G suffix (powers of 1024). */
static int parse_size(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*v == '-' || !*v)
        return -1;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v)
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end)
        return -1;
    if (shift && n > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)n << shift;
    return 0;
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

static int add_roots(mfd_config_t *c, const char *v, char *err, size_t errlen)
{
    /* colon-separated, like PATH; a repeated key appends */
    const char *p = v;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n) {
            if (c->nroots == MFD_MAX_ROOTS) {
                snprintf(err, errlen, "allowed_roots: more than %d roots", MFD_MAX_ROOTS);
                return MF_EINVAL;
            }
            if (p[0] != '/' || n >= sizeof c->roots[0]) {
                snprintf(err, errlen, "allowed_roots: \"%.*s\" is not an absolute path",
                         (int)(n > 200 ? 200 : n), p);
                return MF_EINVAL;
            }
            memcpy(c->roots[c->nroots], p, n);
            c->roots[c->nroots][n] = '\0';
            c->nroots++;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return MF_OK;
}

/* write_back_uids / write_back_gids: user or group names or numbers, separated by commas or
 * blanks; a repeated key appends, an empty value clears. */
static int add_ids(mfd_config_t *c, int gids, const char *v, char *err, size_t errlen)
{
    const char *key = gids ? "write_back_gids" : "write_back_uids";
    unsigned *ids = gids ? c->write_back_gids : c->write_back_uids;
    int *n = gids ? &c->nwrite_back_gids : &c->nwrite_back_uids;
    if (!*v)
        *n = 0;
    for (const char *p = v; *p;) {
        size_t len = strcspn(p, ", \t");
        if (len == 0) {
            p++;
            continue;
        }
        char name[64];
        if (len >= sizeof name || *n == MFD_MAX_IDS) {
            snprintf(err, errlen, "%s: %s", key, len >= sizeof name ? "name too long"
                                                                     : "too many ids");
            return MF_EINVAL;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        p += len;
        char *end;
        errno = 0;
        unsigned long id = strtoul(name, &end, 10);
        if (errno || *end || name[0] == '-' || id >= UINT_MAX) {
            struct passwd *pw = gids ? NULL : getpwnam(name);
            struct group *gr = gids ? getgrnam(name) : NULL;
            if (!pw && !gr) {
                snprintf(err, errlen, "%s: no %s \"%s\" on this system", key,
                         gids ? "group" : "user", name);
                return MF_EINVAL;
            }
            id = pw ? pw->pw_uid : gr->gr_gid;
        }
        ids[(*n)++] = (unsigned)id;
    }
    return MF_OK;
}

int mfd_config_set(mfd_config_t *c, const char *key, const char *v, char *err, size_t errlen)
{
    long n;
    uint64_t sz;
    char what[256];
    /* BAD takes a printf format so that messages quote the named limits, not copies of them */
#define BAD(...) do { snprintf(what, sizeof what, __VA_ARGS__); \
                      snprintf(err, errlen, "%s: %s (\"%.100s\")", key, what, v); \
                      return MF_EINVAL; } while (0)
    if (!strcmp(key, "socket")) {
        if (v[0] != '/' || copy_str(c->socket, sizeof c->socket, v))
            BAD("must be an absolute path shorter than %zu bytes", sizeof c->socket);
    } else if (!strcmp(key, "socket_mode")) {
        char *end;
        errno = 0;
        unsigned long m = strtoul(v, &end, 8);
        if (errno || end == v || *end || m > 0777)
            BAD("must be octal permission bits like 0660");
        c->socket_mode = (unsigned)m;
    } else if (!strcmp(key, "socket_group")) {
        if (!*v)
            c->socket_group[0] = '\0';
        else if (copy_str(c->socket_group, sizeof c->socket_group, v))
            BAD("too long");
    } else if (!strcmp(key, "model")) {
        if (copy_str(c->model, sizeof c->model, v))
            BAD("must be a file path");
    } else if (!strcmp(key, "allowed_roots")) {
        return add_roots(c, v, err, errlen);
    } else if (!strcmp(key, "write_back_uids") || !strcmp(key, "write_back_gids")) {
        return add_ids(c, key[11] == 'g', v, err, errlen);
    } else if (!strcmp(key, "mode")) {
        if (!*v)
            c->mode[0] = '\0';
        else if (mf_score_mode_parse(v) < 0) /* here, so the error carries its line */
            BAD("unknown scoring mode (paper likelihood multiset ngram nn knn combo fusion linear)");
        else if (copy_str(c->mode, sizeof c->mode, v))
            BAD("too long");
    } else if (!strcmp(key, "top")) {
        if (parse_int(v, 1, MF_MAX_TOP, &n))
            BAD("must be 1..%d", MF_MAX_TOP);
        c->top = (int)n;
    } else if (!strcmp(key, "unknown_threshold")) {
        if (!*v || !strcmp(v, "model")) {
            c->unknown_threshold = NAN;
        } else {
            char *end;
            errno = 0;
            double d = strtod(v, &end);
            if (errno || end == v || *end || !isfinite(d))
                BAD("must be a number or \"model\"");
            c->unknown_threshold = d;
        }
    } else if (!strcmp(key, "repeat")) {
        BAD("no longer a setting: the model's preprocessing decides how CAPE's \"repeated\" "
            "is read, as malfam score does; delete this line");
    } else if (!strcmp(key, "max_report_bytes")) {
        if (parse_size(v, &sz) || sz < 1024)
            BAD("must be a size of at least 1K (suffix K, M or G)");
        c->max_report_bytes = sz;
    } else if (!strcmp(key, "max_write_back_bytes")) {
        if (parse_size(v, &sz) || sz < 1024)
            BAD("must be a size of at least 1K (suffix K, M or G)");
        c->max_write_back_bytes = sz;
    } else if (!strcmp(key, "max_jobs")) {
        if (parse_int(v, 1, 128, &n))
            BAD("must be 1..128");
        c->max_jobs = (int)n;
    } else if (!strcmp(key, "max_queue")) {
        if (parse_int(v, 0, 1000000, &n))
            BAD("must be 0..1000000");
        c->max_queue = (int)n;
    } else if (!strcmp(key, "max_clients")) {
        if (parse_int(v, 1, 100000, &n))
            BAD("must be 1..100000");
        c->max_clients = (int)n;
    } else if (!strcmp(key, "idle_timeout")) {
        if (parse_int(v, 1, 86400, &n))
            BAD("must be 1..86400 seconds");
        c->idle_timeout_ms = (unsigned)n * 1000;
    } else if (!strcmp(key, "shutdown_timeout")) {
        if (parse_int(v, 0, 3600, &n))
            BAD("must be 0..3600 seconds");
        c->shutdown_timeout_ms = (unsigned)n * 1000;
    } else if (!strcmp(key, "max_request")) {
        if (parse_size(v, &sz) || sz < 256 || sz > MF_MAX_REQUEST)
            BAD("must be 256..%d", MF_MAX_REQUEST);
        c->max_request = (size_t)sz;
    } else if (!strcmp(key, "log_level")) {
        static const char *const lv[] = {"error", "warn", "info", "debug"};
        int found = -1;
        for (int i = 0; i < (int)(sizeof lv / sizeof *lv); i++)
            if (!strcmp(v, lv[i]))
                found = i;
        if (found < 0)
            BAD("must be error, warn, info or debug");
        c->log_level = found;
    } else if (!strcmp(key, "log")) {
        if (!strcmp(v, "stderr"))
            c->log_target = MFD_LOG_STDERR;
        else if (!strcmp(v, "syslog"))
            c->log_target = MFD_LOG_SYSLOG;
        else
            BAD("must be stderr or syslog");
    } else if (!strcmp(key, "memory_budget")) {
        if (parse_size(v, &sz) || sz < (64ull << 20))
            BAD("must be a size of at least 64M (suffix K, M or G)");
        c->memory_budget = sz;
    } else if (!strcmp(key, "request_timeout")) {
        if (parse_int(v, 1, 86400, &n))
            BAD("must be 1..86400 seconds");
        c->request_timeout_ms = (unsigned)n * 1000;
    } else if (!strcmp(key, "max_peer_requests")) {
        if (parse_int(v, 0, 1000000, &n))
            BAD("must be 0..1000000 (0 = half of max_jobs + max_queue)");
        c->max_peer_requests = (int)n;
    } else {
        snprintf(err, errlen, "unknown key \"%.100s\"", key);
        return MF_EINVAL;
    }
#undef BAD
    return MF_OK;
}

typedef struct {
    mfd_config_t *c;
    char err[MFD_ERR_LEN]; /* first error only: inih reports the first bad line */
    FILE *f;
    char *line;    /* getline's buffer */
    size_t cap;
    int lines;     /* lines read so far */
    int long_line; /* the first line too long for libinih (parsing stops there), or 0 */
    int max_chars; /* the longest line libinih takes, newline not counted */
} load_ctx_t;

/* libinih's reader, line by line: libinih (as packaged) reads lines into a fixed 200-byte
 * buffer and parses the rest of a longer line as further lines, so it reported "syntax error"
 * on a line number the file does not have. Here a line that does not fit stops the parse and
 * is reported with its real number. */
static char *read_line(char *str, int num, void *stream)
{
    load_ctx_t *lc = stream;
    ssize_t n = getline(&lc->line, &lc->cap, lc->f);
    if (n < 0)
        return NULL;
    lc->lines++;
    if (n > num - 1) {
        lc->long_line = lc->lines;
        lc->max_chars = num - 2;
        return NULL;
    }
    memcpy(str, lc->line, (size_t)n + 1);
    return str;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *lc = user;
    char e[MFD_ERR_LEN];
    if (section[0] && strcmp(section, "malfamd")) {
        snprintf(e, sizeof e, "unknown section [%.100s] (use [malfamd] or none)", section);
    } else if (!name) {
        return 1; /* a section line on its own */
    } else if (mfd_config_set(lc->c, name, value ? value : "", e, sizeof e) == MF_OK) {
        return 1;
    }
    if (!lc->err[0])
        snprintf(lc->err, sizeof lc->err, "%s", e);
    return 0;
}

int mfd_config_load(mfd_config_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return MF_EIO;
    }
    load_ctx_t lc = {.c = c, .f = f};
    int line = ini_parse_stream(read_line, &lc, on_ini, &lc);
    free(lc.line);
    fclose(f);
    if (line == 0 && lc.long_line) {
        snprintf(err, errlen, "%s:%d: line longer than %d characters (the limit of the INI "
                 "reader): shorten it, e.g. split allowed_roots over several lines", path,
                 lc.long_line, lc.max_chars);
        return MF_EINVAL;
    }
    if (line == 0 && c->model[0] && c->model[0] != '/') {
        /* a relative model path means beside the config file, whatever the cwd (systemd
         * starts the daemon in /) */
        char dir[4096], *slash;
        if (!realpath(path, dir)) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return MF_EIO;
        }
        if ((slash = strrchr(dir, '/')))
            slash[slash == dir ? 1 : 0] = '\0';
        char full[sizeof c->model];
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, c->model) >= sizeof full) {
            snprintf(err, errlen, "%s: model: path too long", path);
            return MF_EINVAL;
        }
        memcpy(c->model, full, sizeof full);
    }
    if (line == 0)
        return MF_OK;
    if (line < 0) {
        snprintf(err, errlen, "%s: cannot read", path);
        return MF_EIO;
    }
    snprintf(err, errlen, "%s:%d: %s", path, line, lc.err[0] ? lc.err : "syntax error");
    return MF_EINVAL;
}

int mfd_config_check(mfd_config_t *c, char *err, size_t errlen)
{
    if (c->socket_group[0] && !getgrnam(c->socket_group)) {
        snprintf(err, errlen, "socket_group: no group \"%s\" on this system", c->socket_group);
        return MF_EINVAL;
    }
    if (!c->socket[0] || !c->model[0]) {
        snprintf(err, errlen, "socket and model must be set");
        return MF_EINVAL;
    }
    if (c->model[0] != '/') { /* given relative on the command line: the shell's cwd */
        char abs[PATH_MAX];
        if (!realpath(c->model, abs)) {
            snprintf(err, errlen, "model: %s: %s", c->model, strerror(errno));
            return MF_EINVAL;
        }
        snprintf(c->model, sizeof c->model, "%s", abs);
    }
    if (c->nroots == 0) {
        snprintf(err, errlen, "allowed_roots: no directory given (nothing could be read)");
        return MF_EINVAL;
    }
    for (int i = 0; i < c->nroots; i++) {
        char real[PATH_MAX];
        struct stat st;
        if (!realpath(c->roots[i], real) || stat(real, &st) < 0) {
            snprintf(err, errlen, "allowed_roots: %s: %s", c->roots[i], strerror(errno));
            return MF_EINVAL;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "allowed_roots: %s: not a directory", c->roots[i]);
            return MF_EINVAL;
        }
        snprintf(c->roots[i], sizeof c->roots[i], "%s", real);
    }
    if (c->max_request > MF_MAX_REQUEST) {
        snprintf(err, errlen, "max_request: over %d", MF_MAX_REQUEST);
        return MF_EINVAL;
    }
    return MF_OK;
}

int mfd_config_read(mfd_config_t *c, const mfd_config_src_t *src, char *err, size_t errlen)
{
    mfd_config_default(c);
    int rc = mfd_config_load(c, src->path, err, errlen);
    if (rc == MF_OK && src->socket)
        rc = mfd_config_set(c, "socket", src->socket, err, errlen);
    if (rc == MF_OK && src->model)
        rc = mfd_config_set(c, "model", src->model, err, errlen);
    if (rc == MF_OK)
        rc = mfd_config_check(c, err, errlen);
    return rc;
}
