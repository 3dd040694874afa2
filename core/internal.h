/* internal.h - shared between core/ files, not part of the public API. */
#ifndef MF_INTERNAL_H
#define MF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Allocation goes through these so tests can make the Nth allocation fail. */
void *mf__malloc(size_t n);
void *mf__calloc(size_t n, size_t size);
void *mf__realloc(void *p, size_t n);
void mf__free(void *p);
char *mf__strndup(const char *s, size_t n);

/* Test hook: the allocation numbered `n` from now on (1 = the next one) fails, and every
 * later one too; 0 turns failures off. Returns how many allocations were made since the last
 * call, so an OOM loop can tell when a run made no allocation at all. */
size_t mf__alloc_fail_after(size_t n);

/* Grow *p (element size `size`) so it holds at least `need` elements; doubles the capacity.
 * Returns MF_OK or MF_ENOMEM (then *p and *cap are unchanged). */
int mf__grow(void **p, size_t *cap, size_t need, size_t size);

/* qsort comparator of uint64_t keys (n-gram key sets; defined in simil.c). */
int mf__cmp_u64(const void *a, const void *b);

/* The seed of family `name` in a run seeded `seed`: the seed mixed with the name (FNV-1a),
 * so each family's weights and pattern depend on neither the order nor the set of families
 * trained with it. Training's weight init and pattern sampling, and pattern regeneration,
 * all start from it (defined in train.c). Changing it changes every trained model's replay. */
uint64_t mf__family_seed(uint64_t seed, const char *name);

/* Lower-case ASCII in place, the way API names are normalised. */
void mf__lower(char *s, size_t n);

#endif
