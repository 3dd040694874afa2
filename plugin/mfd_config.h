/* mfd_config.h - malfamd settings: defaults, then the INI file, then flags, then a check.
 * Every key is listed with its default in conf/malfamd.conf. */
#ifndef MF_MFD_CONFIG_H
#define MF_MFD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MFD_MAX_ROOTS 32
#define MFD_ERR_LEN 512

enum { MFD_LOG_STDERR = 0, MFD_LOG_SYSLOG = 1 };

typedef struct mfd_config {
    char socket[108];              /* Unix socket path (sun_path size) */
    unsigned socket_mode;          /* permission bits of the socket file */
    char socket_group[64];         /* group owning the socket, "" = unchanged */
    char model[4096];              /* model file */
    char roots[MFD_MAX_ROOTS][4096]; /* allowed_roots, realpath'ed by mfd_config_check */
    int nroots;
    char mode[32];                 /* scoring mode name, "" = the model's default */
    int top;                       /* families per answer, 1..MF_MAX_TOP */
    double unknown_threshold;      /* override of the model's threshold; NaN = the model's */
    char repeat[16];               /* asis | expand | fold: how CAPE "repeated" is read */
    uint64_t max_report_bytes;     /* bytes parsed per report (after gunzip) */
    int max_jobs;                  /* worker threads = reports parsed at once */
    int max_queue;                 /* requests waiting for a worker before "busy" */
    int max_clients;               /* open connections */
    unsigned idle_timeout_ms;      /* a client silent this long is disconnected */
    unsigned shutdown_timeout_ms;  /* SIGTERM: wait this long for work in flight */
    size_t max_request;            /* one request line, bytes */
    int log_level;                 /* MF_LOG_ERROR .. MF_LOG_DEBUG */
    int log_target;                /* MFD_LOG_STDERR | MFD_LOG_SYSLOG */
} mfd_config_t;

void mfd_config_default(mfd_config_t *c);

/* Read `path` over the current values. MF_OK, MF_EIO (cannot open), MF_EINVAL (unknown
 * section or key, bad value) with "FILE:LINE: ..." in err. */
int mfd_config_load(mfd_config_t *c, const char *path, char *err, size_t errlen);

/* Set one key from text (what the INI handler and tests use). MF_OK or MF_EINVAL with the
 * reason in err. `allowed_roots` appends. */
int mfd_config_set(mfd_config_t *c, const char *key, const char *value, char *err,
                   size_t errlen);

/* Cross-key checks and resolution: roots must exist and are replaced by their realpath, the
 * model file must be given, the mode must be known (when the scorer is linked), limits sane.
 * MF_OK or MF_EINVAL with the reason in err. */
int mfd_config_check(mfd_config_t *c, char *err, size_t errlen);

#endif
