/* test_sample.c - the sampler chain (lc_sampler_*).
**
** Expectations are computed here from the rules of llama.cpp's default chain (common/sampling.cpp and
** src/llama-sampler.cpp of the pinned release): penalties -> top-k -> top-p -> min-p -> temperature -> draw, top-p and
** min-p on the untempered distribution, the penalty dividing positive and multiplying non-positive logits. Each
** filter's kept set is checked exactly on crafted logits (by drawing often enough that every kept token shows up and
** no other may); the draw is checked against the softmax with a binomial tolerance.
*/
#include "harness.h"
#include "llamac.h"

#include "../src/base/base.h"

static lc_sampler_params params(float temp, int top_k, float top_p, float min_p, uint64_t seed) {
    lc_sampler_params p = lc_sampler_default_params();
    p.temp = temp, p.top_k = top_k, p.top_p = top_p, p.min_p = min_p, p.seed = seed;
    p.repeat_penalty = 1.0f;
    return p;
}

/* Draws n times and counts how often each id comes out (counts has n_vocab entries). Returns false on an id out
** of range. */
static bool draw(lc_sampler *s, const float *logits, int n_vocab, int n, long *counts) {
    memset(counts, 0, (size_t)n_vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int32_t id = lc_sampler_sample(s, logits);
        if (id < 0 || id >= n_vocab) return false;
        counts[id]++;
    }
    return true;
}

/* The set of ids drawn, as a bit mask. */
static unsigned kept_mask(const lc_sampler_params *p, const float *logits, int n_vocab) {
    lc_sampler *s = NULL;
    if (lc_sampler_new(p, n_vocab, &s)) return 0xFFFFFFFFu;
    long counts[32];
    unsigned m = 0;
    if (draw(s, logits, n_vocab, 20000, counts))
        for (int i = 0; i < n_vocab; i++) m |= counts[i] ? 1u << i : 0;
    lc_sampler_free(s);
    return m;
}

TEST(greedy_and_penalty) {
    lc_sampler *s = NULL;
    lc_sampler_params p = params(0.0f, 0, 1.0f, 0.0f, 1);
    float logits[5] = {2.0f, 1.9f, -1.0f, -1.05f, 2.0f};
    CHECK_OK(lc_sampler_new(&p, 5, &s));
    CHECK_EQ_INT(lc_sampler_sample(s, logits), 0); /* ties: the lower id */
    lc_sampler_free(s);
    /* penalty 1.1 on token 0 and 4: 2.0 / 1.1 = 1.818 < 1.9, so 1 wins */
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = 64;
    CHECK_OK(lc_sampler_new(&p, 5, &s));
    lc_sampler_accept(s, 0);
    lc_sampler_accept(s, 4);
    CHECK_EQ_INT(lc_sampler_sample(s, logits), 1);
    lc_sampler_free(s);
    /* negative logits are multiplied: -1.0 * 1.1 = -1.1 < -1.05, so among {2, 3} the penalized one loses */
    float neg[2] = {-1.0f, -1.05f};
    CHECK_OK(lc_sampler_new(&p, 2, &s));
    CHECK_EQ_INT(lc_sampler_sample(s, neg), 0);
    lc_sampler_accept(s, 0);
    CHECK_EQ_INT(lc_sampler_sample(s, neg), 1);
    /* the penalty applies once however often the token was seen (llama.cpp: repeat penalty ignores the count) */
    for (int i = 0; i < 10; i++) lc_sampler_accept(s, 0);
    float neg2[2] = {-1.0f, -1.2f};
    CHECK_EQ_INT(lc_sampler_sample(s, neg2), 0); /* -1.1 > -1.2 */
    lc_sampler_reset(s);
    CHECK_EQ_INT(lc_sampler_sample(s, neg), 0);
    lc_sampler_free(s);
    /* the window: after repeat_last_n newer tokens, token 0 is no longer penalized */
    p.repeat_last_n = 3;
    CHECK_OK(lc_sampler_new(&p, 5, &s));
    lc_sampler_accept(s, 0);
    lc_sampler_accept(s, 2);
    lc_sampler_accept(s, 2);
    CHECK_EQ_INT(lc_sampler_sample(s, logits), 4); /* 0 penalized, 4 not: 4 wins over 1 */
    lc_sampler_accept(s, 3);
    float l2[5] = {2.0f, 1.9f, -1.0f, -1.05f, 0.0f};
    CHECK_EQ_INT(lc_sampler_sample(s, l2), 0); /* 0 left the window of 3 */
    lc_sampler_free(s);
    /* -1: every token seen */
    p.repeat_last_n = -1;
    CHECK_OK(lc_sampler_new(&p, 5, &s));
    lc_sampler_accept(s, 0);
    for (int i = 0; i < 1000; i++) lc_sampler_accept(s, 2);
    CHECK_EQ_INT(lc_sampler_sample(s, l2), 1);
    lc_sampler_accept(s, -5); /* ignored */
    lc_sampler_accept(s, 99);
    lc_sampler_free(s);
    /* 0: off */
    p.repeat_last_n = 0;
    CHECK_OK(lc_sampler_new(&p, 5, &s));
    lc_sampler_accept(s, 0);
    CHECK_EQ_INT(lc_sampler_sample(s, l2), 0);
    lc_sampler_free(s);
}

