/* log.c - log lines to stderr or syslog. */
#include "private.h"

#include <stdarg.h>
#include <stdio.h>
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

void mfd_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (level > __atomic_load_n(&log_level, __ATOMIC_RELAXED) || level < 0 ||
        level > MF_LOG_DEBUG)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
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
