/* main.c - the offline CLI: dispatches to the sub-commands listed in commands.h; holds
 * cli_error and cli_now, which every command uses. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "mf.h"

void cli_error(const char *what, int rc, const char *detail)
{
    if (detail && *detail)
        fprintf(stderr, "malfam: %s: %s: %s\n", what, mf_strerror(rc), detail);
    else
        fprintf(stderr, "malfam: %s: %s\n", what, mf_strerror(rc));
}

int cli_load_model(const char *path, mf_model_t **m)
{
    char err[512];
    int rc = mf_model_load(m, path, err, sizeof err);
    if (rc == MF_OK)
        return 0;
    cli_error(path, rc, err);
    return rc == MF_ENOMEM ? 1 : 2;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: malfam COMMAND [OPTIONS]   (malfam COMMAND --help for its options)\n\n");
#define CMD(name, summary) fprintf(f, "  %-10s %s\n", #name, summary);
#include "commands.h"
#undef CMD
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("malfam %s\n", MF_VERSION);
        return 0;
    }
#define CMD(name, summary) \
    if (!strcmp(cmd, #name)) \
        return cli_##name(argc - 1, argv + 1);
#include "commands.h"
#undef CMD
    fprintf(stderr, "malfam: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
