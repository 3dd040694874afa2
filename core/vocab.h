/* vocab.h - API names <-> small integer ids.
 *
 * Names are stored lower-cased and looked up case-insensitively. Ids are dense from 0 when
 * names are added one by one; a file such as Mal-API's ApiIndex.txt may leave gaps (unused ids
 * have no name). The vocabulary never prints and never aborts.
 */
#ifndef MF_VOCAB_H
#define MF_VOCAB_H

#include <stddef.h>

/* Id given to a name that is not in a vocabulary that may not grow. */
#define MF_UNK (-1)

typedef struct mf_vocab mf_vocab_t;

/* An empty vocabulary; NULL on allocation failure. Free with mf_vocab_free(). */
mf_vocab_t *mf_vocab_new(void);
void mf_vocab_free(mf_vocab_t *v); /* NULL is a no-op */

/* A deep copy; NULL on allocation failure. */
mf_vocab_t *mf_vocab_clone(const mf_vocab_t *v);

/* Load `name=id` lines (ApiIndex.txt format; blank lines skipped) into a new vocabulary.
 * Errors: MF_EIO (cannot open/read), MF_EFORMAT (bad line, duplicate name or id, id out of
 * range), MF_ENOMEM. `err` (may be NULL) receives "line N: ..." detail. */
int mf_vocab_load(mf_vocab_t **out, const char *path, char *err, size_t errlen);

/* The id of `name` (len bytes, any case), adding it with the next free id if new.
 * Returns the id (>= 0), MF_ELIMIT when MF_MAX_VOCAB ids are in use or the name is longer
 * than MF_MAX_API_LEN or empty, MF_ENOMEM. */
int mf_vocab_add(mf_vocab_t *v, const char *name, size_t len);

/* Put `name` at a given id (file loading). MF_EINVAL if the name or the id is taken. */
int mf_vocab_put(mf_vocab_t *v, const char *name, size_t len, int id);

/* The id of `name` (any case) or MF_UNK. */
int mf_vocab_find(const mf_vocab_t *v, const char *name, size_t len);

/* Lower-case name of `id`, or NULL when the id is unused or out of range. Borrowed: valid
 * while the vocabulary lives and is not modified. */
const char *mf_vocab_name(const mf_vocab_t *v, int id);

/* One past the largest id in use (the size of an id-indexed table). */
int mf_vocab_size(const mf_vocab_t *v);

/* Number of names in use (<= mf_vocab_size when ids have gaps). */
int mf_vocab_count(const mf_vocab_t *v);

#endif
