/* test_batch.c - batched decoding of several sequences gives each one exactly (bit for bit) the logits it gets alone.
**
** The reference is a fresh context holding only that sequence, decoded as one prompt batch and then one token per
** lc_decode. Against it: the same sequence decoded in batches mixed with rows of other sequences (interleaved,
** before and after it), and after the cache was fragmented (another sequence's cells below it freed, its own tail
** removed and decoded again), for F32 and Q8_0 weights and F16 and F32 KV caches. This is what lets `llamac serve`
** promise that concurrent greedy streams equal sequential runs. Also lc_kv_copy: a prefix copied into other
** sequences continues exactly as the whole prompt decoded alone (the server's shared-prefix cache).
*/
#include "harness.h"
#include "llamac.h"

#include <stdint.h>
#include <stdlib.h>

static char g_dir[64];

static int same(const float *a, const float *b, int n) {
    int d = 0;
    for (int i = 0; i < n; i++) d += a[i] != b[i];
    return d;
}

/* A check on two fresh contexts a and b of one model (V tokens): 0 passed, 1 failed, -1 could not run; why says. */
typedef int (*check_fn)(lc_context *a, lc_context *b, int V, char *why, size_t cap);

static int decode_failed(char *why, size_t cap) { return snprintf(why, cap, "decode: %s", lc_last_error()), -1; }

/* The reference run (a) and the mixed run (b), compared at every generated step. */
static int mixed_batches(lc_context *a, lc_context *b, int V, char *why, size_t cap) {
    int bad = -1;
    int32_t toks[64];
    for (int i = 0; i < 64; i++) toks[i] = 5 + (i * 37) % (V - 10);
    /* a: the sequence alone */
    lc_batch ba = {.n_tokens = 16, .token = toks};
    if (lc_decode(a, &ba)) goto fail;
    /* b: sequence 1 takes the first cells; sequence 0's prompt comes mixed with sequence 2's rows */
    int32_t t[48], p[48], s[48];
    int8_t l[48];
    int n = 0;
    for (int i = 0; i < 12; i++) t[n] = 9 + i, p[n] = i, s[n] = 1, l[n] = 0, n++;
    lc_batch bb = {.n_tokens = n, .token = t, .pos = p, .seq_id = s, .logits = l};
    if (lc_decode(b, &bb)) goto fail;
    n = 0;
    for (int i = 0; i < 16; i++) {
        if (i % 3 == 0) t[n] = 40 + i, p[n] = i / 3, s[n] = 2, l[n] = 1, n++;
        t[n] = toks[i], p[n] = i, s[n] = 0, l[n] = i == 15, n++;
    }
    bb.n_tokens = n;
    if (lc_decode(b, &bb)) goto fail;
    int row = n - 1;
    if (same(lc_get_logits(a, 15), lc_get_logits(b, row), V)) {
        snprintf(why, cap, "the mixed prompt batch differs");
        bad = 1;
        goto done;
    }
    lc_kv_remove(b, 1, 0, -1); /* free cells below sequence 0 */
    for (int step = 0; step < 24; step++) {
        int32_t tk = toks[16 + step];
        lc_batch g = {.n_tokens = 1, .token = &tk};
        if (lc_decode(a, &g)) goto fail;
        n = 0;
        t[n] = 60 + step, p[n] = 6 + step, s[n] = 2, l[n] = 1, n++; /* another sequence in the same batch */
        t[n] = tk, p[n] = 16 + step, s[n] = 0, l[n] = 1, n++;
        if (step % 5 == 4) t[n] = 80 + step, p[n] = step, s[n] = 3, l[n] = 1, n++;
        bb.n_tokens = n;
        if (lc_decode(b, &bb)) goto fail;
        const int d = same(lc_get_logits(a, 0), lc_get_logits(b, 1), V);
        if (d) {
            snprintf(why, cap, "step %d: %d of %d logits differ", step, d, V);
            bad = 1;
            goto done;
        }
        if (step == 12) { /* positions 25..28 of sequence 0 removed everywhere and decoded again, together */
            lc_kv_remove(a, 0, 25, -1);
            lc_kv_remove(b, 0, 25, -1);
            lc_kv_remove(b, 2, 0, -1);
            lc_batch ra = {.n_tokens = 4, .token = toks + 25};
            int32_t rp[4], rs[4] = {0, 0, 0, 0};
            for (int i = 0; i < 4; i++) rp[i] = 25 + i;
            lc_batch rb = {.n_tokens = 4, .token = toks + 25, .pos = rp, .seq_id = rs};
            if (lc_decode(a, &ra) || lc_decode(b, &rb)) goto fail;
            if (same(lc_get_logits(a, 3), lc_get_logits(b, 3), V)) {
                snprintf(why, cap, "after the tail was decoded again");
                bad = 1;
                goto done;
            }
        }
    }
    bad = 0;
    goto done;
fail:
    snprintf(why, cap, "decode: %s", lc_last_error());
done:
    return bad;
}

