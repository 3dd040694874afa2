/* check_model.c - the model file: round trip, every truncation, every byte flip, foreign and
 * future files, files without the later optional parts, hostile snapshot sections with a valid
 * checksum, allocation failure while loading. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"
#include "linear.h"
#include "model.h"
#include "score.h"
#include "score_priv.h" /* the scorer's prototype list */
#include "simil.h"
#include "testutil.h"

static mf_model_t *small_model(void)
{
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->vocab = mf_vocab_new();
    ck_assert_ptr_nonnull(m->vocab);
    const char *apis[] = {"ntclose", "ntopenfile", "regopenkeyexw", "ldrloaddll", "ntreadfile"};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(mf_vocab_add(m->vocab, apis[i], strlen(apis[i])), i);
    ck_assert_int_eq(mf_vocab_put(m->vocab, "createfilew", 11, 7), MF_OK); /* a gap at 5, 6 */
    m->opts.epochs = 3;
    m->opts.gen_epoch = 2;
    m->prep.max_len = 500;
    ck_assert_int_eq(mf_model_add_family(m, "Trojan"), 0);
    ck_assert_int_eq(mf_model_add_family(m, "Worms"), 1);
    ck_assert_int_eq(mf_model_add_family(m, "Trojan"), 0);
    mf_lstm_dims_t d = {8, 2, 3, 2};
    m->fam[0].lstm = mf_lstm_new(&d);
    ck_assert_ptr_nonnull(m->fam[0].lstm);
    uint64_t rng = 5;
    mf_lstm_init(m->fam[0].lstm, &rng);
    m->fam[0].gen_lstm = mf_lstm_new(&d); /* its pattern's network (gen_epoch 2 of 3) */
    ck_assert_ptr_nonnull(m->fam[0].gen_lstm);
    mf_lstm_init(m->fam[0].gen_lstm, &rng);
    m->fam[0].tokens = 1234;
    m->fam[0].loss = 1.5;
    m->fam[0].entropy = 3.25;
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(mf_trace_push(&m->fam[0].pattern, i % 4), MF_OK);
    m->refs = calloc(2, sizeof *m->refs);
    m->ref_label = calloc(2, sizeof *m->ref_label);
    m->nrefs = 2;
    m->ref_label[0] = 1;
    ck_assert_int_eq(mf_trace_push(&m->refs[0], 7), MF_OK);
    ck_assert_int_eq(mf_trace_push(&m->refs[0], 2), MF_OK);
    ck_assert_int_eq(mf_model_set_param(m, "unknown.paper", 0.125), MF_OK);
    ck_assert_int_eq(mf_model_set_param(m, "score.n", 3), MF_OK);
    return m;
}

static char *tmp_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/malfam_check_model_%s_%ld.bin", tag, (long)getpid());
    return buf;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Offset of the section tagged `tag` (4 chars) in a model file image, or 0 when absent. */
static size_t find_section(const unsigned char *b, size_t n, const char *tag)
{
    for (size_t off = 24; off + 16 <= n - 4;) {
        uint64_t len;
        memcpy(&len, b + off + 8, sizeof len);
        if (memcmp(b + off, tag, 4) == 0)
            return off;
        off += 16 + (size_t)len;
    }
    return 0;
}

/* Remove k bytes at `at` from the file image (*n bytes), shrinking the section that starts
 * at `sec` (0: none, the bytes are whole sections), then redo payload length and checksum:
 * the file an older writer would have made, or a hostile one with a valid checksum. */
static void cut_and_seal(unsigned char *b, size_t *n, size_t sec, size_t at, size_t k)
{
    if (sec) {
        uint64_t len;
        memcpy(&len, b + sec + 8, sizeof len);
        len -= k;
        memcpy(b + sec + 8, &len, sizeof len);
    }
    memmove(b + at, b + at + k, *n - at - k);
    *n -= k;
    uint64_t payload = *n - 4 - 24;
    memcpy(b + 16, &payload, sizeof payload);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(*n - 4));
    memcpy(b + *n - 4, &crc, sizeof crc);
}

/* Save m to the temporary file tagged `tag` (its name into path, pathlen bytes) and read the
 * file back: the image (free it), its size in *n. */
static unsigned char *save_image(mf_model_t *m, char *path, size_t pathlen,
                                 const char *tag, size_t *n)
{
    char err[256];
    ck_assert_msg(mf_model_save(m, tmp_path(path, pathlen, tag), err, sizeof err) == MF_OK,
                  "%s", err);
    *n = 0;
    unsigned char *b = (unsigned char *)tu_slurp(path, n);
    ck_assert_ptr_nonnull(b);
    return b;
}

/* Offset of the section tagged `tag` in the image b (n bytes), which must hold it; *len (when
 * not NULL) gets the length of its body. */
static size_t section(const unsigned char *b, size_t n, const char *tag, uint64_t *len)
{
    size_t off = find_section(b, n, tag);
    ck_assert_msg(off > 0, "no %s section", tag);
    if (len)
        memcpy(len, b + off + 8, sizeof *len);
    return off;
}

static void seal(unsigned char *b, size_t n)
{
    cut_and_seal(b, &n, 0, n, 0);
}

START_TEST(test_round_trip)
{
    char path[256], err[256];
    mf_model_t *m = small_model();
    ck_assert_int_eq(mf_model_save(m, tmp_path(path, sizeof path, "rt"), err, sizeof err), MF_OK);
    ck_assert_int_eq((int)strlen(m->version), 8);
    mf_model_t *l = NULL;
    ck_assert_int_eq(mf_model_load(&l, path, err, sizeof err), MF_OK);
    ck_assert_str_eq(l->version, m->version);
    ck_assert_int_eq(mf_vocab_size(l->vocab), 8);
    ck_assert_int_eq(mf_vocab_count(l->vocab), 6);
    ck_assert_str_eq(mf_vocab_name(l->vocab, 7), "createfilew");
    ck_assert_ptr_null(mf_vocab_name(l->vocab, 5));
    ck_assert_int_eq(l->opts.epochs, 3);
    ck_assert_int_eq(memcmp(&l->opts, &m->opts, sizeof l->opts), 0);
    ck_assert_int_eq(l->prep.fold, 1);
    ck_assert_uint_eq(l->prep.max_len, 500);
    ck_assert_int_eq(l->nfam, 2);
    ck_assert_str_eq(l->fam[1].name, "Worms");
    ck_assert_ptr_null(l->fam[1].lstm);
    ck_assert_uint_eq(l->fam[0].tokens, 1234);
    ck_assert(l->fam[0].loss == 1.5 && l->fam[0].entropy == 3.25);
    ck_assert_uint_eq(l->fam[0].lstm->nparams, m->fam[0].lstm->nparams);
    ck_assert_int_eq(memcmp(l->fam[0].lstm->w, m->fam[0].lstm->w,
                            m->fam[0].lstm->nparams * sizeof(float)), 0);
    ck_assert_ptr_nonnull(l->fam[0].gen_lstm);
    ck_assert_uint_eq(l->fam[0].gen_lstm->nparams, m->fam[0].gen_lstm->nparams);
    ck_assert_int_eq(memcmp(l->fam[0].gen_lstm->w, m->fam[0].gen_lstm->w,
                            m->fam[0].gen_lstm->nparams * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(l->fam[0].gen_lstm->w, l->fam[0].lstm->w,
                            m->fam[0].lstm->nparams * sizeof(float)), 0);
    ck_assert_ptr_null(l->fam[1].gen_lstm);
    ck_assert_uint_eq(l->fam[0].pattern.n, 6);
    ck_assert_int_eq(l->fam[0].pattern.ids[5], 1);
    ck_assert_uint_eq(l->nrefs, 2);
    ck_assert_int_eq(l->ref_label[0], 1);
    ck_assert_uint_eq(l->refs[0].n, 2);
    ck_assert_int_eq(l->refs[0].ids[0], 7);
    ck_assert_uint_eq(l->refs[1].n, 0);
    ck_assert(mf_model_param(l, "unknown.paper", -1) == 0.125);
    ck_assert(mf_model_param(l, "nope", -1) == -1);
    /* saving what was loaded gives the same bytes */
    char path2[256];
    ck_assert_int_eq(mf_model_save(l, tmp_path(path2, sizeof path2, "rt2"), err, sizeof err),
                     MF_OK);
    size_t n1 = 0, n2 = 0;
    char *b1 = tu_slurp(path, &n1), *b2 = tu_slurp(path2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(b1, b2, n1), 0);
    free(b1);
    free(b2);
    unlink(path);
    unlink(path2);
    mf_model_free(l);
    mf_model_free(m);
}
END_TEST

/* A file's id without a load: what a load names the model (the CRC-32 the file ends with);
 * a file whose header or section chain is wrong, or no file at all, gets the load's error. */
START_TEST(test_file_id)
{
    char path[256], bad[256], err[256], id[16];
    mf_model_t *m = small_model();
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "fileid", &n);
    ck_assert_int_eq(mf_model_file_id(path, id, sizeof id, err, sizeof err), MF_OK);
    ck_assert_str_eq(id, m->version);
    /* another model, another id */
    m->fam[0].pattern.n--;
    char other[16];
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);
    ck_assert_int_eq(mf_model_file_id(path, other, sizeof other, err, sizeof err), MF_OK);
    ck_assert_str_eq(other, m->version);
    ck_assert_str_ne(other, id);
    write_file(tmp_path(bad, sizeof bad, "fileid-cut"), b, n - 1); /* one byte short */
    ck_assert_int_eq(mf_model_file_id(bad, id, sizeof id, err, sizeof err), MF_EFORMAT);
    ck_assert(strstr(err, "truncated") != NULL);
    unlink(bad);
    ck_assert_int_eq(mf_model_file_id(bad, id, sizeof id, err, sizeof err), MF_EIO);
    ck_assert_int_eq(mf_model_file_id("/", id, sizeof id, err, sizeof err), MF_EIO);
    unlink(path);
    free(b);
    mf_model_free(m);
}
END_TEST

/* Loaded without its networks: the shapes stay (w NULL), the snapshots are not read, the
 * LSTM modes are unavailable and the model cannot be saved; mf_model_read_nets brings the
 * same weights as a full load, and refuses a file that is no longer the one loaded. */
