/* cli.h - what the `malfam` sub-commands share. */
#ifndef MF_CLI_H
#define MF_CLI_H

#define CMD(name, summary) int cli_##name(int argc, char **argv);
#include "commands.h"
#undef CMD

/* "malfam: <what>: <mf_strerror(rc)>[: <detail>]" on stderr. */
void cli_error(const char *what, int rc, const char *detail);

#endif