/* Probabilities 0.4 0.3 0.2 0.1 0.0... as logits (log p); ids 4.. are far below. */
static void four_probs(float *l, int n) {
    const double p[4] = {0.4, 0.3, 0.2, 0.1};
    for (int i = 0; i < n; i++) l[i] = i < 4 ? (float)log(p[i]) : -30.0f;
}

TEST(top_k_kept_set) {
    float l[10] = {0.1f, 0.5f, 0.3f, 0.45f, 0.0f, -0.2f, 0.2f, 0.4f, -0.1f, 0.35f};
    lc_sampler_params p = params(1.0f, 3, 1.0f, 0.0f, 7);
    CHECK_EQ_INT(kept_mask(&p, l, 10), (1u << 1) | (1u << 3) | (1u << 7));
    p.top_k = 1;
    CHECK_EQ_INT(kept_mask(&p, l, 10), 1u << 1);
    p.top_k = 0; /* off */
    CHECK_EQ_INT(kept_mask(&p, l, 10), 0x3FFu);
    p.top_k = 50; /* more than the vocabulary: everything */
    CHECK_EQ_INT(kept_mask(&p, l, 10), 0x3FFu);
}

TEST(top_p_kept_set) {
    float l[8];
    four_probs(l, 8);
    lc_sampler_params p = params(1.0f, 0, 0.65f, 0.0f, 3);
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x3u); /* 0.4, 0.7 >= 0.65 */
    p.top_p = 0.75f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x7u); /* 0.4, 0.7, 0.9 */
    p.top_p = 0.3f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x1u);
    p.top_p = 0.0f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x1u); /* the best always stays */
    /* before temperature: a flat temperature does not change the set */
    p.top_p = 0.65f;
    p.temp = 5.0f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x3u);
    /* after top-k, on the renormalised top 3: 0.444, 0.778 >= 0.72 keeps two (without top-k it would keep three) */
    p.temp = 1.0f;
    p.top_p = 0.72f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x7u);
    p.top_k = 3;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x3u);
}

/* Many tokens (more than the 256 the top-p filter sorts first), mass spread thin so it needs more. */
TEST(top_p_large_vocab) {
    enum { N = 3000 };
    static float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)((i * 7919) % N) * 1e-4f; /* a permutation of 0 .. 0.2999 */
    /* keep the top m: mass of the best m of exp(x) for x = (N-1)e-4, (N-2)e-4, ... computed here in double */
    double total = 0, cum = 0;
    for (int j = 0; j < N; j++) total += exp(j * 1e-4);
    int m = 0;
    while (cum < 0.5 * total) cum += exp((N - 1 - m++) * 1e-4);
    lc_sampler_params p = params(1.0f, 0, 0.5f, 0.0f, 11);
    lc_sampler *s = NULL;
    CHECK_OK(lc_sampler_new(&p, N, &s));
    float threshold = (float)(N - m) * 1e-4f; /* the kept ones are those with l >= (N - m) * 1e-4 */
    bool ok = true;
    for (int i = 0; i < 20000 && ok; i++) ok = l[lc_sampler_sample(s, l)] >= threshold - 1e-7f;
    lc_sampler_free(s);
    CHECK(m > 1000); /* the case exercises the full sort */
    CHECK(ok);
}