START_TEST(test_load_without_nets)
{
    char path[256], other[256], err[256];
    mf_model_t *m = small_model();
    ck_assert_int_eq(mf_model_save(m, tmp_path(path, sizeof path, "nonets"), err, sizeof err),
                     MF_OK);
    mf_model_t *l = NULL;
    ck_assert_int_eq(mf_model_load_ex(&l, path, 0, err, sizeof err), MF_OK);
    ck_assert_str_eq(l->version, m->version);
    ck_assert_ptr_nonnull(l->fam[0].lstm);
    ck_assert_ptr_null(l->fam[0].lstm->w);
    ck_assert_uint_eq(l->fam[0].lstm->nparams, m->fam[0].lstm->nparams);
    ck_assert_ptr_null(l->fam[0].gen_lstm);
    ck_assert_ptr_null(l->fam[1].lstm);
    ck_assert_int_eq(mf_model_has_nets(l), 0);
    ck_assert_int_eq(mf_model_save(l, tmp_path(other, sizeof other, "nonets2"), err, sizeof err),
                     MF_EINVAL);
    mf_scorer_t *s = mf_scorer_new(l);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(mf_score_mode_available(s, MF_MODE_LIKELIHOOD), 0);
    ck_assert_int_eq(mf_score_mode_available(s, MF_MODE_PAPER), 0); /* Worms has no pattern */
    mf_scorer_free(s);

    /* the file replaced meanwhile (another model): refused, nothing taken from it */
    ck_assert_int_eq(mf_model_set_param(m, "score.n", 4), MF_OK);
    ck_assert_int_eq(mf_model_save(m, other, err, sizeof err), MF_OK);
    ck_assert_int_eq(rename(other, path), 0);
    ck_assert_int_eq(mf_model_read_nets(l, path, err, sizeof err), MF_ECHECKSUM);
    ck_assert_msg(strstr(err, "reload"), "%s", err);
    ck_assert_ptr_null(l->fam[0].lstm->w);
    /* the file it was: the weights of a full load */
    ck_assert_int_eq(mf_model_set_param(m, "score.n", 3), MF_OK);
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);
    ck_assert_str_eq(l->version, m->version);
    ck_assert_int_eq(mf_model_read_nets(l, path, err, sizeof err), MF_OK);
    ck_assert_int_eq(mf_model_has_nets(l), 1);
    ck_assert_int_eq(memcmp(l->fam[0].lstm->w, m->fam[0].lstm->w,
                            m->fam[0].lstm->nparams * sizeof(float)), 0);
    ck_assert_ptr_nonnull(l->fam[0].gen_lstm);
    ck_assert_int_eq(memcmp(l->fam[0].gen_lstm->w, m->fam[0].gen_lstm->w,
                            m->fam[0].gen_lstm->nparams * sizeof(float)), 0);
    ck_assert_int_eq(mf_model_read_nets(l, "/nonexistent", err, sizeof err), MF_OK); /* done */
    ck_assert_int_eq(mf_model_save(l, other, err, sizeof err), MF_OK);
    ck_assert_str_eq(l->version, m->version); /* the same bytes again */
    unlink(other);
    unlink(path);
    mf_model_free(l);
    mf_model_free(m);
}
END_TEST

/* The OPTS section is exactly the layout files have had since gen_epoch was added, written
 * out here by hand (independently of the MF_TRAIN_OPTS list that model.c now uses), with
 * every field set to a value unlike its default; loading gives every value back. */
START_TEST(test_opts_bytes)
{
    char path[256], err[256];
    mf_model_t *m = small_model();
    mf_train_opts_t *o = &m->opts;
    o->nembed = 5;
    o->nhidden = 6;
    o->ndense = 7;
    o->bptt = 9;
    o->batch = 3;
    o->epochs = 4;
    o->lr = 0.25f;
    o->clip = 1.5f;
    o->seed = 0x0102030405060708ull;
    o->gen_len = 77;
    o->gen_temp = 0.5f;
    o->gen_start = 2;
    o->gen_epoch = 1;
    unsigned char want[56], *p = want;
    int32_t iv[6] = {5, 6, 7, 9, 3, 4};
    float fv[2] = {0.25f, 1.5f};
    memcpy(p, iv, sizeof iv), p += sizeof iv;
    memcpy(p, fv, sizeof fv), p += sizeof fv;
    memcpy(p, &o->seed, 8), p += 8;
    memcpy(p, &(int32_t){77}, 4), p += 4;
    memcpy(p, &(float){0.5f}, 4), p += 4;
    memcpy(p, &(int32_t){2}, 4), p += 4;
    memcpy(p, &(int32_t){1}, 4), p += 4;
    ck_assert_uint_eq((size_t)(p - want), sizeof want);

    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "opts", &n);
    uint64_t len;
    size_t off = section(b, n, "OPTS", &len);
    ck_assert_uint_eq(len, sizeof want);
    ck_assert_int_eq(memcmp(b + off + 16, want, sizeof want), 0);
    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_int_eq(memcmp(&l->opts, o, sizeof *o), 0);
    mf_model_free(l);

    /* a file ending inside a required field (here: gen_start cut to 2 bytes) is refused */
    cut_and_seal(b, &n, off, off + 16 + sizeof want - 6, 6);
    write_file(path, b, n);
    ck_assert_int_eq(mf_model_load(&l, path, err, sizeof err), MF_EFORMAT);
    ck_assert(strstr(err, "truncated") != NULL);
    unlink(path);
    free(b);
    mf_model_free(m);
}
END_TEST

/* Files written before gen_epoch existed end their OPTS section at gen_start: they load,
 * with gen_epoch 0 (their pattern came from the last epoch). The old file is made from a new
 * one by cutting the field and fixing the lengths and the checksum. */
START_TEST(test_opts_without_gen_epoch)
{
    char path[256], err[256];
    mf_model_t *m = small_model();
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "old", &n);
    uint64_t len;
    size_t off = section(b, n, "OPTS", &len);
    int32_t last;
    memcpy(&last, b + off + 16 + len - 4, sizeof last);
    ck_assert_int_eq(last, 2); /* gen_epoch is the section's last field */
    cut_and_seal(b, &n, off, off + 16 + (size_t)len - 4, 4);
    write_file(path, b, n);
    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_int_eq(l->opts.gen_epoch, 0);
    ck_assert_int_eq(l->opts.gen_start, m->opts.gen_start);
    ck_assert_int_eq(l->opts.epochs, 3);
    ck_assert_uint_eq(l->fam[0].pattern.n, 6);
    mf_model_free(l);
    /* a value outside the option's range is a format error */
    m->opts.gen_epoch = -1;
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);
    ck_assert_int_eq(mf_model_load(&l, path, err, sizeof err), MF_EFORMAT);
    ck_assert(strstr(err, "pattern epoch") != NULL);
    unlink(path);
    free(b);
    mf_model_free(m);
}
END_TEST

/* Files written before snapshot networks were stored have no SNAP section: they load with
 * gen_lstm NULL and everything else as it was. The old file is a new one with the section
 * cut out, and it is byte for byte what saving the model without its snapshot writes (the
 * layout of the other sections did not change). */
START_TEST(test_file_without_snapshots)
{
    char path[256], path2[256], err[256];
    mf_model_t *m = small_model();
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "nosnap", &n);
    uint64_t len;
    size_t off = section(b, n, "SNAP", &len);
    ck_assert_uint_eq(off + 16 + len, n - 4); /* the last section */
    cut_and_seal(b, &n, 0, off, 16 + (size_t)len);
    write_file(path, b, n);
    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_ptr_null(l->fam[0].gen_lstm);
    ck_assert_ptr_nonnull(l->fam[0].lstm);
    ck_assert_uint_eq(l->fam[0].pattern.n, 6);
    ck_assert(mf_model_param(l, "score.n", -1) == 3);
    mf_model_free(l);

    mf_lstm_free(m->fam[0].gen_lstm);
    m->fam[0].gen_lstm = NULL;
    ck_assert_int_eq(mf_model_save(m, tmp_path(path2, sizeof path2, "nosnap2"), err,
                                   sizeof err), MF_OK);
    size_t n2 = 0;
    char *b2 = tu_slurp(path2, &n2);
    ck_assert_uint_eq(n2, n);
    ck_assert_int_eq(memcmp(b, b2, n), 0);
    free(b2);
    free(b);
    unlink(path);
    unlink(path2);
    mf_model_free(m);
}
END_TEST

/* Load the image b (n bytes) through a file; returns the loader's code, err gets its text. */
static int load_image(const unsigned char *b, size_t n, char *err, size_t errlen)
{
    char path[256];
    write_file(tmp_path(path, sizeof path, "img"), b, n);
    mf_model_t *l = NULL;
    int rc = mf_model_load(&l, path, err, errlen);
    ck_assert((rc == MF_OK) == (l != NULL));
    mf_model_free(l);
    unlink(path);
    return rc;
}

/* A SNAP section with a valid checksum but contents the families contradict is a format
 * error naming the problem; any one byte of it changed (checksum redone) loads or is a
 * format error, never a crash or an out-of-bounds read (run under ASan by `make asan`). */
