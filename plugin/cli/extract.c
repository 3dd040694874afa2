/* extract.c - `malfam extract`: print the API calls of one report, one name per line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mf.h"
#include "trace.h"
#include "vocab.h"

static const char usage_text[] =
    "usage: malfam extract [--stats] [--expand-repeated | --fold] [--max-calls N]\n"
    "                      [--api-index FILE] REPORT.json|-\n"
    "Print the API calls of a Cuckoo/CAPE report (plain or gzip), one lower-case name per\n"
    "line, in call order. --api-index counts names outside that vocabulary as unknown.\n";

static int print_call(void *ud, const mf_call_t *c)
{
    FILE *out = ud;
    fwrite(c->api, 1, c->api_len, out);
    putc_unlocked('\n', out);
    return 0;
}

/* Feed `path` ("-" = stdin); gzip and zlib input are detected and inflated by the extractor. */
static int run(mf_extract_t *ex, const char *path, char *detail, size_t dlen)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(detail, dlen, "%s", strerror(errno));
        return MF_EIO;
    }
    int rc = mf_extract_fd(ex, fd);
    if (fd != 0)
        close(fd);
    if (rc != MF_OK)
        snprintf(detail, dlen, "%s", mf_extract_errmsg(ex));
    return rc;
}

int cli_extract(int argc, char **argv)
{
    mf_extract_opts_t o;
    mf_extract_opts_default(&o);
    int stats = 0;
    const char *path = NULL, *api_index = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--stats"))
            stats = 1;
        else if (!strcmp(a, "--expand-repeated"))
            o.repeat = MF_REPEAT_EXPAND;
        else if (!strcmp(a, "--fold"))
            o.repeat = MF_REPEAT_FOLD;
        else if (!strcmp(a, "--max-calls") && i + 1 < argc)
            o.max_calls = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--api-index") && i + 1 < argc)
            api_index = argv[++i];
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "malfam extract: unknown option %s\n%s", a, usage_text);
            return 2;
        } else if (!path)
            path = a;
        else {
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (!path) {
        fputs(usage_text, stderr);
        return 2;
    }
    char detail[512] = "";
    mf_vocab_t *vocab = NULL;
    int rc;
    if (api_index) {
        if ((rc = mf_vocab_load(&vocab, api_index, detail, sizeof detail)) != MF_OK) {
            cli_error(api_index, rc, detail);
            return 2;
        }
    } else {
        o.grow_vocab = 1; /* every name gets an id, so distinct counts all of them */
        if (!(vocab = mf_vocab_new())) {
            cli_error(path, MF_ENOMEM, NULL);
            return 1;
        }
    }
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    double t0 = cli_now();
    mf_extract_stats_t st;
    memset(&st, 0, sizeof st);
    mf_extract_cbs_t cbs = {print_call, NULL};
    mf_extract_t *ex = mf_extract_new(&o, vocab, &cbs, stdout);
    rc = ex ? run(ex, path, detail, sizeof detail) : MF_ENOMEM;
    if (ex) {
        st = *mf_extract_stats(ex);
        mf_extract_free(ex);
    }
    double secs = cli_now() - t0;
    int werr = fflush(stdout) != 0 || ferror(stdout);
    mf_vocab_free(vocab);
    if (stats)
        fprintf(stderr,
                "{\"processes\":%zu,\"entries\":%zu,\"calls\":%zu,\"distinct\":%zu,"
                "\"unknown\":%zu,\"noapi\":%zu,\"analysis_id\":%lld,\"truncated\":%s,"
                "\"bytes\":%llu,\"seconds\":%.6f}\n",
                st.processes, st.entries, st.calls, st.distinct, st.unknown, st.noapi,
                (long long)st.analysis_id, st.truncated ? "true" : "false",
                (unsigned long long)st.bytes, secs);
    if (rc != MF_OK) {
        cli_error(path, rc, detail);
        return rc == MF_ENOMEM ? 1 : 2;
    }
    if (werr) {
        cli_error("stdout", MF_EIO, strerror(errno));
        return 1;
    }
    return 0;
}