/* lc_kv_copy: a prefix decoded once in sequence 0 (above another sequence's cells) and copied into sequence 1 whole
** and into sequence 2 after its own first 5 positions (as the server copies what a free slot lacks), then each
** continued with its own tokens, gives every sequence the logits a fresh context computes for the whole prompt, bit
** for bit, over the prompt and 6 generated steps; and refused copies change nothing. */
static int copied_prefix(lc_context *a, lc_context *b, int V, char *why, size_t cap) {
    enum { PRE = 13, OWN = 7, GEN = 6 };
    int32_t pre[PRE], own[3][OWN + GEN];
    for (int i = 0; i < PRE; i++) pre[i] = 3 + (i * 29) % (V - 10);
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < OWN + GEN; i++) own[q][i] = 7 + (q * 101 + i * 53) % (V - 10);
    /* b: an unrelated sequence 3 first (cells below), the prefix in sequence 0 */
    int32_t t[5], ps[5], sq[5], s2[5] = {2, 2, 2, 2, 2};
    for (int i = 0; i < 5; i++) t[i] = 11 + i, ps[i] = i, sq[i] = 3;
    lc_batch b3 = {.n_tokens = 5, .token = t, .pos = ps, .seq_id = sq};
    lc_batch b0 = {.n_tokens = PRE, .token = pre}, b2 = {.n_tokens = 5, .token = pre, .seq_id = s2};
    if (lc_decode(b, &b3) || lc_decode(b, &b0) || lc_decode(b, &b2)) return decode_failed(why, cap);
    for (int q = 1; q < 3; q++) {
        const int32_t p0 = q == 2 ? 5 : 0, r = lc_kv_copy(b, 0, q, p0, -1);
        if (r != PRE - p0) {
            snprintf(why, cap, "copy into %d: %d (%s)", q, r, lc_last_error());
            return 1;
        }
    }
    /* refusals: the positions are there already; bad ids; a cache without room; none changes anything */
    if (lc_kv_copy(b, 0, 1, 0, -1) != LC_E_INVALID || lc_kv_copy(b, 0, 0, 0, -1) != LC_E_INVALID ||
        lc_kv_copy(b, 0, 4, 0, -1) != LC_E_INVALID || lc_kv_copy(b, -1, 1, 0, -1) != LC_E_INVALID ||
        lc_kv_seq_len(b, 1) != PRE || lc_kv_seq_len(b, 2) != PRE) {
        snprintf(why, cap, "a refused copy was not refused, or changed the cache");
        return 1;
    }
    for (int32_t q = 0; q < 3; q++) {
        /* the reference: the whole prompt alone in a fresh cache */
        lc_kv_remove(a, -1, 0, -1);
        int32_t full[PRE + OWN];
        for (int i = 0; i < PRE; i++) full[i] = pre[i];
        for (int i = 0; i < OWN; i++) full[PRE + i] = own[q][i];
        lc_batch fa = {.n_tokens = PRE + OWN, .token = full};
        int32_t sb[OWN];
        for (int i = 0; i < OWN; i++) sb[i] = q;
        lc_batch fb = {.n_tokens = OWN, .token = own[q], .seq_id = sb};
        if (lc_decode(a, &fa) || lc_decode(b, &fb)) return decode_failed(why, cap);
        int d = same(lc_get_logits(a, PRE + OWN - 1), lc_get_logits(b, OWN - 1), V);
        for (int g = 0; g < GEN && !d; g++) {
            lc_batch ga = {.n_tokens = 1, .token = &own[q][OWN + g]};
            lc_batch gb = {.n_tokens = 1, .token = &own[q][OWN + g], .seq_id = &q};
            if (lc_decode(a, &ga) || lc_decode(b, &gb)) return decode_failed(why, cap);
            d = same(lc_get_logits(a, 0), lc_get_logits(b, 0), V);
        }
        if (d) {
            snprintf(why, cap, "sequence %d (prefix %s): %d of %d logits differ", q, q ? "copied" : "decoded", d, V);
            return 1;
        }
    }
    /* 5 + 3 * (13 + 7 + 6) = 83 of 96 cells used: positions 5.. of sequence 0 (21) do not fit in the 13 free cells */
    lc_kv_remove(b, 3, 0, -1);
    lc_batch fill = {.n_tokens = 5, .token = t, .pos = ps, .seq_id = sq};
    if (lc_decode(b, &fill)) return decode_failed(why, cap);
    if (lc_kv_copy(b, 0, 3, 5, -1) != LC_E_RANGE || lc_kv_seq_len(b, 3) != 5) {
        snprintf(why, cap, "a copy into a full cache was not refused cleanly");
        return 1;
    }
    return 0;
}