START_TEST(test_hostile_snapshots)
{
    char path[256], err[256];
    mf_model_t *m = small_model();
    /* a second family with a network and a snapshot: two entries, to test their order */
    mf_lstm_dims_t d = m->fam[0].lstm->d;
    m->fam[1].lstm = mf_lstm_new(&d);
    m->fam[1].gen_lstm = mf_lstm_new(&d);
    ck_assert(m->fam[1].lstm && m->fam[1].gen_lstm);
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "hs", &n);
    size_t off = section(b, n, "SNAP", NULL), body = off + 16;
    /* body: u32 count, then entries of u32 family, 4 x i32 dims, weights */
    size_t esz = 20 + m->fam[0].lstm->nparams * sizeof(float);
    size_t e1 = 4, e2 = 4 + esz;
    unsigned char *c = malloc(n);
    ck_assert_ptr_nonnull(c);
    struct {
        size_t at; /* offset in the section body */
        uint32_t value;
        const char *msg;
    } cases[] = {
        {0, 3, "bad count"},                /* more snapshots than families */
        {0, 1, "bytes left over"},          /* the second entry is extra */
        {e1, 2, "bad family index"},        /* no family 2 */
        {e2, 0, "bad family index"},        /* family 0 twice */
        {e1, 1, "bad family index"},        /* 1 then 1: not ascending */
        {e1 + 4, 9, "differs in shape"},    /* nvocab of the first */
        {e2 + 12, 4, "differs in shape"},   /* nhidden of the second */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(c, b, n);
        memcpy(c + body + cases[i].at, &cases[i].value, sizeof cases[i].value);
        seal(c, n);
        ck_assert_int_eq(load_image(c, n, err, sizeof err), MF_EFORMAT);
        ck_assert_msg(strstr(err, cases[i].msg) != NULL, "case %zu: %s", i, err);
    }
    /* weights cut short inside a section whose length agrees */
    size_t nc = n;
    memcpy(c, b, n);
    cut_and_seal(c, &nc, off, n - 4 - 4, 4);
    ck_assert_int_eq(load_image(c, nc, err, sizeof err), MF_EFORMAT);
    ck_assert_msg(strstr(err, "snapshot weights exceed") != NULL, "%s", err);
    /* each bit of the section header and of the entries' headers flipped */
    size_t heads[3][2] = {{off, 16}, {body, 4 + 20}, {body + e2, 20}};
    for (size_t h = 0; h < 3; h++)
        for (size_t i = heads[h][0]; i < heads[h][0] + heads[h][1]; i++)
            for (int bit = 0; bit < 8; bit++) {
                memcpy(c, b, n);
                c[i] ^= (unsigned char)(1u << bit);
                seal(c, n);
                int rc = load_image(c, n, err, sizeof err);
                ck_assert_msg(rc == MF_OK || rc == MF_EFORMAT, "byte %zu bit %d: %s", i, bit,
                              mf_err_name(rc));
            }
    /* a snapshot for a family without a network of its own: never written, never loaded
     * (the file: this model's sections, then the SNAP section of the one above) */
    mf_lstm_free(m->fam[1].lstm);
    m->fam[1].lstm = NULL;
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_EINVAL);
    ck_assert(strstr(err, "Worms") != NULL);
    mf_lstm_free(m->fam[1].gen_lstm);
    m->fam[1].gen_lstm = NULL;
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);
    size_t nn = 0;
    unsigned char *o = (unsigned char *)tu_slurp(path, &nn);
    ck_assert_ptr_nonnull(o);
    size_t ooff = find_section(o, nn, "SNAP");
    ck_assert_uint_gt(ooff, 0);
    size_t ng = ooff + (n - off);
    unsigned char *g = malloc(ng);
    ck_assert_ptr_nonnull(g);
    memcpy(g, o, ooff);
    memcpy(g + ooff, b + off, n - off);
    seal(g, ng);
    ck_assert_int_eq(load_image(g, ng, err, sizeof err), MF_EFORMAT);
    ck_assert_msg(strstr(err, "family Worms: snapshot network differs") != NULL, "%s", err);
    free(g);
    free(o);
    free(c);
    free(b);
    unlink(path);
    mf_model_free(m);
}
END_TEST

/* Every prefix of a model file, and every file with one byte changed, is rejected with a
 * format, checksum or version error, never loaded and never crashing. */
START_TEST(test_truncation_and_flips)
{
    char path[256], bad[256], err[256];
    mf_model_t *m = small_model();
    size_t n;
    unsigned char *buf = save_image(m, path, sizeof path, "tf", &n);
    mf_model_free(m);
    tmp_path(bad, sizeof bad, "tf_bad");
    for (size_t len = 0; len < n; len++) {
        write_file(bad, buf, len);
        mf_model_t *l = NULL;
        int rc = mf_model_load(&l, bad, err, sizeof err);
        ck_assert_msg(rc == MF_EFORMAT, "prefix %zu: %s", len, mf_err_name(rc));
        ck_assert_ptr_null(l);
        ck_assert(strlen(err) > 0);
    }
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            buf[i] ^= (unsigned char)(1u << bit);
            write_file(bad, buf, n);
            mf_model_t *l = NULL;
            int rc = mf_model_load(&l, bad, err, sizeof err);
            ck_assert_msg(rc == MF_EFORMAT || rc == MF_ECHECKSUM || rc == MF_EVERSION,
                          "flip at %zu bit %d: %s", i, bit, mf_err_name(rc));
            ck_assert_ptr_null(l);
            buf[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* the messages name the problem */
    buf[8] = 2; /* version 2 */
    write_file(bad, buf, n);
    mf_model_t *l = NULL;
    ck_assert_int_eq(mf_model_load(&l, bad, err, sizeof err), MF_EVERSION);
    ck_assert(strstr(err, "version 2") != NULL);
    buf[8] = 1;
    buf[n - 10] ^= 0x55;
    write_file(bad, buf, n);
    ck_assert_int_eq(mf_model_load(&l, bad, err, sizeof err), MF_ECHECKSUM);
    ck_assert(strstr(err, "checksum") != NULL);
    write_file(bad, "{\"not\": \"a model\"}............", 30);
    ck_assert_int_eq(mf_model_load(&l, bad, err, sizeof err), MF_EFORMAT);
    ck_assert(strstr(err, "magic") != NULL);
    ck_assert_int_eq(mf_model_load(&l, "/nonexistent/model.bin", err, sizeof err), MF_EIO);
    ck_assert_int_eq(mf_model_load(&l, "/tmp", err, sizeof err), MF_EIO);
    free(buf);
    unlink(bad);
    unlink(path);
}
END_TEST

/* One OOM attempt: load the model file at ctx->path into ctx->l (NULL when it fails). */
typedef struct {
    const char *path;
    mf_model_t *l;
} load_ctx_t;

static int load_attempt(void *ctx)
{
    load_ctx_t *lc = ctx;
    char err[256];
    lc->l = NULL;
    int rc = mf_model_load(&lc->l, lc->path, err, sizeof err);
    if (rc != MF_OK)
        ck_assert_ptr_null(lc->l);
    return rc;
}

START_TEST(test_load_oom)
{
    char path[256], err[256];
    mf_model_t *m = small_model();
    ck_assert_int_eq(mf_model_save(m, tmp_path(path, sizeof path, "oom"), err, sizeof err),
                     MF_OK);
    mf_model_free(m);
    load_ctx_t lc = {path, NULL};
    ck_assert_int_gt(tu_oom_loop(load_attempt, &lc, 1000), 10);
    ck_assert_int_eq(lc.l->nfam, 2);
    mf_model_free(lc.l);
    /* and saving under allocation failure reports it */
    m = small_model();
    mf__alloc_fail_after(1);
    int rc = mf_model_save(m, path, err, sizeof err);
    mf__alloc_fail_after(0);
    ck_assert_int_eq(rc, MF_ENOMEM);
    mf_model_free(m);
    unlink(path);
}
END_TEST

START_TEST(test_params_and_families)
{
    mf_model_t *m = mf_model_new();
    ck_assert_int_eq(mf_model_set_param(m, "", 1), MF_EINVAL);
    char longname[64];
    memset(longname, 'x', sizeof longname - 1);
    longname[63] = '\0';
    ck_assert_int_eq(mf_model_set_param(m, longname, 1), MF_EINVAL);
    ck_assert_int_eq(mf_model_set_param(m, "a", 1), MF_OK);
    ck_assert_int_eq(mf_model_set_param(m, "a", 2), MF_OK);
    ck_assert_int_eq(m->nparams, 1);
    ck_assert(mf_model_param(m, "a", 0) == 2);
    ck_assert_int_eq(mf_model_add_family(m, ""), MF_EINVAL);
    ck_assert_int_eq(mf_model_find_family(m, "x"), MF_ENOENT);
    mf_model_free(m);
    mf_model_free(NULL);
}
END_TEST

/* sa and sb give t the same linear answer: families, scores and p to 1e-12, novelty,
 * threshold, unknown flag and explanation. */
static void same_linear_answer(const mf_scorer_t *sa, const mf_scorer_t *sb, const mf_trace_t *t)
{
    mf_result_t ra, rb;
    ck_assert_int_eq(mf_score_trace(sa, MF_MODE_LINEAR, t, 3, &ra), MF_OK);
    ck_assert_int_eq(mf_score_trace(sb, MF_MODE_LINEAR, t, 3, &rb), MF_OK);
    ck_assert_int_eq(ra.ntop, rb.ntop);
    for (int i = 0; i < ra.ntop; i++) {
        ck_assert_int_eq(ra.top[i].family, rb.top[i].family);
        ck_assert_double_eq_tol(ra.top[i].score, rb.top[i].score, 1e-12);
        ck_assert_double_eq_tol(ra.top[i].p, rb.top[i].p, 1e-12);
    }
    ck_assert_double_eq_tol(ra.novelty, rb.novelty, 1e-12);
    ck_assert(ra.threshold == rb.threshold);
    ck_assert_int_eq(ra.unknown, rb.unknown);
    ck_assert_str_eq(ra.explain, rb.explain);
}

/* ---- the stored linear classifier (LINR) ------------------------------------------------ */

/* A trace of family c (0..2): calls 3c..3c+2 mostly, the shared 9 and 10 now and then. */
static void fam_trace(mf_trace_t *t, int c, uint32_t seed, size_t n)
{
    tu_class_trace(t, c, 9, seed, n);
}

static mf_model_t *ref_model_n(int N, size_t len, int cal);

/* Three families, 12 references each, a vocabulary of 11 calls; calibrated (so it holds its
 * fitted classifier) when `cal`. */
static mf_model_t *ref_model(int cal)
{
    return ref_model_n(36, 20, cal);
}

/* The same with N references of len + 0..6 calls. */
static mf_model_t *ref_model_n(int N, size_t len, int cal)
{
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->vocab = mf_vocab_new();
    ck_assert_ptr_nonnull(m->vocab);
    for (int i = 0; i < 11; i++) {
        char name[16];
        snprintf(name, sizeof name, "api%d", i);
        ck_assert_int_eq(mf_vocab_add(m->vocab, name, strlen(name)), i);
    }
    const char *fams[] = {"alpha", "beta", "gamma"};
    for (int f = 0; f < 3; f++)
        ck_assert_int_eq(mf_model_add_family(m, fams[f]), f);
    m->refs = calloc(N, sizeof *m->refs);
    m->ref_label = calloc(N, sizeof *m->ref_label);
    ck_assert(m->refs && m->ref_label);
    for (int i = 0; i < N; i++) {
        m->ref_label[i] = i % 3;
        fam_trace(&m->refs[i], i % 3, 900u + (uint32_t)i, len + (size_t)i % 7);
    }
    m->nrefs = (size_t)N;
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    if (cal) {
        ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
        ck_assert_ptr_nonnull(m->lin);
    }
    return m;
}

/* Linear answers of model a and b for a few fresh traces agree to 1e-12 (scores, p,
 * novelty, threshold, explanation). */
static void same_answers(const mf_model_t *a, const mf_model_t *b)
{
    mf_scorer_t *sa = mf_scorer_new(a), *sb = mf_scorer_new(b);
    ck_assert(sa && sb);
    for (int k = 0; k < 6; k++) {
        mf_trace_t t;
        fam_trace(&t, k % 3, 31u * (uint32_t)k + 7u, 25);
        same_linear_answer(sa, sb, &t);
        mf_trace_destroy(&t);
    }
    mf_scorer_free(sa);
    mf_scorer_free(sb);
}

/* A calibrated model's file carries its classifier: loading it and scoring fits no SVM, and
 * the answers are the training-time ones (the load-without-training test). */
START_TEST(test_load_fits_nothing)
{
    char path[256], err[256];
    mf_model_t *m = ref_model(1);
    ck_assert_int_eq(mf_model_save(m, tmp_path(path, sizeof path, "lin"), err, sizeof err), MF_OK);
    unsigned long fits = mf_linear_fit_count();
    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    mf_scorer_t *s = mf_scorer_new(l);
    ck_assert_ptr_nonnull(s);
    mf_trace_t t;
    fam_trace(&t, 1, 5u, 30);
    mf_result_t r;
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.top[0].family, 1);
    ck_assert_msg(mf_linear_fit_count() == fits, "loading and scoring fitted %lu SVMs",
                  mf_linear_fit_count() - fits);
    ck_assert(isfinite(r.top[0].p)); /* the temperature came with it */
    mf_trace_destroy(&t);
    mf_scorer_free(s);
    same_answers(m, l);
    ck_assert_msg(mf_linear_fit_count() == fits, "scoring fitted an SVM");
    /* other options than the stored classifier's, or folds: the scorer fits its own */
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, l);
    o.lin_c *= 2;
    s = mf_scorer_new_ex(l, &o, NULL, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(mf_linear_fit_count(), fits + 1);
    mf_scorer_free(s);
    unsigned char skip[36] = {1};
    s = mf_scorer_new_ex(l, NULL, skip, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(mf_linear_fit_count(), fits + 2);
    mf_scorer_free(s);
    mf_model_free(l);
    mf_model_free(m);
    unlink(path);
}
END_TEST

/* Past MF__CAL_ALL references calibration fits one SVM, the held-out fold's, and the model
 * keeps it: its columns are those of a fit without the sample (mf__cal_folds' fold 0). The
 * saved file is the same whatever the threads calibration and the fits run on. */
START_TEST(test_held_out_classifier)
{
    char p1[256], p2[256], err[256];
    mf_model_t *a = ref_model_n(MF__CAL_ALL + 100, 8, 0), *b = ref_model_n(MF__CAL_ALL + 100, 8, 0);
    mf_score_set_threads(1);
    unsigned long fits = mf_linear_fit_count();
    ck_assert_int_eq(mf_score_calibrate(a, 0.05), MF_OK);
    ck_assert_uint_eq(mf_linear_fit_count(), fits + 1);
    mf_score_set_threads(3);
    ck_assert_int_eq(mf_score_calibrate(b, 0.05), MF_OK);
    mf_score_set_threads(1);
    size_t n1, n2;
    unsigned char *f1 = save_image(a, p1, sizeof p1, "held1", &n1);
    unsigned char *f2 = save_image(b, p2, sizeof p2, "held3", &n2);
    ck_assert(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0);
    free(f1);
    free(f2);
    ck_assert_str_eq(a->version, b->version);

    int *fold = malloc(a->nrefs * sizeof *fold), keval;
    unsigned char *skip = malloc(a->nrefs);
    ck_assert(fold && skip);
    ck_assert_int_eq(mf__cal_folds(a->ref_label, a->nrefs, a->nfam, fold, &keval), MF_OK);
    ck_assert_int_eq(keval, 1);
    size_t held = 0;
    for (size_t i = 0; i < a->nrefs; i++)
        held += skip[i] = fold[i] == 0;
    ck_assert(held > 500 && held < a->nrefs);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, a);
    mf_linear_opts_t lo = mf__linear_opts(&o);
    mf_linear_t *l;
    ck_assert_int_eq(mf_linear_train(&l, a->refs, a->ref_label, skip, a->nrefs, a->nfam, &lo),
                     MF_OK);
    size_t nw = mf_linear_nfeatures(l) + 1;
    ck_assert_uint_eq(mf_linear_nfeatures(a->lin), nw - 1);
    float *c1 = malloc(nw * sizeof *c1), *c2 = malloc(nw * sizeof *c2);
    ck_assert(c1 && c2);
    for (int c = 0; c < a->nfam; c++) {
        ck_assert_int_eq(mf_linear_class_get(l, c, c1), MF_OK);
        ck_assert_int_eq(mf_linear_class_get(a->lin, c, c2), MF_OK);
        ck_assert(memcmp(c1, c2, nw * sizeof *c1) == 0);
    }
    /* and a scorer of the saved file answers with it, fitting nothing */
    mf_model_t *l2 = NULL;
    ck_assert_msg(mf_model_load(&l2, p1, err, sizeof err) == MF_OK, "%s", err);
    fits = mf_linear_fit_count();
    same_answers(a, l2);
    ck_assert_uint_eq(mf_linear_fit_count(), fits);
    mf_model_free(l2);
    free(c1);
    free(c2);
    mf_linear_free(l);
    free(fold);
    free(skip);
    mf_model_free(a);
    mf_model_free(b);
    unlink(p1);
    unlink(p2);
}
END_TEST

