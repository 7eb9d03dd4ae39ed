/* alloc.c - every allocation of the library goes through here, so tests can inject out-of-memory. */
#include "base.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_long fail_after; /* 0: off; n: the n-th allocation from the call of lc__alloc_fail_after fails */

void lc__alloc_fail_after(long n) { atomic_store(&fail_after, n); }

static bool should_fail(void) {
    long n = atomic_load(&fail_after);
    if (LC_LIKELY(n == 0)) return false;
    return atomic_fetch_sub(&fail_after, 1) == 1;
}

void *lc__malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }
void *lc__calloc(size_t n, size_t size) { return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1); }
void *lc__realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }
void lc__free(void *p) { free(p); }

char *lc__strndup(const char *s, size_t n) {
    char *d = lc__malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *lc__strdup(const char *s) { return lc__strndup(s, strlen(s)); }

void *lc__aligned_alloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) & ~(size_t)63 : 64)) return NULL;
    return p;
}

void lc__aligned_free(void *p) { free(p); }
