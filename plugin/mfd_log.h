/* mfd_log.h - malfamd's log: stderr (with a timestamp) or syslog, one line per event.
 * The level and target are set once by main; the functions may be called from any thread. */
#ifndef MF_MFD_LOG_H
#define MF_MFD_LOG_H

#include "mf.h"

void mfd_log_init(int level, int target); /* MF_LOG_*, MFD_LOG_STDERR | MFD_LOG_SYSLOG */
void mfd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mfd_log_close(void);

#endif