TEST(min_p_kept_set) {
    float l[8];
    four_probs(l, 8);
    lc_sampler_params p = params(1.0f, 0, 1.0f, 0.3f, 5);
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x7u); /* p >= 0.3 * 0.4 = 0.12 */
    p.min_p = 0.6f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x3u); /* p >= 0.24 */
    p.min_p = 1.0f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x1u);
    p.temp = 4.0f; /* before temperature */
    p.min_p = 0.6f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0x3u);
    p.min_p = 0.0f; /* off: the -30 logits are possible but rare; with temp 4 they show up */
    p.temp = 20.0f;
    CHECK_EQ_INT(kept_mask(&p, l, 8), 0xFFu);
}

/* Frequencies of many draws against softmax(l / T) over the kept set, within 5 binomial sigmas. */
static void check_distribution(const lc_sampler_params *p, const float *l, int n, unsigned kept, int n_draws,
                               char *err, size_t err_cap) {
    err[0] = 0;
    lc_sampler *s = NULL;
    if (lc_sampler_new(p, n, &s)) { snprintf(err, err_cap, "new: %s", lc_last_error()); return; }
    long counts[32];
    bool ok = draw(s, l, n, n_draws, counts);
    lc_sampler_free(s);
    if (!ok) { snprintf(err, err_cap, "id out of range"); return; }
    double z = 0, mx = -1e30;
    for (int i = 0; i < n; i++) if (kept >> i & 1) mx = fmax(mx, l[i]);
    for (int i = 0; i < n; i++) if (kept >> i & 1) z += exp((l[i] - mx) / p->temp);
    for (int i = 0; i < n; i++) {
        double q = kept >> i & 1 ? exp((l[i] - mx) / p->temp) / z : 0;
        double f = (double)counts[i] / n_draws, sigma = sqrt(q * (1 - q) / n_draws);
        if (fabs(f - q) > 5 * sigma + 1e-9) {
            snprintf(err, err_cap, "token %d: frequency %.5f, softmax %.5f (5 sigma = %.5f)", i, f, q, 5 * sigma);
            return;
        }
    }
}

TEST(distribution_matches_softmax) {
    int n_draws = getenv("LLAMAC_QUICK") ? 40000 : 200000;
    float l[6] = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, -1.5f};
    char err[256];
    lc_sampler_params p = params(1.0f, 0, 1.0f, 0.0f, 42);
    check_distribution(&p, l, 6, 0x3F, n_draws, err, sizeof err);
    CHECKF(!err[0], "T=1: %s", err);
    p.temp = 0.7f;
    check_distribution(&p, l, 6, 0x3F, n_draws, err, sizeof err);
    CHECKF(!err[0], "T=0.7: %s", err);
    p.temp = 2.5f;
    check_distribution(&p, l, 6, 0x3F, n_draws, err, sizeof err);
    CHECKF(!err[0], "T=2.5: %s", err);
    /* top-k 3 then temperature 0.8: renormalised over ids 3, 0, 1 */
    p.temp = 0.8f;
    p.top_k = 3;
    check_distribution(&p, l, 6, (1u << 3) | 1u | 2u, n_draws, err, sizeof err);
    CHECKF(!err[0], "top-k 3, T=0.8: %s", err);
    /* llama.cpp's defaults (top-k 40, top-p 0.95, min-p 0.05, T 0.8): at T = 1 the probabilities of ids 3 0 1 4 2 5
    ** are 0.538 0.198 0.120 0.073 0.054 0.016; top-p keeps the first five (cumulative 0.983 >= 0.95), min-p
    ** (>= 0.05 * 0.538) all of those; the draw is then softmax(l / 0.8) over them. Computed below in double. */
    p = lc_sampler_default_params();
    p.seed = 9;
    double z = 0;
    for (int i = 0; i < 6; i++) z += exp(l[i]);
    double q[6], cum = 0;
    for (int i = 0; i < 6; i++) q[i] = exp(l[i]) / z;
    int order[6] = {3, 0, 1, 4, 2, 5};
    unsigned kept = 0;
    for (int i = 0; i < 6 && cum < 0.95; i++) cum += q[order[i]], kept |= 1u << order[i];
    unsigned kept2 = 0;
    for (int i = 0; i < 6; i++) if ((kept >> i & 1) && q[i] >= 0.05 * q[3]) kept2 |= 1u << i;
    check_distribution(&p, l, 6, kept2, n_draws, err, sizeof err);
    CHECKF(!err[0], "defaults (kept %#x): %s", kept2, err);
}

