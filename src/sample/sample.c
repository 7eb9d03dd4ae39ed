/* sample.c - the sampler chain: repetition penalty, top-k, top-p, min-p, temperature, then a draw from the softmax.
**
** The order and each filter's rule are those of llama.cpp's default chain (common/sampling.cpp, src/llama-sampler.cpp
** of the release the goldens came from): top-p and min-p look at the probabilities *before* temperature; the penalty
** divides positive logits and multiplies negative ones. temp <= 0 is greedy: the argmax of the penalized logits
** (llama.cpp's filters never remove the argmax, so the chain reduces to that). The random numbers are our own
** (xoshiro256** seeded by splitmix64), so draws are deterministic per seed on every platform but differ from
** llama.cpp's std::mt19937. Everything is allocated in lc_sampler_new; a sample call never allocates.
*/
#include "../base/base.h"

#include <math.h>
#include <time.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct lc_sampler {
    lc_sampler_params p;
    int32_t n_vocab;
    cand *c;          /* [n_vocab] candidates of the current call */
    int32_t *count;   /* [n_vocab] occurrences of each token in the penalty window */
    int32_t *ring;    /* [repeat_last_n] the window, oldest first from ring_head (unused when repeat_last_n < 0) */
    int32_t ring_n, ring_head;
    uint64_t s[4];    /* xoshiro256** state */
};

/* ---- random numbers: xoshiro256** (Blackman & Vigna), state filled by splitmix64 ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static void rng_seed(lc_sampler *sm) {
    uint64_t x = sm->p.seed;
    if (x == LC_SEED_RANDOM) { /* as llama.cpp's default seed: different on every run */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)sm;
    }
    for (int i = 0; i < 4; i++) sm->s[i] = splitmix64(&x);
}

lc_sampler_params lc_sampler_default_params(void) {
    /* llama.cpp's common_params_sampling defaults */
    return (lc_sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                               .repeat_last_n = 64, .seed = LC_SEED_RANDOM};
}

int lc_sampler_new(const lc_sampler_params *p, int32_t n_vocab, lc_sampler **out) {
    *out = NULL;
    if (!p) return LC_ERR(LC_E_INVALID, "lc_sampler_new: params is NULL");
    if (n_vocab <= 0) return LC_ERR(LC_E_INVALID, "lc_sampler_new: n_vocab %d must be positive", n_vocab);
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p))
        return LC_ERR(LC_E_INVALID, "lc_sampler_new: temperature, top-p and min-p must be numbers (got %g, %g, %g)",
                      p->temp, p->top_p, p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return LC_ERR(LC_E_INVALID, "lc_sampler_new: repeat penalty %g must be a positive finite number (1 = off)",
                      p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return LC_ERR(LC_E_INVALID, "lc_sampler_new: repeat_last_n %d must be >= -1 (-1: every token seen)",
                      p->repeat_last_n);
    lc_sampler *s = lc__calloc(1, sizeof *s);
    if (!s) return LC_ERR(LC_E_NOMEM, "lc_sampler_new: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->c = lc__malloc((size_t)n_vocab * sizeof *s->c);
    s->count = lc__calloc((size_t)n_vocab, sizeof *s->count);
    s->ring = lc__malloc((size_t)LC_MAX(p->repeat_last_n, 1) * sizeof *s->ring);
    if (!s->c || !s->count || !s->ring) {
        lc_sampler_free(s);
        return LC_ERR(LC_E_NOMEM, "lc_sampler_new: out of memory for a vocabulary of %d tokens", n_vocab);
    }
    rng_seed(s);
    *out = s;
    return LC_OK;
}

void lc_sampler_free(lc_sampler *s) {
    if (!s) return;
    lc__free(s->c);
    lc__free(s->count);
    lc__free(s->ring);
    lc__free(s);
}

void lc_sampler_reset(lc_sampler *s) {
    memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
    s->ring_n = s->ring_head = 0;
    rng_seed(s);
}

void lc_sampler_accept(lc_sampler *s, int32_t id) {
    if (id < 0 || id >= s->n_vocab || s->p.repeat_last_n == 0) return;
    if (s->p.repeat_last_n < 0) { /* every token seen */
        if (s->count[id] < INT32_MAX) s->count[id]++;
        return;
    }
    int32_t n = s->p.repeat_last_n;
    if (s->ring_n == n) { /* window full: the oldest token leaves */
        s->count[s->ring[s->ring_head]]--;
        s->ring[s->ring_head] = id;
        s->ring_head = (s->ring_head + 1) % n;
    } else {
        s->ring[(s->ring_head + s->ring_n++) % n] = id;
    }
    s->count[id]++;
}

/* ---- ordering: higher logit first; equal logits by lower id, so results never depend on a sort's whims ---- */
static bool cand_before(const cand *a, const cand *b) { return a->logit > b->logit || (a->logit == b->logit && a->id < b->id); }

/* Sift-down in a heap whose root is the candidate that sorts LAST (the worst kept so far). */
static void worst_heap_down(cand *h, size_t n, size_t i) {
    cand x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_before(&h[c], &h[c + 1])) c++;
        if (!cand_before(&x, &h[c])) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Moves the k best of c[0..n) to c[0..k), sorted best first; c[k..n) keeps the rest in some order. O(n log k), in
** place (no qsort: glibc's may allocate). */
static void partial_sort(cand *c, size_t n, size_t k) {
    if (k > n) k = n;
    for (size_t i = k / 2; i-- > 0;) worst_heap_down(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            cand t = c[0];
            c[0] = c[i];
            c[i] = t;
            worst_heap_down(c, k, 0);
        }
    }
    for (size_t m = k; m > 1; m--) { /* heap sort: the worst goes to the end */
        cand t = c[0];
        c[0] = c[m - 1];
        c[m - 1] = t;
        worst_heap_down(c, m - 1, 0);
    }
}

/* Keeps the smallest prefix of the candidates (sorted best first on return) whose probability mass, at
** temperature 1, reaches p. Sorts only as far as needed: the best 256 first, everything if they do not suffice. */
static size_t top_p_filter(cand *c, size_t n, bool *sorted, float p) {
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++) max = LC_MAX(max, c[i].logit);
    if (max == -INFINITY) return n; /* nothing to weigh */
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += exp((double)c[i].logit - max);
    size_t k = *sorted ? n : LC_MIN(n, (size_t)256);
    if (!*sorted) partial_sort(c, n, k);
    double cum = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == k) { /* the partial sort ran out: sort the rest too */
            partial_sort(c + k, n - k, n - k);
            k = n;
        }
        cum += exp((double)c[i].logit - max) / sum;
        if (cum >= p) {
            *sorted = true;
            return i + 1;
        }
    }
    *sorted = k == n;
    return n;
}

