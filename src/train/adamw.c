/* adamw.c - the optimizer: global gradient norm (for clipping), AdamW with bias correction and decoupled weight
** decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), and the learning-rate schedule (linear
** warm-up, then cosine decay to a floor). Element-wise updates split in fixed chunks; the norm adds per-chunk double
** sums in chunk order, so nothing depends on the thread count.
*/
#include "train.h"

#include <math.h>

enum { CHUNK = 1 << 14 };

typedef struct norm_job {
    const float *g;
    size_t n;
    double *part; /* one per chunk */
} norm_job;

static void norm_worker(void *arg, int ith, int nth) {
    norm_job *j = arg;
    const size_t n_chunks = (j->n + CHUNK - 1) / CHUNK;
    for (size_t c = (size_t)ith; c < n_chunks; c += (size_t)nth) {
        const size_t a = c * CHUNK, b = LC_MIN(j->n, a + CHUNK);
        double s = 0.0;
        for (size_t i = a; i < b; i++) s += (double)j->g[i] * j->g[i];
        j->part[c] = s;
    }
}

double tr_grad_norm(tr_model *m, lc_pool *pool) {
    const size_t n_chunks = (m->n_params + CHUNK - 1) / CHUNK;
    double *part = lc__calloc(n_chunks ? n_chunks : 1, sizeof *part);
    double s = 0.0;
    if (part) {
        norm_job j = {m->grads, m->n_params, part};
        lc_pool_run(pool, norm_worker, &j);
        for (size_t c = 0; c < n_chunks; c++) s += part[c];
        lc__free(part);
    } else { /* no memory for the partial sums: the same order, on one thread */
        for (size_t c = 0; c < n_chunks; c++) {
            double p = 0.0;
            for (size_t i = c * CHUNK; i < LC_MIN(m->n_params, (c + 1) * CHUNK); i++) p += (double)m->grads[i] * m->grads[i];
            s += p;
        }
    }
    return sqrt(s);
}

typedef struct adam_job {
    tr_model *m;
    float *m1, *m2;
    const tr_adamw *a;
} adam_job;

static void adam_tensor(const adam_job *j, int ti, size_t a, size_t b) {
    const tr_adamw *o = j->a;
    tr_model *m = j->m;
    const tr_tensor *t = &m->tensors[ti];
    float *p = m->params + t->off, *g = m->grads + t->off, *m1 = j->m1 + t->off, *m2 = j->m2 + t->off;
    const float b1 = o->beta1, b2 = o->beta2;
    const float c1 = (float)(1.0 / (1.0 - pow(b1, (double)o->t))), c2 = (float)(1.0 / (1.0 - pow(b2, (double)o->t)));
    const float decay = t->decay ? o->lr * o->weight_decay : 0.0f;
    for (size_t i = a; i < b; i++) {
        const float gi = g[i] * o->grad_scale;
        m1[i] = b1 * m1[i] + (1.0f - b1) * gi;
        m2[i] = b2 * m2[i] + (1.0f - b2) * gi * gi;
        const float mh = m1[i] * c1, vh = m2[i] * c2;
        p[i] -= o->lr * mh / (sqrtf(vh) + o->eps) + decay * p[i];
    }
}

static void adam_worker(void *arg, int ith, int nth) {
    adam_job *j = arg;
    size_t k = 0; /* chunk counter over all tensors: chunk k goes to thread k % nth */
    for (int ti = 0; ti < j->m->n_tensors; ti++) {
        const size_t n = (size_t)j->m->tensors[ti].ne0 * j->m->tensors[ti].ne1;
        for (size_t a = 0; a < n; a += CHUNK, k++)
            if ((int)(k % (size_t)nth) == ith) adam_tensor(j, ti, a, LC_MIN(n, a + CHUNK));
    }
}

void tr_adamw_step(tr_model *m, float *mom1, float *mom2, const tr_adamw *a, lc_pool *pool) {
    adam_job j = {m, mom1, mom2, a};
    lc_pool_run(pool, adam_worker, &j);
}

float tr_lr_at(int64_t s, int64_t n, int64_t warmup, float lr, float min_lr) {
    if (s < warmup) return lr * (float)(s + 1) / (float)warmup;
    if (n <= warmup) return lr;
    double x = (double)(s - warmup) / (double)LC_MAX(1, n - warmup - 1);
    if (x > 1.0) x = 1.0;
    return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(3.141592653589793 * x)));
}
