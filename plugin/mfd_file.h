/* mfd_file.h - opening a report safely, and writing it back atomically.
 *
 * Opening: the request path is resolved (realpath) and must lie under one of the configured
 * allowed_roots. The file is then opened again component by component from the root with
 * O_NOFOLLOW, so a symlink swapped in after the check makes the open fail rather than leave
 * the root. Only regular files are accepted (a FIFO is opened non-blocking, then refused).
 *
 * Write-back: mfd_wb_scan_* finds, in one streaming pass over the bytes, where the report's
 * top-level object ends and where any top-level "malfam" values are. mfd_wb_commit then
 * copies the report into a temp file beside it, replacing those values (or adding the key
 * before the closing brace), fsyncs it, renames it over the report and fsyncs the directory.
 * Every other byte is preserved, so the original minus the key is exactly the old file.
 */
#ifndef MF_MFD_FILE_H
#define MF_MFD_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "mfd_config.h"
#include "util_proto.h"

typedef struct mfd_file {
    int dirfd;            /* the report's directory (opened without following links) */
    int fd;               /* the report, read-only */
    char name[256];       /* its name inside dirfd */
    char real[4096];      /* resolved path, for logs */
    struct stat st;       /* at open time: write-back keeps mode and owner, checks changes */
} mfd_file_t;

/* Open `path` for reading if it resolves under one of `roots`. MF_OK; MF_EINVAL (relative
 * path), MF_ENOENT (does not exist), MF_EPERM (outside the roots, symlink swap, not a
 * regular file), MF_EIO, each with detail in err. On error nothing stays open. */
int mfd_file_open(mfd_file_t *f, const char roots[][4096], int nroots, const char *path, char *err,
                  size_t errlen);
void mfd_file_close(mfd_file_t *f);

/* Is the file at f's name still the one opened, same size and mtime? 1 yes, 0 no. */
int mfd_file_unchanged(const mfd_file_t *f);

/* ---- top-level scan ---------------------------------------------------------------------- */

#define MFD_WB_MAX_KEYS 8 /* top-level "malfam" keys a report may already hold */

typedef struct mfd_wb_scan {
    uint64_t off;          /* bytes scanned */
    int state;
    int esc;               /* previous byte was a backslash inside a string */
    uint64_t depth;
    char key[8];           /* current top-level key, first bytes */
    size_t keylen;
    int is_malfam;         /* the value being read belongs to "malfam" */
    uint64_t last_end;     /* just past the last top-level value, or past the '{' */
    int nmembers;
    uint64_t range[MFD_WB_MAX_KEYS][2]; /* [start, end) of each existing "malfam" value */
    int nranges;
    int err;               /* MF_OK, or MF_EFORMAT / MF_ELIMIT once found */
    char errmsg[96];
} mfd_wb_scan_t;

void mfd_wb_scan_init(mfd_wb_scan_t *s);
/* Scan the next bytes. MF_OK or the error (sticky), with errmsg set. */
int mfd_wb_scan_feed(mfd_wb_scan_t *s, const void *buf, size_t len);
/* End of input: MF_OK when a complete top-level object (then only whitespace) was seen. */
int mfd_wb_scan_finish(mfd_wb_scan_t *s);

/* Apply the edit to an in-memory report (tests, fuzzing): out gets the new report. */
int mfd_wb_apply_mem(const mfd_wb_scan_t *s, const char *orig, size_t len, const char *value,
                     size_t vlen, mfu_buf_t *out);

/* Write the labelled report beside f and rename it over f (see top). `value` is the JSON
 * object to store under "malfam". MF_OK; MF_EIO (write, fsync, rename failed; disk full),
 * MF_EPERM (owner cannot be kept), MF_ECANCELED (the report changed meanwhile), with detail
 * in err. On error the original is untouched and the temp file removed. */
int mfd_wb_commit(const mfd_file_t *f, const mfd_wb_scan_t *s, const char *value,
                  size_t vlen, char *err, size_t errlen);

/* Remove the temp files a killed write-back of this same report left beside it: names
 * ".NAME.malfam-PID-N.tmp" whose PID is no live process (kill(PID, 0) fails with ESRCH).
 * Temps of a live PID (this daemon's other threads included) are left alone, as are those of
 * other reports. Returns how many were removed (0 on any error: the cleanup is best effort). */
int mfd_wb_clean_stale(const mfd_file_t *f);

#endif