/* LINR: a round trip saves what was loaded byte for byte; a file without it (an older
 * writer) or with references changed since the fit loads and fits at load as before, with
 * the same answers; a corrupt section (checksum redone) is MF_EFORMAT, never a crash. */
START_TEST(test_linear_section)
{
    char path[256], err[256];
    mf_model_t *m = ref_model(1);
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "linr", &n);
    uint64_t len;
    size_t off = section(b, n, "LINR", &len);
    ck_assert_uint_eq(off + 16 + len, n - 4); /* the last section */
    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_ptr_nonnull(l->lin);
    ck_assert_uint_eq(mf_linear_nfeatures(l->lin), mf_linear_nfeatures(m->lin));
    size_t n2;
    char path2[256];
    unsigned char *b2 = save_image(l, path2, sizeof path2, "linr2", &n2);
    ck_assert(n2 == n && memcmp(b, b2, n) == 0);
    free(b2);
    unlink(path2);
    mf_model_free(l);

    /* without the section: loads, fits once at scorer build, same answers */
    unsigned char *c = malloc(n);
    ck_assert_ptr_nonnull(c);
    memcpy(c, b, n);
    size_t nc = n;
    cut_and_seal(c, &nc, 0, off, 16 + (size_t)len);
    ck_assert_int_eq(load_image(c, nc, err, sizeof err), MF_OK);
    write_file(path2, c, nc);
    ck_assert_int_eq(mf_model_load(&l, path2, err, sizeof err), MF_OK);
    ck_assert_ptr_null(l->lin);
    unsigned long fits = mf_linear_fit_count();
    same_answers(m, l);
    ck_assert_uint_eq(mf_linear_fit_count(), fits + 1);
    mf_model_free(l);

    /* references changed after the fit (an id in REFS): the classifier is dropped */
    memcpy(c, b, n);
    size_t refs = section(c, n, "REFS", NULL);
    int32_t id;
    memcpy(&id, c + refs + 16 + 8 + 4 + 8, 4); /* count, label, length, first id */
    id = id == 0 ? 1 : 0;
    memcpy(c + refs + 16 + 8 + 4 + 8, &id, 4);
    seal(c, n);
    write_file(path2, c, n);
    ck_assert_int_eq(mf_model_load(&l, path2, err, sizeof err), MF_OK);
    ck_assert_ptr_null(l->lin);
    mf_model_free(l);

    /* corrupt sections with a valid checksum */
    size_t body = off + 16;
    /* without the trailing tf (a writer before it): loads as sublinear, so a scorer with
     * today's options (binary) fits its own */
    memcpy(c, b, n);
    nc = n;
    cut_and_seal(c, &nc, off, off + 16 + (size_t)len - 4, 4);
    write_file(path2, c, nc);
    ck_assert_int_eq(mf_model_load(&l, path2, err, sizeof err), MF_OK);
    ck_assert_ptr_nonnull(l->lin);
    mf_linear_parts_t lp;
    mf_linear_get_parts(l->lin, &lp);
    ck_assert_int_eq(lp.o.tf, 0);
    mf_linear_get_parts(m->lin, &lp);
    ck_assert_int_eq(lp.o.tf, 1);
    mf_model_free(l);
    /* a truncated section: tf and its last weight cut */
    memcpy(c, b, n);
    nc = n;
    cut_and_seal(c, &nc, off, off + 16 + (size_t)len - 8, 8);
    ck_assert_int_eq(load_image(c, nc, err, sizeof err), MF_EFORMAT);
    /* a wrong class count, an unknown encoding, unsorted keys, a NaN weight */
    const size_t at_nclass = body + 4, at_enc = body + 4 + 4 + 4 + 8 + 4 + 4 + 8 + 8;
    const size_t at_keys = at_enc + 4;
    uint64_t nf;
    memcpy(&nf, b + at_enc - 8, 8);
    ck_assert_uint_gt(nf, 2);
    for (int k = 0; k < 4; k++) {
        memcpy(c, b, n);
        if (k == 0)
            c[at_nclass] = 4;
        else if (k == 1)
            c[at_enc] = 1;
        else if (k == 2)
            memcpy(c + at_keys, b + at_keys + 8, 8); /* key 0 = key 1 */
        else {
            float nan = NAN;
            memcpy(c + n - 4 - 4 - 4, &nan, 4); /* the last bias (before tf, checksum) */
        }
        seal(c, n);
        ck_assert_msg(load_image(c, n, err, sizeof err) == MF_EFORMAT, "case %d", k);
        ck_assert(strstr(err, "linear") != NULL);
        ck_assert(k < 2 || strstr(err, "non-finite") != NULL);
    }
    /* every byte of the section flipped: loads or MF_EFORMAT */
    for (size_t i = off; i < n - 4; i++) {
        memcpy(c, b, n);
        c[i] ^= 0x81;
        seal(c, n);
        int rc = load_image(c, n, err, sizeof err);
        ck_assert_msg(rc == MF_OK || rc == MF_EFORMAT, "flip at %zu: %s", i, mf_err_name(rc));
    }
    free(c);
    free(b);
    mf_model_free(m);
    unlink(path);
    unlink(path2);
}
END_TEST

