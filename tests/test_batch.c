/* test_batch.c - batched decoding of several sequences gives each one exactly (bit for bit) the logits it gets alone.
**
** The reference is a fresh context holding only that sequence, decoded as one prompt batch and then one token per
** lc_decode. Against it: the same sequence decoded in batches mixed with rows of other sequences (interleaved,
** before and after it), and after the cache was fragmented (another sequence's cells below it freed, its own tail
** removed and decoded again), for F32 and Q8_0 weights and F16 and F32 KV caches. This is what lets `llamac serve`
** promise that concurrent greedy streams equal sequential runs.
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

/* One model: the reference run and the mixed run, compared at every generated step. */
static int check_model(const char *path, int kv_type, char *why, size_t cap) {
    lc_model *m;
    if (lc_model_load(path, NULL, &m)) return snprintf(why, cap, "load: %s", lc_last_error()), -1;
    const int V = (int)lc_model_hparams(m)->n_vocab;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = 256, cp.n_seq_max = 4, cp.n_threads = 2, cp.kv_type = kv_type;
    lc_context *a = NULL, *b = NULL;
    int bad = -1;
    if (lc_context_new(m, &cp, &a) || lc_context_new(m, &cp, &b)) {
        snprintf(why, cap, "context: %s", lc_last_error());
        goto done;
    }
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
    lc_context_free(a);
    lc_context_free(b);
    lc_model_free(m);
    return bad;
}

TEST(batched_sequences_equal_each_alone) {
    const int types[] = {LC_TYPE_F32, LC_TYPE_Q8_0}, kvs[] = {LC_TYPE_F16, LC_TYPE_F32};
    for (int ti = 0; ti < 2; ti++) {
        char path[128];
        snprintf(path, sizeof path, "%s/m%d.gguf", g_dir, ti);
        lc_synth_params sp = lc_synth_default_params();
        sp.wtype = types[ti];
        CHECK_OK(lc_synth_write(path, &sp));
        for (int ki = 0; ki < 2; ki++) {
            char why[256] = "";
            const int r = check_model(path, kvs[ki], why, sizeof why);
            CHECKF(r == 0, "%s weights, %s KV: %s", lc_type_name(types[ti]), lc_type_name(kvs[ki]), why);
        }
        remove(path);
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/llamac-batch-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    RUN(batched_sequences_equal_each_alone);
    rmdir(g_dir);
    return TEST_SUMMARY();
}
