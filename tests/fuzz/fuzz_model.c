/* fuzz_model.c - the model-file loader, mf_model_load (core/model.h).
 *
 * A file carries a CRC-32 of everything before its last 4 bytes and its payload length at
 * byte 16, so random mutations would almost never get past those two checks. The harness
 * writes both into a copy of the input (unless byte 12, a reserved word the loader does not
 * read, is 0xEE: then the input goes in as it is), and the loader goes through a memfd
 * opened as /proc/self/fd/N, as in fuzz_config.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "mf.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        abort();
    memcpy(p, data, size);
    if (size >= 28 && p[12] != 0xEE) {
        uint64_t payload = size - 28; /* header 24 bytes, checksum 4 (little-endian file) */
        memcpy(p + 16, &payload, 8);
        uint32_t crc = (uint32_t)crc32(crc32(0L, NULL, 0), p, (uInt)(size - 4));
        memcpy(p + size - 4, &crc, 4);
    }
    int fd = memfd_create("fuzz_model", MFD_CLOEXEC);
    if (fd < 0 || write(fd, p, size) != (ssize_t)size)
        abort();
    free(p);
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    mf_model_t *m = (mf_model_t *)&err; /* must be set to NULL on failure */
    int rc = mf_model_load(&m, path, err, sizeof err);
    if ((rc == MF_OK) != (m != NULL) || (rc != MF_OK && !err[0]) || rc == MF_ENOMEM)
        abort();
    if (m && (m->nfam < 0 || m->nfam > MF_MAX_FAMILIES || !m->vocab))
        abort();
    for (int i = 0; m && i < m->nfam; i++)
        if (!m->fam[i].name || strlen(m->fam[i].name) == 0)
            abort(); /* a loaded family always has a name */
    mf_model_free(m);
    close(fd);
    return 0;
}