/* A path that is not a regular file is refused at once (a FIFO without a writer must not
 * block the load), and a file whose header or section chain is wrong is refused before its
 * payload is read: the check allocates nothing (so a 1 GB sparse file costs nothing). */
START_TEST(test_load_checks_before_reading)
{
    char path[256], err[256];
    mf_model_t *l = NULL;
    tmp_path(path, sizeof path, "fifo");
    unlink(path);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(mf_model_load(&l, path, err, sizeof err), MF_EIO);
    ck_assert(strstr(err, "not a regular file") != NULL);
    unlink(path);

    /* 1 GB, sparse, bad magic */
    tmp_path(path, sizeof path, "sparse");
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "NOTAMODEL", 9), 9);
    ck_assert_int_eq(ftruncate(fd, (off_t)1 << 30), 0);
    close(fd);
    mf__alloc_fail_after(1); /* any allocation would fail with MF_ENOMEM */
    int rc = mf_model_load(&l, path, err, sizeof err);
    mf__alloc_fail_after(0);
    ck_assert_msg(rc == MF_EFORMAT, "%s: %s", mf_err_name(rc), err);
    ck_assert(strstr(err, "magic") != NULL);

    /* a good header, then a section longer than the file, padded to 1 GB: the header says
     * the size; the chain does not fit it */
    mf_model_t *m = small_model();
    size_t n;
    char good[256];
    unsigned char *b = save_image(m, good, sizeof good, "chain", &n);
    mf_model_free(m);
    uint64_t payload = ((uint64_t)1 << 30) - 28, huge = (uint64_t)1 << 31;
    memcpy(b + 16, &payload, 8);
    memcpy(b + 24 + 8, &huge, 8); /* the first section's length */
    write_file(path, b, n);
    ck_assert_int_eq(truncate(path, (off_t)1 << 30), 0);
    mf__alloc_fail_after(1);
    rc = mf_model_load(&l, path, err, sizeof err);
    mf__alloc_fail_after(0);
    ck_assert_msg(rc == MF_EFORMAT, "%s: %s", mf_err_name(rc), err);
    ck_assert(strstr(err, "exceeds the file") != NULL);
    free(b);
    unlink(path);
    unlink(good);
}
END_TEST

/* Linear's combo over the prototypes goes through their inverted index (mf__postings_t): the
 * same bits as the scan over their key sets, for fresh traces and for references left out
 * (calibration's rows), in a linear-only scorer and a full one. */
START_TEST(test_prototype_index)
{
    mf_model_t *m = ref_model(0);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    o.nov_protos = 2;
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    for (int full = 0; full < 2; full++) {
        mf_scorer_t *s = full ? mf_scorer_new(m) : mf_scorer_new_mode(m, NULL, MF_MODE_LINEAR);
        ck_assert_ptr_nonnull(s);
        ck_assert(s->nproto >= 3 && s->nproto < m->nrefs); /* prototypes, not every one */
        ck_assert(s->post[MF__VIEW_COMBO1].off && s->post[MF__VIEW_COMBO2].off);
        enum { N = 9 };
        mf_result_t a[N];
        double nov[N];
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) /* the scan */
                for (int k = 0; k < MF__NVIEWS; k++) {
                    free(s->post[k].off);
                    free(s->post[k].pos);
                    s->post[k].off = NULL;
                    s->post[k].pos = NULL;
                }
            for (int i = 0; i < N; i++) {
                mf_trace_t t;
                fam_trace(&t, i % 3, 77u + (uint32_t)i, 18 + (size_t)i);
                mf_result_t r;
                ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, &t, 3, &r), MF_OK);
                double v;
                size_t ref = s->proto[(size_t)i % s->nproto];
                ck_assert_int_eq(mf__linear_combo(s, &m->refs[ref], (long)ref, -1, &v, NULL), MF_OK);
                if (pass == 0) {
                    a[i] = r;
                    nov[i] = v;
                } else {
                    ck_assert(memcmp(&a[i].top, &r.top, sizeof r.top) == 0);
                    ck_assert(a[i].novelty == r.novelty && nov[i] == v);
                    ck_assert_str_eq(a[i].explain, r.explain);
                }
                mf_trace_destroy(&t);
            }
        }
        mf_scorer_free(s);
    }
    mf_model_free(m);
}
END_TEST

/* A one-mode scorer (malfam score --mode) builds only that mode: knn on a model without a
 * stored classifier fits no SVM and answers as the full scorer; linear answers the same too. */
START_TEST(test_scorer_for_one_mode)
{
    mf_model_t *m = ref_model(0);
    unsigned long fits = mf_linear_fit_count();
    mf_scorer_t *k = mf_scorer_new_mode(m, NULL, MF_MODE_KNN);
    ck_assert_ptr_nonnull(k);
    ck_assert_uint_eq(mf_linear_fit_count(), fits);
    ck_assert(mf_score_mode_available(k, MF_MODE_KNN));
    ck_assert(!mf_score_mode_available(k, MF_MODE_LINEAR));
    ck_assert(!mf_score_mode_available(k, MF_MODE_COMBO));
    mf_scorer_t *lin = mf_scorer_new_mode(m, NULL, MF_MODE_LINEAR);
    ck_assert_ptr_nonnull(lin);
    ck_assert_uint_eq(mf_linear_fit_count(), fits + 1);
    mf_scorer_t *full = mf_scorer_new(m);
    ck_assert_ptr_nonnull(full);
    ck_assert_ptr_null(mf_scorer_new_mode(m, NULL, MF_NMODES));
    for (int i = 0; i < 4; i++) {
        mf_trace_t t;
        fam_trace(&t, i % 3, 17u + (uint32_t)i, 30);
        for (int mode = MF_MODE_KNN; mode <= MF_MODE_LINEAR; mode += MF_MODE_LINEAR - MF_MODE_KNN) {
            mf_result_t a, b;
            ck_assert_int_eq(mf_score_trace(mode == MF_MODE_KNN ? k : lin, mode, &t, 3, &a), MF_OK);
            ck_assert_int_eq(mf_score_trace(full, mode, &t, 3, &b), MF_OK);
            ck_assert_int_eq(a.top[0].family, b.top[0].family);
            ck_assert_double_eq_tol(a.top[0].score, b.top[0].score, 1e-12);
            ck_assert_double_eq_tol(a.novelty, b.novelty, 1e-12);
            ck_assert_str_eq(a.explain, b.explain);
        }
        mf_trace_destroy(&t);
    }
    mf_scorer_free(k);
    mf_scorer_free(lin);
    mf_scorer_free(full);
    mf_model_free(m);
}
END_TEST

/* Linear's novelty over prototypes (nov_protos): the default on a small model is the exact
 * scan; N at least the family sizes (references with distinct API sets) picks every reference
 * and answers exactly as the scan; N = 2 compares 2 per family, same ranking. */
START_TEST(test_novelty_prototypes)
{
    mf_model_t *m = ref_model(0);
    for (size_t i = 0; i < m->nrefs; i++) /* a call of its own: every API set differs */
        ck_assert_int_eq(mf_trace_push(&m->refs[i], 11 + (int)i), MF_OK);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    ck_assert_int_eq(o.nov_protos, -1);
    mf_scorer_t *dflt = mf_scorer_new_ex(m, &o, NULL, NULL);
    o.nov_protos = 0;
    mf_scorer_t *exact = mf_scorer_new_ex(m, &o, NULL, NULL);
    o.nov_protos = 1000;
    mf_scorer_t *every = mf_scorer_new_ex(m, &o, NULL, NULL);
    o.nov_protos = 2;
    mf_scorer_t *two = mf_scorer_new_ex(m, &o, NULL, NULL);
    /* linear alone (what malfamd and score build) keeps the prototypes' key sets only */
    mf_scorer_t *two1 = mf_scorer_new_mode(m, &o, MF_MODE_LINEAR);
    ck_assert(dflt && exact && every && two && two1);
    size_t kept = 0;
    for (size_t i = 0; i < m->nrefs; i++)
        kept += two1->view[MF__VIEW_COMBO2].ref[i].n > 0;
    ck_assert_uint_eq(kept, 6);
    ck_assert(dflt->proto == NULL && exact->proto == NULL);
    ck_assert_uint_eq(every->nproto, m->nrefs);
    ck_assert_uint_eq(two->nproto, 6);
    o.nov_protos = 1001;
    ck_assert_int_eq(mf_score_opts_check(&o, NULL, 0), MF_EINVAL);
    for (int k = 0; k < 6; k++) {
        mf_trace_t t;
        fam_trace(&t, k % 3, 71u * (uint32_t)k + 3u, 28);
        mf_result_t a, b, c, d, e;
        ck_assert_int_eq(mf_score_trace(dflt, MF_MODE_LINEAR, &t, 3, &a), MF_OK);
        ck_assert_int_eq(mf_score_trace(exact, MF_MODE_LINEAR, &t, 3, &b), MF_OK);
        ck_assert_int_eq(mf_score_trace(every, MF_MODE_LINEAR, &t, 3, &c), MF_OK);
        ck_assert_int_eq(mf_score_trace(two, MF_MODE_LINEAR, &t, 3, &d), MF_OK);
        ck_assert(a.novelty == b.novelty && b.novelty == c.novelty);
        ck_assert_str_eq(a.explain, b.explain);
        ck_assert_str_eq(b.explain, c.explain);
        ck_assert_int_eq(d.top[0].family, b.top[0].family); /* the ranking is the SVM's */
        ck_assert(d.top[0].score == b.top[0].score);
        ck_assert(d.novelty >= 0 && d.novelty <= 1);
        ck_assert_int_eq(mf_score_trace(two1, MF_MODE_LINEAR, &t, 3, &e), MF_OK);
        ck_assert(e.top[0].family == d.top[0].family && e.top[0].score == d.top[0].score);
        ck_assert(e.novelty == d.novelty);
        ck_assert_str_eq(e.explain, d.explain);
        mf_trace_destroy(&t);
    }
    mf_scorer_free(dflt);
    mf_scorer_free(exact);
    mf_scorer_free(every);
    mf_scorer_free(two);
    mf_scorer_free(two1);
    mf_model_free(m);
}
END_TEST

