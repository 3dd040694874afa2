/* fuzz_config.c - malfamd's INI loader, mfd_config_load then mfd_config_check
 * (plugin/malfamd/malfamd.h). The loader takes a path, so the input goes into an anonymous
 * memory file (memfd) opened as /proc/self/fd/N: no disk, nothing left behind.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mf.h"
#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    char path[64], err[MFD_ERR_LEN];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    mfd_config_t *c = malloc(sizeof *c); /* ~140 KiB: not on the stack */
    if (!c)
        abort();
    mfd_config_default(c);
    err[0] = '\0';
    int rc = mfd_config_load(c, path, err, sizeof err);
    if (rc != MF_OK && rc != MF_EINVAL && rc != MF_EIO)
        abort(); /* the header promises these three */
    if (rc != MF_OK && !err[0])
        abort(); /* every error says why */
    if (c->nroots < 0 || c->nroots > MFD_MAX_ROOTS || !memchr(c->socket, 0, sizeof c->socket))
        abort();
    if (rc == MF_OK && mfd_config_check(c, err, sizeof err) != MF_OK && !err[0])
        abort();
    free(c);
    close(fd);
    return 0;
}