/* Keeps the candidates whose probability is at least p times the largest: logit >= max + log(p). Order kept. */
static size_t min_p_filter(cand *c, size_t n, float p) {
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++) max = LC_MAX(max, c[i].logit);
    const float min_logit = max + logf(p);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit >= min_logit) c[m++] = c[i];
    return m ? m : n;
}

int32_t lc_sampler_sample(lc_sampler *s, const float *logits) {
    const lc_sampler_params *p = &s->p;
    cand *c = s->c;
    size_t n = (size_t)s->n_vocab;
    bool sorted = false;
    bool penalize = p->repeat_penalty != 1.0f && p->repeat_last_n != 0;
    for (size_t i = 0; i < n; i++) {
        float l = logits[i];
        if (isnan(l)) l = -INFINITY; /* a NaN must not win or poison the sums */
        if (penalize && s->count[i] > 0) l = l <= 0 ? l * p->repeat_penalty : l / p->repeat_penalty;
        c[i] = (cand){.logit = l, .id = (int32_t)i};
    }

    if (p->temp <= 0.0f) { /* greedy: the filters below never remove the best candidate */
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        partial_sort(c, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
        sorted = true;
    }
    if (p->top_p < 1.0f) n = top_p_filter(c, n, &sorted, p->top_p);
    if (p->min_p > 0.0f) n = min_p_filter(c, n, p->min_p);

    /* temperature, then a draw from the softmax: the first candidate where the running mass passes u * total */
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++) max = LC_MAX(max, c[i].logit);
    if (max == -INFINITY) return c[0].id; /* every candidate impossible: nothing better to do */
    const double inv_t = 1.0 / p->temp;
    double total = 0;
    for (size_t i = 0; i < n; i++) total += exp(((double)c[i].logit - max) * inv_t);
    const double target = rng_uniform(s->s) * total;
    double run = 0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        double w = exp(((double)c[i].logit - max) * inv_t);
        if (w > 0) last = i;
        run += w;
        if (run > target) return c[i].id;
    }
    return c[last].id; /* rounding left the target unreached: the last candidate with any mass */
}