/* Linear answers of two scorers for a few fresh traces agree to 1e-12 (scores, p, novelty,
 * threshold, explanation). */
static void same_linear(const mf_scorer_t *sa, const mf_scorer_t *sb)
{
    for (int k = 0; k < 9; k++) {
        mf_trace_t t;
        fam_trace(&t, k % 3, 53u * (uint32_t)k + 11u, 18 + (size_t)k);
        if (k == 8)
            ck_assert_int_eq(mf_trace_push(&t, 10), MF_OK);
        same_linear_answer(sa, sb, &t);
        mf_trace_destroy(&t);
    }
}

/* NOVI: a model whose linear novelty compares prototypes (nov_protos 2 here; auto beyond
 * 2,000 references) stores combo's idf tables and the prototypes; a linear-only scorer of
 * the loaded file takes them, builds key sets for the prototypes alone and answers as one
 * built from scratch; the section round-trips byte for byte; a file without it, one whose
 * references changed, or references changed in memory build from scratch as before; a
 * corrupt section (checksum redone) is MF_EFORMAT. */
START_TEST(test_novelty_section)
{
    char path[256], path2[256], err[256];
    mf_model_t *m = ref_model(0);
    for (size_t i = 0; i < m->nrefs; i++) { /* a call of its own: every API set differs */
        char name[16];
        int len = snprintf(name, sizeof name, "own%zu", i);
        ck_assert_int_eq(mf_vocab_add(m->vocab, name, (size_t)len), 11 + (int)i);
        ck_assert_int_eq(mf_trace_push(&m->refs[i], 11 + (int)i), MF_OK);
    }
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    o.nov_protos = 2;
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "novi", &n);
    uint64_t len;
    size_t off = section(b, n, "NOVI", &len);
    uint64_t klen;
    size_t koff = section(b, n, "NOVK", &klen);
    ck_assert_uint_eq(off + 16 + len, koff); /* NOVK follows, the last section */
    ck_assert_uint_eq(koff + 16 + klen, n - 4);
    ck_assert_ptr_null(m->nov);

    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_ptr_nonnull(l->nov);
    ck_assert_uint_eq(l->nov->nproto, 6);
    ck_assert_int_eq(l->nov->np, 2);
    unsigned long fits = mf_linear_fit_count();
    mf_scorer_t *fresh = mf_scorer_new_mode(m, NULL, MF_MODE_LINEAR);
    mf_scorer_t *stored = mf_scorer_new_mode(l, NULL, MF_MODE_LINEAR);
    mf_scorer_t *all = mf_scorer_new(l); /* every mode: combo needs every reference */
    ck_assert(fresh && stored && all);
    ck_assert_uint_eq(mf_linear_fit_count(), fits);
    ck_assert(!fresh->from_nov && stored->from_nov && !all->from_nov);
    ck_assert_uint_eq(stored->nproto, fresh->nproto);
    ck_assert(memcmp(stored->proto, fresh->proto, fresh->nproto * sizeof *fresh->proto) == 0);
    for (int v = MF__VIEW_COMBO1; v <= MF__VIEW_COMBO2; v++) {
        ck_assert_uint_eq(stored->view[v].nd, fresh->view[v].nd);
        ck_assert(stored->view[v].unseen == fresh->view[v].unseen);
        size_t built = 0;
        for (size_t i = 0; i < l->nrefs; i++) {
            /* a linear scorer on NOVK keeps the prototypes' weight sums alone (it queries
             * the index) */
            const mf_keyset_t *a = &stored->view[v].ref[i], *c = &fresh->view[v].ref[i];
            built += a->wsum > 0;
            ck_assert(a->n == 0 && !a->k && !a->w);
            ck_assert(a->wsum == c->wsum);
        }
        ck_assert_uint_eq(built, 6);
        /* the file's inverted index (NOVK) is the one a fresh build makes */
        const mf__postings_t *ps = &stored->post[v], *pf = &fresh->post[v];
        ck_assert(ps->off && pf->off);
        ck_assert(memcmp(ps->off, pf->off, (fresh->view[v].nd + 1) * sizeof *ps->off) == 0);
        ck_assert(memcmp(ps->pos, pf->pos, pf->off[fresh->view[v].nd] * sizeof *ps->pos) == 0);
    }
    ck_assert(stored->post_borrowed && !fresh->post_borrowed);
    same_linear(fresh, stored);
    same_linear(all, stored);
    mf_scorer_free(all);

    /* a round trip writes the same bytes */
    size_t n2;
    unsigned char *b2 = save_image(l, path2, sizeof path2, "novi2", &n2);
    ck_assert(n2 == n && memcmp(b, b2, n) == 0);
    free(b2);
    unlink(path2);

    /* references changed in memory since the load: the index is not these references' */
    int32_t keep = l->refs[4].ids[0];
    l->refs[4].ids[0] = keep == 0 ? 1 : 0;
    mf_scorer_t *changed = mf_scorer_new_mode(l, NULL, MF_MODE_LINEAR);
    ck_assert_ptr_nonnull(changed);
    ck_assert(!changed->from_nov);
    mf_scorer_free(changed);
    l->refs[4].ids[0] = keep;
    mf_scorer_free(stored);
    mf_model_free(l);

    /* without the section (an older writer): loads, builds from scratch, same answers */
    unsigned char *c = malloc(n);
    ck_assert_ptr_nonnull(c);
    memcpy(c, b, n);
    size_t nc = n;
    cut_and_seal(c, &nc, 0, off, 16 + (size_t)len);
    write_file(path2, c, nc);
    ck_assert_msg(mf_model_load(&l, path2, err, sizeof err) == MF_OK, "%s", err);
    ck_assert(l->lin && !l->nov);
    mf_scorer_t *old = mf_scorer_new_mode(l, NULL, MF_MODE_LINEAR);
    ck_assert(old && !old->from_nov);
    same_linear(old, fresh);
    mf_scorer_free(old);
    mf_model_free(l);

    /* references changed in the file after the index was built: dropped at load */
    memcpy(c, b, n);
    size_t refs = section(c, n, "REFS", NULL);
    int32_t id;
    memcpy(&id, c + refs + 16 + 8 + 4 + 8, 4); /* count, label, length, first id */
    id = id == 0 ? 1 : 0;
    memcpy(c + refs + 16 + 8 + 4 + 8, &id, 4);
    seal(c, n);
    ck_assert_int_eq(load_image(c, n, err, sizeof err), MF_OK);
    write_file(path2, c, n);
    ck_assert_int_eq(mf_model_load(&l, path2, err, sizeof err), MF_OK);
    ck_assert_ptr_null(l->nov);
    mf_model_free(l);

    /* corrupt sections with a valid checksum: truncated, a bad combo_hi, a prototype out of
     * range, prototypes out of order, unsorted keys, a NaN weight */
    const size_t body = off + 16, at_hi = body + 4, at_proto = body + 28;
    const size_t at_keys = at_proto + 6 * 8 + 4 + 8;
    uint64_t nd;
    memcpy(&nd, b + at_keys - 8, 8);
    ck_assert_uint_gt(nd, 2);
    for (int k = 0; k < 6; k++) {
        memcpy(c, b, n);
        nc = n;
        if (k == 0) {
            cut_and_seal(c, &nc, off, off + 16 + (size_t)len - 4, 4);
        } else {
            if (k == 1)
                c[at_hi] = 9;
            else if (k == 2)
                memset(c + at_proto + 5 * 8, 0xff, 8);
            else if (k == 3)
                memcpy(c + at_proto, b + at_proto + 8, 8);
            else if (k == 4)
                memcpy(c + at_keys, b + at_keys + 8, 8);
            else {
                float nan = NAN;
                memcpy(c + koff - 4, &nan, 4); /* the last weight of the second table */
            }
            seal(c, n);
        }
        ck_assert_msg(load_image(c, nc, err, sizeof err) == MF_EFORMAT, "case %d", k);
        ck_assert_msg(strstr(err, "novelty index") != NULL, "case %d: %s", k, err);
    }

    /* without NOVK (a writer before it): the key sets are built from the traces, the index
     * made afresh, the answers the same */
    memcpy(c, b, n);
    nc = n;
    cut_and_seal(c, &nc, 0, koff, 16 + (size_t)klen);
    write_file(path2, c, nc);
    ck_assert_msg(mf_model_load(&l, path2, err, sizeof err) == MF_OK, "%s", err);
    ck_assert(l->nov && !l->nov->view[0].off);
    mf_scorer_t *nok = mf_scorer_new_mode(l, NULL, MF_MODE_LINEAR);
    ck_assert(nok && nok->from_nov && !nok->post_borrowed && nok->post[MF__VIEW_COMBO2].off);
    same_linear(nok, fresh);
    mf_scorer_free(nok);
    mf_model_free(l);

    /* NOVK corrupt with a valid checksum: a position past the prototypes, offsets that go
     * down, a last offset that is not the total */
    const size_t kbody = koff + 16 + 4; /* after the CRC: table 0's total, offsets, ... */
    uint64_t total0;
    memcpy(&total0, b + kbody, 8);
    uint64_t nd0;
    memcpy(&nd0, b + body + 28 + 6 * 8 + 4, 8); /* NOVI: table 0's nd */
    const size_t at_off = kbody + 8, at_pos = at_off + (nd0 + 1) * 4;
    for (int k = 0; k < 3; k++) {
        memcpy(c, b, n);
        uint32_t x;
        if (k == 0) {
            x = 6;
            memcpy(c + at_pos, &x, 4);
        } else if (k == 1) {
            x = (uint32_t)total0 + 1;
            memcpy(c + at_off + 4, &x, 4);
        } else {
            x = (uint32_t)total0 - 1;
            memcpy(c + at_off + nd0 * 4, &x, 4);
        }
        seal(c, n);
        ck_assert_msg(load_image(c, n, err, sizeof err) == MF_EFORMAT, "novk case %d", k);
        ck_assert_msg(strstr(err, "novelty key index") != NULL, "novk case %d: %s", k, err);
    }
    free(c);
    free(b);
    mf_scorer_free(fresh);
    mf_model_free(m);
    unlink(path);
    unlink(path2);
}
END_TEST