/* Runs fn on two contexts of n_ctx cells (4 sequences) of each model: F32 and Q8_0 weights, F16 and F32 KV caches. */
static void each_model(check_fn fn, uint32_t n_ctx) {
    const int types[] = {LC_TYPE_F32, LC_TYPE_Q8_0}, kvs[] = {LC_TYPE_F16, LC_TYPE_F32};
    for (int ti = 0; ti < 2; ti++) {
        char path[128];
        snprintf(path, sizeof path, "%s/m%d.gguf", g_dir, ti);
        lc_synth_params sp = lc_synth_default_params();
        sp.wtype = types[ti];
        CHECK_OK(lc_synth_write(path, &sp));
        lc_model *m;
        CHECK_OK(lc_model_load(path, NULL, &m));
        remove(path);
        for (int ki = 0; ki < 2; ki++) {
            lc_context_params cp = lc_context_default_params();
            cp.n_ctx = n_ctx, cp.n_seq_max = 4, cp.n_threads = 2, cp.kv_type = kvs[ki];
            lc_context *a = NULL, *b = NULL;
            char why[256] = "";
            int r = -1;
            if (lc_context_new(m, &cp, &a) || lc_context_new(m, &cp, &b))
                snprintf(why, sizeof why, "context: %s", lc_last_error());
            else
                r = fn(a, b, (int)lc_model_hparams(m)->n_vocab, why, sizeof why);
            lc_context_free(a);
            lc_context_free(b);
            if (r) lc_model_free(m);
            CHECKF(r == 0, "%s weights, %s KV: %s", lc_type_name(types[ti]), lc_type_name(kvs[ki]), why);
        }
        lc_model_free(m);
    }
}

TEST(batched_sequences_equal_each_alone) { each_model(mixed_batches, 256); }
TEST(copied_prefix_equals_decoded) { each_model(copied_prefix, 96); }

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/llamac-batch-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    RUN(batched_sequences_equal_each_alone);
    RUN(copied_prefix_equals_decoded);
    rmdir(g_dir);
    return TEST_SUMMARY();
}
