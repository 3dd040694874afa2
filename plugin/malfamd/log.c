/* log.c - log lines to stderr or syslog. */
#include "private.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>


static int log_level = MF_LOG_INFO;
static int log_target = MFD_LOG_STDERR;

void mfd_log_init(int level, int target)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED); /* a reload may change it */
    log_target = target;
    if (target == MFD_LOG_SYSLOG)
        openlog("malfamd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void mfd_log_close(void)
{
    if (log_target == MFD_LOG_SYSLOG)
        closelog();
}

/* Copy `in` to `out` with control bytes and backslashes escaped (\n, \r, \t, \\, \xNN),
 * so that nothing a client sends (a path, a mode, an id, an error that quotes them) can end
 * a log line or start a forged one: one call, one line. Truncates to fit. */
static void escape_line(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        char e[5];
        size_t n;
        if (*p == '\n' || *p == '\r' || *p == '\t' || *p == '\\') {
            n = (size_t)snprintf(e, sizeof e, "\\%c",
                                 *p == '\n' ? 'n' : *p == '\r' ? 'r' : *p == '\t' ? 't' : '\\');
        } else if (*p < 0x20 || *p == 0x7f) {
            n = (size_t)snprintf(e, sizeof e, "\\x%02x", *p);
        } else {
            e[0] = (char)*p;
            n = 1;
        }
        if (k + n >= cap)
            break;
        memcpy(out + k, e, n);
        k += n;
    }
    out[k] = '\0';
}

void mfd_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (level > __atomic_load_n(&log_level, __ATOMIC_RELAXED) || level < 0 ||
        level > MF_LOG_DEBUG)
        return;
    char raw[2048], msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    escape_line(raw, msg, sizeof msg);
    if (log_target == MFD_LOG_SYSLOG) {
        syslog(prio[level], "%s", msg);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* one fprintf per line: stdio locks the stream, so threads do not interleave */
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ malfamd %s: %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            names[level], msg);
}