TEST(seed_determinism) {
    float l[50];
    for (int i = 0; i < 50; i++) l[i] = (float)sin(i * 1.7) * 2.0f;
    lc_sampler_params p = params(1.0f, 0, 1.0f, 0.0f, 1234);
    lc_sampler *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(lc_sampler_new(&p, 50, &a));
    CHECK_OK(lc_sampler_new(&p, 50, &b));
    p.seed = 1235;
    CHECK_OK(lc_sampler_new(&p, 50, &c));
    int32_t first[500];
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 500; i++) {
        int32_t x = lc_sampler_sample(a, l), y = lc_sampler_sample(b, l), z = lc_sampler_sample(c, l);
        first[i] = x;
        same_ab += x == y;
        same_ac += x == z;
    }
    lc_sampler_reset(a); /* reset re-seeds: the same sequence again */
    int same_reset = 0;
    for (int i = 0; i < 500; i++) same_reset += lc_sampler_sample(a, l) == first[i];
    lc_sampler_free(a);
    lc_sampler_free(b);
    lc_sampler_free(c);
    CHECK_EQ_INT(same_ab, 500);
    CHECK_EQ_INT(same_reset, 500);
    CHECK(same_ac < 250);
    /* LC_SEED_RANDOM: two samplers differ (from the clock and their address) */
    p.seed = LC_SEED_RANDOM;
    CHECK_OK(lc_sampler_new(&p, 50, &a));
    CHECK_OK(lc_sampler_new(&p, 50, &b));
    int same = 0;
    for (int i = 0; i < 200; i++) same += lc_sampler_sample(a, l) == lc_sampler_sample(b, l);
    lc_sampler_free(a);
    lc_sampler_free(b);
    CHECK(same < 150);
}

/* The token loop never allocates: with the next allocation set to fail, sampling still works and the failure is
** still pending afterwards. */
TEST(no_allocation_per_sample) {
    enum { N = 5000 };
    static float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)cos(i * 0.37) * 3.0f;
    lc_sampler_params p = lc_sampler_default_params();
    p.seed = 1;
    p.top_k = 0; /* top-p over the whole vocabulary: the full sort path */
    p.top_p = 0.99f;
    p.repeat_penalty = 1.3f;
    lc_sampler *s = NULL;
    CHECK_OK(lc_sampler_new(&p, N, &s));
    lc__alloc_fail_after(1);
    for (int i = 0; i < 50; i++) lc_sampler_accept(s, lc_sampler_sample(s, l));
    void *x = lc__malloc(16);
    lc__alloc_fail_after(0);
    lc_sampler_free(s);
    CHECK(x == NULL);
}

TEST(odd_inputs) {
    lc_sampler *s = NULL;
    lc_sampler_params p = params(1.0f, 0, 1.0f, 0.0f, 1);
    CHECK_EQ_INT(lc_sampler_new(&p, 0, &s), LC_E_INVALID);
    p.repeat_penalty = 0.0f;
    CHECK_EQ_INT(lc_sampler_new(&p, 4, &s), LC_E_INVALID);
    p.repeat_penalty = 1.0f;
    p.temp = NAN;
    CHECK_EQ_INT(lc_sampler_new(&p, 4, &s), LC_E_INVALID);
    p.temp = 1.0f;
    p.repeat_last_n = -2;
    CHECK_EQ_INT(lc_sampler_new(&p, 4, &s), LC_E_INVALID);
    CHECK(s == NULL);
    p.repeat_last_n = 64;
    CHECK_OK(lc_sampler_new(&p, 4, &s));
    float nan_l[4] = {NAN, 0.0f, NAN, -INFINITY};
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(lc_sampler_sample(s, nan_l), 1); /* the only possible token */
    float inf_l[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int32_t id = lc_sampler_sample(s, inf_l);
    CHECK(id >= 0 && id < 4);
    lc_sampler_free(s);
    lc_sampler_free(NULL);
}

int main(void) {
    RUN(greedy_and_penalty);
    RUN(top_k_kept_set);
    RUN(top_p_kept_set);
    RUN(top_p_large_vocab);
    RUN(min_p_kept_set);
    RUN(distribution_matches_softmax);
    RUN(seed_determinism);
    RUN(no_allocation_per_sample);
    RUN(odd_inputs);
    return TEST_SUMMARY();
}
