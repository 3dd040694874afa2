/* vocab.c - API-name vocabulary: an id-indexed name table plus an open-addressing hash of
 * lower-cased names. */
#include "vocab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mf.h"

struct mf_vocab {
    char **names;   /* (size) lower-cased name per id, NULL for unused ids */
    int size, cap;  /* one past the largest id; allocated length of names */
    int count;      /* names in use */
    int32_t *slots; /* (nslots) hash table of ids, -1 = empty */
    size_t nslots;  /* power of two, kept at least twice count */
};

static uint32_t hash_lower(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* `stored` is lower-case; `s` may be any case. */
static int same_name(const char *stored, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        if ((unsigned char)stored[i] != c)
            return 0;
    }
    return stored[n] == '\0';
}

mf_vocab_t *mf_vocab_new(void)
{
    mf_vocab_t *v = mf__calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->nslots = 64;
    v->slots = mf__malloc(v->nslots * sizeof *v->slots);
    if (!v->slots) {
        mf_vocab_free(v);
        return NULL;
    }
    memset(v->slots, 0xff, v->nslots * sizeof *v->slots);
    return v;
}

void mf_vocab_free(mf_vocab_t *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->size; i++)
        mf__free(v->names[i]);
    mf__free(v->names);
    mf__free(v->slots);
    mf__free(v);
}

int mf_vocab_find(const mf_vocab_t *v, const char *name, size_t len)
{
    if (!v || len == 0 || len > MF_MAX_API_LEN)
        return MF_UNK;
    size_t mask = v->nslots - 1;
    for (size_t i = hash_lower(name, len) & mask;; i = (i + 1) & mask) {
        int32_t id = v->slots[i];
        if (id < 0)
            return MF_UNK;
        if (same_name(v->names[id], name, len))
            return id;
    }
}

static void slot_insert(int32_t *slots, size_t nslots, const char *name, int id)
{
    size_t mask = nslots - 1;
    size_t i = hash_lower(name, strlen(name)) & mask;
    while (slots[i] >= 0)
        i = (i + 1) & mask;
    slots[i] = id;
}

static int rehash(mf_vocab_t *v, size_t nslots)
{
    int32_t *s = mf__malloc(nslots * sizeof *s);
    if (!s)
        return MF_ENOMEM;
    memset(s, 0xff, nslots * sizeof *s);
    for (int id = 0; id < v->size; id++)
        if (v->names[id])
            slot_insert(s, nslots, v->names[id], id);
    mf__free(v->slots);
    v->slots = s;
    v->nslots = nslots;
    return MF_OK;
}

int mf_vocab_put(mf_vocab_t *v, const char *name, size_t len, int id)
{
    if (!v || !name || len == 0 || len > MF_MAX_API_LEN || memchr(name, '\0', len))
        return MF_EINVAL;
    if (id < 0 || id >= MF_MAX_VOCAB)
        return MF_ELIMIT;
    if ((id < v->size && v->names[id]) || mf_vocab_find(v, name, len) != MF_UNK)
        return MF_EINVAL;
    /* Make room first so a failure leaves the vocabulary unchanged. */
    if ((size_t)(v->count + 1) * 2 > v->nslots && rehash(v, v->nslots * 2) != MF_OK)
        return MF_ENOMEM;
    if (id >= v->cap) {
        size_t cap = (size_t)v->cap;
        if (mf__grow((void **)&v->names, &cap, (size_t)id + 1, sizeof *v->names) != MF_OK)
            return MF_ENOMEM;
        memset(v->names + v->cap, 0, (cap - (size_t)v->cap) * sizeof *v->names);
        v->cap = (int)cap;
    }
    char *copy = mf__strndup(name, len);
    if (!copy)
        return MF_ENOMEM;
    mf__lower(copy, len);
    v->names[id] = copy;
    if (id >= v->size)
        v->size = id + 1;
    v->count++;
    slot_insert(v->slots, v->nslots, copy, id);
    return MF_OK;
}

int mf_vocab_add(mf_vocab_t *v, const char *name, size_t len)
{
    if (!v || !name || len == 0 || len > MF_MAX_API_LEN)
        return len > MF_MAX_API_LEN ? MF_ELIMIT : MF_EINVAL;
    int id = mf_vocab_find(v, name, len);
    if (id != MF_UNK)
        return id;
    if (v->size >= MF_MAX_VOCAB)
        return MF_ELIMIT;
    id = v->size;
    int rc = mf_vocab_put(v, name, len, id);
    return rc == MF_OK ? id : rc;
}

const char *mf_vocab_name(const mf_vocab_t *v, int id)
{
    if (!v || id < 0 || id >= v->size)
        return NULL;
    return v->names[id];
}

int mf_vocab_size(const mf_vocab_t *v)
{
    return v ? v->size : 0;
}

int mf_vocab_count(const mf_vocab_t *v)
{
    return v ? v->count : 0;
}

mf_vocab_t *mf_vocab_clone(const mf_vocab_t *v)
{
    mf_vocab_t *c = mf_vocab_new();
    if (!c || !v)
        return c;
    for (int id = 0; id < v->size; id++) {
        if (v->names[id] && mf_vocab_put(c, v->names[id], strlen(v->names[id]), id) != MF_OK) {
            mf_vocab_free(c);
            return NULL;
        }
    }
    return c;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *path, long line,
                    const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, path, line, what);
}

int mf_vocab_load(mf_vocab_t **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "%s:%ld: %s", path, 0, strerror(errno));
        return MF_EIO;
    }
    mf_vocab_t *v = mf_vocab_new();
    int rc = v ? MF_OK : MF_ENOMEM;
    char line[MF_MAX_API_LEN + 32];
    long lineno = 0;
    while (rc == MF_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            set_err(err, errlen, "%s:%ld: %s", path, lineno, "line too long");
            rc = MF_EFORMAT;
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        if (n == 0)
            continue;
        char *eq = strrchr(line, '=');
        char *end = NULL;
        long id = eq ? strtol(eq + 1, &end, 10) : -1;
        if (!eq || eq == line || end == eq + 1 || *end || id < 0 || id >= MF_MAX_VOCAB) {
            set_err(err, errlen, "%s:%ld: %s", path, lineno, "expected name=id");
            rc = MF_EFORMAT;
            break;
        }
        rc = mf_vocab_put(v, line, (size_t)(eq - line), (int)id);
        if (rc == MF_EINVAL || rc == MF_ELIMIT) {
            set_err(err, errlen, "%s:%ld: %s", path, lineno, "duplicate or invalid name or id");
            rc = MF_EFORMAT;
        }
    }
    if (rc == MF_OK && ferror(f)) {
        set_err(err, errlen, "%s:%ld: %s", path, lineno, "read error");
        rc = MF_EIO;
    }
    fclose(f);
    if (rc != MF_OK) {
        mf_vocab_free(v);
        return rc;
    }
    *out = v;
    return MF_OK;
}