/* A file written before LINR (the fuzz corpus keeps one from then) still loads and scores. */
START_TEST(test_old_file_loads)
{
    char err[256];
    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, "tests/fuzz/corpus/fuzz_model/raw_intact.model", err,
                                sizeof err) == MF_OK, "%s", err);
    ck_assert_ptr_null(l->lin);
    mf_scorer_t *s = mf_scorer_new(l);
    ck_assert_ptr_nonnull(s);
    mf_scorer_free(s);
    mf_model_free(l);
}
END_TEST

/* A family packed for another process (MPI training) comes back identical; every truncation,
 * a foreign magic, a network of another shape, a pattern id outside the vocabulary and an
 * unknown family are refused with the model untouched. */
START_TEST(test_family_pack)
{
    char err[256];
    mf_model_t *m = tu_model_letters('f');
    m->opts.nembed = 3, m->opts.nhidden = 4, m->opts.ndense = 5;
    int f = mf_model_add_family(m, "Worms");
    ck_assert_int_ge(f, 0);
    mf_lstm_dims_t d = {6, 3, 4, 5};
    uint64_t rng = 5;
    m->fam[f].lstm = tu_lstm_random(&d, &rng);
    m->fam[f].gen_lstm = tu_lstm_random(&d, &rng);
    tu_trace_letters(&m->fam[f].pattern, "abcfed");
    m->fam[f].tokens = 1234, m->fam[f].loss = 1.5, m->fam[f].entropy = 0.75;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(mf_train_family_pack(&m->fam[f], &buf, &len), MF_OK);

    mf_model_t *o = tu_model_letters('f'); /* the receiving side: the slot exists, empty */
    o->opts = m->opts;
    ck_assert_int_eq(mf_train_family_unpack(o, buf, len, err, sizeof err), MF_ENOENT);
    int g = mf_model_add_family(o, "Worms");
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(mf_train_family_unpack(o, buf, cut, err, sizeof err), MF_EFORMAT);
    ck_assert_ptr_null(o->fam[g].lstm);
    ck_assert_uint_eq(o->fam[g].pattern.n, 0);
    buf[0] ^= 1;
    ck_assert_int_eq(mf_train_family_unpack(o, buf, len, err, sizeof err), MF_EFORMAT);
    ck_assert_str_eq(err, "packed family: not a packed family");
    buf[0] ^= 1;
    o->opts.nhidden = 7;
    ck_assert_int_eq(mf_train_family_unpack(o, buf, len, err, sizeof err), MF_EFORMAT);
    o->opts.nhidden = 4;
    int32_t bad = 6, good;
    memcpy(&good, buf + len - sizeof good, sizeof good);
    memcpy(buf + len - sizeof bad, &bad, sizeof bad); /* the pattern's last id */
    ck_assert_int_eq(mf_train_family_unpack(o, buf, len, err, sizeof err), MF_EFORMAT);
    memcpy(buf + len - sizeof good, &good, sizeof good);
    ck_assert_ptr_null(o->fam[g].lstm);

    ck_assert_int_eq(mf_train_family_unpack(o, buf, len, err, sizeof err), MF_OK);
    const mf_family_t *a = &m->fam[f], *b = &o->fam[g];
    ck_assert_uint_eq(b->tokens, 1234);
    ck_assert(b->loss == 1.5 && b->entropy == 0.75);
    ck_assert_uint_eq(b->pattern.n, 6);
    ck_assert_int_eq(memcmp(a->pattern.ids, b->pattern.ids, 6 * sizeof *a->pattern.ids), 0);
    ck_assert_int_eq(memcmp(a->lstm->w, b->lstm->w, a->lstm->nparams * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(a->gen_lstm->w, b->gen_lstm->w, a->lstm->nparams * sizeof(float)), 0);
    free(buf);

    /* no network, no snapshot, no pattern (a family too small to train) */
    mf_lstm_free(m->fam[f].lstm), m->fam[f].lstm = NULL;
    mf_lstm_free(m->fam[f].gen_lstm), m->fam[f].gen_lstm = NULL;
    mf_trace_destroy(&m->fam[f].pattern);
    ck_assert_int_eq(mf_train_family_pack(&m->fam[f], &buf, &len), MF_OK);
    ck_assert_int_eq(mf_train_family_unpack(o, buf, len, err, sizeof err), MF_OK);
    ck_assert_ptr_null(o->fam[g].lstm);
    ck_assert_ptr_null(o->fam[g].gen_lstm);
    ck_assert_uint_eq(o->fam[g].pattern.n, 0);
    free(buf);
    mf_model_free(m);
    mf_model_free(o);
}
END_TEST

/* Scorers x and y answer every fifth reference of `full` alike in `mode`: top family, score
 * and explanation. */
static void same_mode_answers(const mf_model_t *full, const mf_scorer_t *x, const mf_scorer_t *y,
                              int mode)
{
    for (size_t i = 0; i < full->nrefs; i += 5) {
        mf_result_t ra, rb;
        ck_assert_int_eq(mf_score_trace(x, mode, &full->refs[i], 3, &ra), MF_OK);
        ck_assert_int_eq(mf_score_trace(y, mode, &full->refs[i], 3, &rb), MF_OK);
        ck_assert(ra.top[0].family == rb.top[0].family && ra.top[0].score == rb.top[0].score);
        ck_assert_str_eq(ra.explain, rb.explain);
    }
}

/* 1 when this process has the file at path mapped (/proc/self/maps names it). */
static int mapped(const char *path)
{
    size_t n = 0;
    char *maps = tu_slurp("/proc/self/maps", &n);
    ck_assert_ptr_nonnull(maps);
    int found = strstr(maps, path) != NULL;
    free(maps);
    return found;
}

/* LINR's weights start on a 4 KiB boundary of the file (ALGN pads before LINR) and a load with
 * MF_LOAD_MAP maps them in place of a copy (a plain load copies), unmapped with the model; a
 * file whose weights are elsewhere
 * (no ALGN: an older writer) is read as before; both answer alike, and a bad weight in the
 * mapped part is still refused (and leaves no mapping behind). */
START_TEST(test_mapped_weights)
{
    char path[256], path2[256], err[256];
    mf_model_t *m = ref_model(1);
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "map", &n);
    uint64_t alen;
    size_t algn = section(b, n, "ALGN", &alen), linr = section(b, n, "LINR", NULL);
    ck_assert_uint_eq(algn + 16 + alen, linr);
    uint64_t nf;
    memcpy(&nf, b + linr + 16 + 36, 8);
    size_t wat = linr + 16 + 48 + (size_t)nf * 12; /* the first weight */
    ck_assert_uint_eq(wat % 4096, 0);
    mf_model_t *l = NULL;
    const int all = MF_LOAD_NETS | MF_LOAD_REFS;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_msg(!mapped(path), "mapped without MF_LOAD_MAP");
    ck_assert(!mf_linear_mapped(l->lin));
    same_answers(m, l);
    mf_model_free(l);
    ck_assert_msg(mf_model_load_ex(&l, path, all | MF_LOAD_MAP, err, sizeof err) == MF_OK, "%s",
                  err);
    ck_assert_msg(mapped(path), "the weights of %s are not mapped", path);
    ck_assert(mf_linear_mapped(l->lin));
    same_answers(m, l);
    mf_model_free(l);
    ck_assert(!mapped(path));

    /* without the padding: read, not mapped (unless the shift happens to keep them aligned) */
    unsigned char *c = malloc(n);
    ck_assert_ptr_nonnull(c);
    memcpy(c, b, n);
    size_t nc = n;
    cut_and_seal(c, &nc, 0, algn, 16 + (size_t)alen);
    write_file(tmp_path(path2, sizeof path2, "map2"), c, nc);
    ck_assert_msg(mf_model_load_ex(&l, path2, all | MF_LOAD_MAP, err, sizeof err) == MF_OK, "%s",
                  err);
    ck_assert_int_eq(mapped(path2), (wat - 16 - alen) % 4096 == 0);
    same_answers(m, l);
    mf_model_free(l);

    /* a NaN among the mapped weights: refused, nothing left mapped */
    memcpy(c, b, n);
    float nan = NAN;
    memcpy(c + wat + 4 * (size_t)m->nfam, &nan, 4); /* feature 1, class 0 */
    seal(c, n);
    write_file(path2, c, n);
    ck_assert_int_eq(mf_model_load_ex(&l, path2, all | MF_LOAD_MAP, err, sizeof err), MF_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "non-finite"));
    ck_assert(!mapped(path2));
    free(c);
    free(b);
    mf_model_free(m);
    unlink(path);
    unlink(path2);
}
END_TEST

/* Sections are read through a 1 MB window of the file, never whole (an array of a window or
 * more straight into place): a REFS section of several windows, with one reference longer
 * than a window, loads the very traces (or their API sets) and the REFS checksum of its bytes;
 * a length field past the first window that overruns the section, or misaligns the rest, is a
 * format error. */
