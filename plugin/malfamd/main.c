/* main.c - malfamd's main: flags, config, model, then the loop (server.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "blas.h"
#include "mf.h"
#include "malfamd.h"
#include "proto.h"

/* The installed settings file; the Makefile sets it from PREFIX (SYSCONFDIR). */
#ifndef MFD_DEFAULT_CONFIG
#define MFD_DEFAULT_CONFIG "/etc/malfam/malfamd.conf"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: malfamd --foreground [-c FILE] [--socket PATH] [--model FILE]\n"
            "       malfamd --check-config [-c FILE]\n"
            "Scores Cuckoo/CAPE reports on a Unix socket; see malfamd.conf(5) for settings.\n"
            "  -c, --config FILE   settings (INI); default " MFD_DEFAULT_CONFIG "\n"
            "  -f, --foreground    run in this process (required: malfamd does not fork; run it\n"
            "                      under a supervisor such as systemd, Type=simple)\n"
            "  -s, --socket PATH   override `socket`\n"
            "  -m, --model FILE    override `model`\n"
            "  --check-config      validate the settings, socket directory and model, then exit\n");
}

/* Write-back needs each root writable. Under the systemd unit the file system is read-only
 * except its ReadWritePaths, and --check-config runs there as ExecStartPre: say which root
 * is missing from it. A warning only: classifying without write-back still works. */
static void warn_unwritable_roots(const mfd_config_t *cfg)
{
    for (int i = 0; i < cfg->nroots; i++) {
        if (access(cfg->roots[i], W_OK) == 0)
            continue;
        fprintf(stderr, "malfamd: warning: allowed_roots: %s: not writable (%s): write-back "
                        "there will fail%s\n", cfg->roots[i], strerror(errno),
                errno == EROFS ? "; under systemd add ReadWritePaths= for it in a drop-in "
                                 "(systemctl edit malfamd)" : "");
    }
}

/* The model's linear weights may be a mapping of its file under a read lease (job.c): a file
 * rewritten in place makes the daemon copy them first (server.c check_lease). Should the
 * kernel break the lease before that (45 s), a truncated page faults: say what happened where
 * an operator looks, then die as the signal would. */
static void on_sigbus(int signum)
{
    static const char msg[] = "malfamd: SIGBUS: a model file mapped by the daemon was "
                              "truncated before its weights could be copied; replace model "
                              "files by rename (mv, install), never cp over them\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    signal(signum, SIG_DFL);
    raise(signum);
}

int main(int argc, char **argv)
{
    mf_blas_set_threads(1); /* requests run one per worker: a threaded BLAS would oversubscribe */
    const char *conf = NULL, *sock = NULL, *model_path = NULL;
    int foreground = 0, check_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && has_val)
            conf = argv[++i];
        else if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && has_val)
            sock = argv[++i];
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val)
            model_path = argv[++i];
        else if (!strcmp(a, "-f") || !strcmp(a, "--foreground"))
            foreground = 1;
        else if (!strcmp(a, "--check-config"))
            check_only = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("malfamd %s (protocol %d)\n", MF_VERSION, MFP_PROTO_VERSION);
            return 0;
        } else {
            fprintf(stderr, "malfamd: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!conf)
        conf = MFD_DEFAULT_CONFIG;
    /* No self-daemonizing: a supervisor keeps the process, its logs and its restarts, and
     * start-up errors reach the caller. Refused before anything else is read. */
    if (!foreground && !check_only) {
        fprintf(stderr, "malfamd: runs in the foreground only: start it under a supervisor "
                        "(systemctl start malfamd) or add --foreground\n");
        return 2;
    }

    /* defaults, then the file, then flags, then the checks */
    mfd_config_t cfg;
    char err[MFD_ERR_LEN];
    mfd_config_src_t src = {conf, sock, model_path};
    int rc = mfd_config_read(&cfg, &src, err, sizeof err);
    mfd_scoring_t sc;
    if (rc == MF_OK)
        rc = mfd_scoring_init(&sc, &cfg, err, sizeof err);
    if (rc != MF_OK) {
        /* name the settings file when the detail does not (checks after the read) */
        if (strncmp(err, conf, strlen(conf)))
            fprintf(stderr, "malfamd: %s: %s: %s\n", conf, mf_strerror(rc), err);
        else
            fprintf(stderr, "malfamd: %s: %s\n", mf_strerror(rc), err);
        return 2;
    }
    warn_unwritable_roots(&cfg);
    if (check_only) {
        /* the bind would refuse it: say so now; a directory not made yet (systemd's
         * RuntimeDirectory outside the unit) is only a warning */
        rc = mfd_check_socket_dirs(cfg.socket, err, sizeof err);
        if (rc == MF_EIO) {
            fprintf(stderr, "malfamd: warning: %s\n", err);
        } else if (rc != MF_OK) {
            fprintf(stderr, "malfamd: %s: %s: %s\n", conf, mf_strerror(rc), err);
            return 2;
        }
    }
    signal(SIGBUS, on_sigbus);
    /* a lease break (job.c) before the server's handler is in must not end the process (the
     * default action); the server then handles SIGIO (server.c check_lease) */
    signal(SIGIO, SIG_IGN);
    mfd_model_t *model = NULL;
    rc = mfd_model_load(&model, cfg.model, sc.mode, err, sizeof err);
    if (rc != MF_OK) {
        fprintf(stderr, "malfamd: model %s: %s: %s\n", cfg.model, mf_strerror(rc), err);
        return check_only ? 2 : 1;
    }
    if (check_only) {
        printf("malfamd: %s: OK (model %s, %d families, mode %s (%s), %d roots)\n", conf,
               model->m->version, model->m->nfam, mf_score_mode_name(model->mode),
               sc.mode >= 0 ? "configured" : "model default", cfg.nroots);
        mfd_model_unref(model);
        return 0;
    }

    /* the pool must be sized before libuv starts it: max_jobs workers plus one for reloads */
    char nthreads[16];
    snprintf(nthreads, sizeof nthreads, "%d", cfg.max_jobs + 1);
    setenv("UV_THREADPOOL_SIZE", nthreads, 1);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is a write error (EFBIG), not a death */

    mfd_log_init(cfg.log_level, cfg.log_target);

    uv_loop_t *loop = uv_default_loop();
    mfd_server_t *srv = mfd_server_new(loop, &cfg, &src, model, NULL, err, sizeof err);
    if (!srv) {
        mfd_log(MF_LOG_ERROR, "cannot start: %s", err);
        fprintf(stderr, "malfamd: %s\n", err);
        mfd_model_unref(model);
        return 1;
    }
    int forced = mfd_server_run(srv);
    if (forced) {
        /* pool threads may still hold the model: leave without tearing anything down */
        mfd_log_close();
        fflush(stderr);
        _exit(0);
    }
    mfd_server_free(srv);
    uv_loop_close(loop);
    mfd_log_close();
    return 0;
}