START_TEST(test_refs_window)
{
    char path[256], err[256];
    mf_model_t *m = ref_model_n(400, 800, 0);
    mf_score_opts_t o; /* prototypes for novelty: the file gets NOVK, so a load can skip traces */
    mf_score_opts_from_model(&o, m);
    o.nov_protos = 2;
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    mf_trace_destroy(&m->refs[200]);
    fam_trace(&m->refs[200], m->ref_label[200], 77u, 400000); /* 1.6 MB */
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    size_t n;
    unsigned char *b = save_image(m, path, sizeof path, "window", &n);
    uint64_t len;
    size_t refs = section(b, n, "REFS", &len);
    ck_assert_uint_gt(len, 2u << 20); /* two windows and more */
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + refs + 16, (uInt)len);
    mf_model_t *l = NULL, *a = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_uint_eq(l->nrefs, m->nrefs);
    ck_assert_uint_eq(mf_model_refs_crc(l), crc);
    for (size_t i = 0; i < m->nrefs; i++) {
        ck_assert_int_eq(l->ref_label[i], m->ref_label[i]);
        ck_assert_uint_eq(l->refs[i].n, m->refs[i].n);
        ck_assert(memcmp(l->refs[i].ids, m->refs[i].ids, m->refs[i].n * 4) == 0);
    }
    ck_assert_msg(mf_model_load_ex(&a, path, MF_LOAD_NETS, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_uint_eq(mf_model_refs_crc(a), crc);
    ck_assert_ptr_nonnull(a->ref_api);
    int nw = mf_bits_words(mf_vocab_size(m->vocab));
    uint64_t *bits = calloc((size_t)nw, sizeof *bits);
    ck_assert_ptr_nonnull(bits);
    for (size_t i = 0; i < m->nrefs; i++) {
        memset(bits, 0, (size_t)nw * sizeof *bits);
        mf_bits_fill(bits, nw, m->refs[i].ids, m->refs[i].n);
        ck_assert(memcmp(a->ref_api + i * (size_t)nw, bits, (size_t)nw * sizeof *bits) == 0);
    }
    free(bits);
    mf_model_free(a);
    mf_model_free(l);

    /* reference 300's length (past the long one, so past the first windows) */
    size_t at = refs + 16 + 8;
    for (int i = 0; i < 300; i++) {
        uint64_t k;
        memcpy(&k, b + at + 4, 8);
        at += 12 + (size_t)k * 4;
    }
    const uint64_t bad[] = {(uint64_t)len, m->refs[300].n - 1, m->refs[300].n + 1};
    for (int k = 0; k < 3; k++) {
        unsigned char *c = malloc(n);
        ck_assert_ptr_nonnull(c);
        memcpy(c, b, n);
        memcpy(c + at + 4, &bad[k], 8);
        seal(c, n);
        ck_assert_msg(load_image(c, n, err, sizeof err) == MF_EFORMAT, "case %d", k);
        free(c);
    }
    free(b);
    mf_model_free(m);
    unlink(path);
}
END_TEST

/* Loaded without its reference traces (MF_LOAD_REFS off) a model with the novelty key index
 * keeps labels, API sets and the references' CRC: linear and nn answer as after a full load
 * (explanations included), modes that read traces are refused until mf_model_read_refs,
 * which refuses a file that is no longer the one loaded and then brings the traces of a
 * full load; a file without NOVK keeps the traces anyway. */
START_TEST(test_load_without_refs)
{
    char path[256], other[256], err[256];
    mf_model_t *m = ref_model(0);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    o.nov_protos = 2;
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    ck_assert_int_eq(mf_model_save(m, tmp_path(path, sizeof path, "norefs"), err, sizeof err),
                     MF_OK);
    mf_model_t *full = NULL, *l = NULL;
    ck_assert_int_eq(mf_model_load(&full, path, err, sizeof err), MF_OK);
    ck_assert_msg(mf_model_load_ex(&l, path, MF_LOAD_NETS, err, sizeof err) == MF_OK, "%s", err);
    ck_assert_str_eq(l->version, full->version);
    ck_assert_ptr_null(l->refs);
    ck_assert_ptr_nonnull(l->ref_api);
    ck_assert_int_eq(mf_model_has_refs(l), 0);
    ck_assert_int_eq(mf_model_has_refs(full), 1);
    ck_assert_uint_eq(l->nrefs, full->nrefs);
    ck_assert(memcmp(l->ref_label, full->ref_label, l->nrefs * sizeof *l->ref_label) == 0);
    ck_assert_uint_eq(mf_model_refs_crc(l), mf_model_refs_crc(full));
    ck_assert_int_eq(mf_score_pick_default(l), MF_MODE_LINEAR);
    ck_assert_ptr_null(mf_score_model_lacks(l, MF_MODE_KNN));
    ck_assert_int_eq(mf_score_needs_refs(l, MF_MODE_LINEAR), 0);
    ck_assert_int_eq(mf_score_needs_refs(l, MF_MODE_NN), 0);
    ck_assert_int_eq(mf_score_needs_refs(l, MF_MODE_KNN), 1);
    ck_assert_int_eq(mf_score_needs_refs(l, MF_MODE_COMBO), 1);
    ck_assert_int_eq(mf_score_needs_refs(l, -1), 1);
    ck_assert_int_eq(mf_score_needs_refs(full, MF_MODE_KNN), 0);

    mf_scorer_t *a = mf_scorer_new_mode(full, NULL, MF_MODE_LINEAR);
    mf_scorer_t *b = mf_scorer_new_mode(l, NULL, MF_MODE_LINEAR);
    ck_assert(a && b && b->from_nov);
    same_linear(a, b);
    mf_scorer_t *na = mf_scorer_new_mode(full, NULL, MF_MODE_NN);
    mf_scorer_t *nb = mf_scorer_new_mode(l, NULL, MF_MODE_NN);
    ck_assert(na && nb);
    same_mode_answers(full, na, nb, MF_MODE_NN);
    mf_scorer_free(na);
    mf_scorer_free(nb);
    ck_assert_ptr_null(mf_scorer_new_mode(l, NULL, MF_MODE_KNN)); /* traces first */
    ck_assert_ptr_null(mf_scorer_new(l));
    ck_assert_int_eq(mf_model_save(l, tmp_path(other, sizeof other, "norefs2"), err, sizeof err),
                     MF_EINVAL);
    ck_assert_msg(strstr(err, "mf_model_read_refs"), "%s", err);

    /* the file replaced meanwhile (another model): refused, nothing taken, linear still on */
    const double k0 = mf_model_param(m, "score.knn_k", NAN);
    ck_assert(isfinite(k0));
    ck_assert_int_eq(mf_model_set_param(m, "score.knn_k", k0 + 1), MF_OK);
    ck_assert_int_eq(mf_model_save(m, other, err, sizeof err), MF_OK);
    ck_assert_int_eq(rename(other, path), 0);
    ck_assert_int_eq(mf_model_read_refs(l, path, err, sizeof err), MF_ECHECKSUM);
    ck_assert_msg(strstr(err, "reload"), "%s", err);
    ck_assert(!l->refs && l->ref_api);
    same_linear(a, b);
    /* the file it was: the traces of a full load, every mode as on the full load */
    ck_assert_int_eq(mf_model_set_param(m, "score.knn_k", k0), MF_OK);
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);
    ck_assert_str_eq(m->version, l->version);
    ck_assert_msg(mf_model_read_refs(l, path, err, sizeof err) == MF_OK, "%s", err);
    ck_assert(l->refs && !l->ref_api && mf_model_has_refs(l));
    for (size_t i = 0; i < l->nrefs; i++) {
        ck_assert_uint_eq(l->refs[i].n, full->refs[i].n);
        ck_assert(memcmp(l->refs[i].ids, full->refs[i].ids, l->refs[i].n * 4) == 0);
    }
    ck_assert_int_eq(mf_score_needs_refs(l, MF_MODE_KNN), 0);
    ck_assert_int_eq(mf_model_read_refs(l, "/nonexistent", err, sizeof err), MF_OK); /* done */
    mf_scorer_t *ka = mf_scorer_new_mode(full, NULL, MF_MODE_KNN);
    mf_scorer_t *kb = mf_scorer_new_mode(l, NULL, MF_MODE_KNN);
    ck_assert(ka && kb);
    same_mode_answers(full, ka, kb, MF_MODE_KNN);
    mf_scorer_free(ka);
    mf_scorer_free(kb);
    same_linear(a, b); /* the scorer built before the traces came is unchanged */
    ck_assert_int_eq(mf_model_save(l, other, err, sizeof err), MF_OK);
    ck_assert_str_eq(l->version, m->version); /* the same bytes again */
    mf_scorer_free(a);
    mf_scorer_free(b);
    mf_model_free(l);

    /* a file without NOVK: a light load keeps the traces (nothing could serve linear without) */
    size_t n;
    unsigned char *img = (unsigned char *)tu_slurp(path, &n);
    ck_assert_ptr_nonnull(img);
    uint64_t klen;
    size_t koff = section(img, n, "NOVK", &klen);
    cut_and_seal(img, &n, 0, koff, 16 + (size_t)klen);
    write_file(other, img, n);
    ck_assert_msg(mf_model_load_ex(&l, other, 0, err, sizeof err) == MF_OK, "%s", err);
    ck_assert(l->refs && !l->ref_api && mf_model_has_refs(l));
    ck_assert_int_eq(mf_score_needs_refs(l, MF_MODE_KNN), 0);
    mf_model_free(l);
    free(img);

    /* the traces a light load drops are checked as in a full load: an id outside the
     * vocabulary, or a length past the section (checksum redone), is refused */
    img = (unsigned char *)tu_slurp(path, &n);
    ck_assert_ptr_nonnull(img);
    const size_t refs = section(img, n, "REFS", NULL) + 16 + 8 + 4; /* the first's length */
    for (int k = 0; k < 2; k++) {
        unsigned char *c = malloc(n);
        ck_assert_ptr_nonnull(c);
        memcpy(c, img, n);
        if (k == 0)
            memset(c + refs + 8, 0x7f, 4); /* its first id */
        else
            memset(c + refs + 4, 0x7f, 4); /* its length's high half */
        seal(c, n);
        write_file(other, c, n);
        ck_assert_int_eq(mf_model_load_ex(&l, other, 0, err, sizeof err), MF_EFORMAT);
        ck_assert_ptr_null(l);
        ck_assert_msg(strstr(err, k ? "exceeds" : "outside the vocabulary"), "%s", err);
        free(c);
    }
    free(img);
    unlink(other);
    unlink(path);
    mf_model_free(full);
    mf_model_free(m);
}
END_TEST

Suite *suite_model(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_file_id);
    tcase_add_test(tc, test_load_without_nets);
    tcase_add_test(tc, test_opts_bytes);
    tcase_add_test(tc, test_opts_without_gen_epoch);
    tcase_add_test(tc, test_file_without_snapshots);
    tcase_add_test(tc, test_hostile_snapshots);
    tcase_add_test(tc, test_truncation_and_flips);
    tcase_add_test(tc, test_load_oom);
    tcase_add_test(tc, test_params_and_families);
    tcase_add_test(tc, test_load_fits_nothing);
    tcase_add_test(tc, test_linear_section);
    tcase_add_test(tc, test_held_out_classifier);
    tcase_add_test(tc, test_load_checks_before_reading);
    tcase_add_test(tc, test_old_file_loads);
    tcase_add_test(tc, test_scorer_for_one_mode);
    tcase_add_test(tc, test_novelty_prototypes);
    tcase_add_test(tc, test_prototype_index);
    tcase_add_test(tc, test_novelty_section);
    tcase_add_test(tc, test_load_without_refs);
    tcase_add_test(tc, test_mapped_weights);
    tcase_add_test(tc, test_refs_window);
    tcase_add_test(tc, test_family_pack);
    suite_add_tcase(s, tc);
    return s;
}
