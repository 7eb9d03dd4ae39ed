/* train.h - internals of src/train: tokenizer training (bpe_train.c) and pre-training of Llama models (below). */
#ifndef LC_TRAIN_H
#define LC_TRAIN_H

#include "llamac.h"

#include "../base/base.h"
#include "../gguf/gguf.h"

/* Writes a byte-level BPE vocabulary GGUF (see bpe_train.c). */
int lc__write_bpe_vocab(const char *path, const char *const *tokens, const int32_t *types, int32_t n,
                        const char *const *merges, int32_t n_merges, int32_t n_normal);

/* ---- pre-training of Llama models (gemm.c, layers.c, train_model.c, adamw.c, train_data.c, train.c) ----
** The model is trained in exactly the form lc_model_load computes: GGUF tensor layout (W[out][in], one row per
** output), "normal" RoPE on adjacent pairs of each head, tied output embedding; so weights are written as trained.
** Every reduction runs in a fixed order that does not depend on the thread count: a run is bit-reproducible, and a
** resumed run equals an uninterrupted one. For LoRA fine-tuning the pieces below are meant to be reused as they
** are: tr_gemm gives the input gradient through a frozen weight (dX = dY W) without touching dW, and the layer
** backward passes do not know where their weights come from; only tr_run_step binds them to tr_model's f32
** parameters. */

/* The kernels chosen for this CPU (gemm.c): the matrix-product micro-kernel and a vector exponential. */
typedef struct tr_gemm_impl {
    int mr, nr;         /* tile of C computed by one kernel call */
    void *kernel;       /* the micro-kernel */
    void (*vexp)(float *y, const float *x, float a, float b, int n); /* y[i] = exp(a x[i] - b); y may be x */
    const char *name;   /* "avx512", "avx2", "ref" */
} tr_gemm_impl;
/* Picks the micro-kernel of variant ("avx512", "avx2", "ref"; NULL: the one lc_cpu_variant() names, else the
** portable one). Returns false (g set to "ref") when this CPU or build has no such kernel. */
bool tr_gemm_select(tr_gemm_impl *g, const char *variant);
/* Floats of per-thread scratch tr_gemm needs. */
size_t tr_gemm_scratch_floats(void);
/* C[M][N] = (acc ? C : 0) + op(A)[M][K] @ op(B)[K][N], row-major f32; op(A)[m][k] = ta ? A[k*lda+m] : A[m*lda+k],
** op(B)[k][n] = tb ? B[n*ldb+k] : B[k*ldb+n]. Thread ith of nth computes its share of C (call from every thread of
** a pool run; no barrier inside). Bit-identical results for any nth. scratch: tr_gemm_scratch_floats() floats owned
** by the calling thread. */
void tr_gemm(const tr_gemm_impl *g, bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
             int ldb, float *C, int ldc, bool acc, float *scratch, int ith, int nth);

/* ---- layers (layers.c): forward and backward over rows [r0, r1) of a batch; pure, thread-safe on disjoint rows.
** Backward functions ADD into their input gradients (dx += ...) unless said otherwise. */

/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (the inference's rounding: squares summed in double); rs[r] gets the
** inverse scale. */
void tr_rmsnorm_fwd(float *y, float *rs, const float *x, const float *w, int d, float eps, int r0, int r1);
/* dx[r] += d/dx of sum(dy * y) (rows r0..r1). */
void tr_rmsnorm_bwd_x(float *dx, const float *dy, const float *x, const float *rs, const float *w, int d, int r0,
                      int r1);
/* dw[c] += sum over all n rows of dy * x * rs, for columns [c0, c1) (rows in order: deterministic). */
void tr_rmsnorm_bwd_w(float *dw, const float *dy, const float *x, const float *rs, int d, int n, int c0, int c1);

/* RoPE table: cs[pos][2i] = cos, [2i+1] = sin of pos * theta^(-2i/n_rot), built as the inference builds it. */
void tr_rope_table(float *cs, int n_pos, int n_rot, float theta);
/* Rotates adjacent pairs of each of n_heads heads of rows [r0, r1) of x (row r at position pos[r]); inverse
** rotates (the backward: the transpose of a rotation). */
void tr_rope(float *x, int n_heads, int hd, const float *cs, const int32_t *pos, int r0, int r1, bool inverse);

/* Causal attention over n_seq sequences of T rows each (row s*T + t). q [rows][n_head*hd], k/v [rows][n_kv*hd];
** out [rows][n_head*hd], lse [rows][n_head] (log-sum-exp of the scaled scores, kept for the backward). Work items
** are (sequence, head) pairs [i0, i1) of n_seq*n_head. Products through tr_gemm on the calling thread only;
** scratch: tr_attn_scratch_floats(T) floats. */
size_t tr_attn_scratch_floats(int T);
void tr_attn_fwd(const tr_gemm_impl *g, float *out, float *lse, const float *q, const float *k, const float *v, int T,
                 int n_head, int n_head_kv, int hd, int i0, int i1, float *scratch);
/* Backward: dq, dk, dv are OVERWRITTEN. Work items are (sequence, kv head) pairs [i0, i1) of n_seq*n_head_kv:
** each owns its dk/dv and the dq of its query heads, summed in a fixed order. Same scratch. */
void tr_attn_bwd(const tr_gemm_impl *g, float *dq, float *dk, float *dv, const float *dout, const float *out,
                 const float *lse, const float *q, const float *k, const float *v, int T, int n_head, int n_head_kv,
                 int hd, int i0, int i1, float *scratch);

/* h = silu(g) * u over elements [e0, e1). */
void tr_swiglu_fwd(const tr_gemm_impl *k, float *h, const float *g, const float *u, size_t e0, size_t e1);
/* dg, du (overwritten) from dh over elements [e0, e1). */
void tr_swiglu_bwd(const tr_gemm_impl *k, float *dg, float *du, const float *dh, const float *g, const float *u,
                   size_t e0, size_t e1);

/* Cross-entropy of rows [r0, r1) of logits [rows][n_vocab] against targets (a negative target: row ignored).
** loss[r] = logsumexp(row) - row[target]. When grad, the row is overwritten by scale * (softmax - onehot). */
void tr_xent(const tr_gemm_impl *k, float *logits, float *loss, const int32_t *targets, int n_vocab, float scale,
             bool grad, int r0, int r1);

/* ---- random numbers: xoshiro256** seeded by splitmix64; the 4-word state is what checkpoints keep ---- */
typedef struct tr_rng {
    uint64_t s[4];
} tr_rng;
void tr_rng_seed(tr_rng *r, uint64_t seed, uint64_t stream);
uint64_t tr_rng_next(tr_rng *r);
uint64_t tr_rng_below(tr_rng *r, uint64_t n); /* uniform in [0, n), n > 0, unbiased */
double tr_rng_normal(tr_rng *r);              /* N(0, 1) */

/* ---- the model being trained (train_model.c) ---- */
typedef struct tr_tensor {
    char name[64];   /* GGUF name, e.g. "blk.0.attn_q.weight" */
    int ne0, ne1;    /* ne0 inputs per row, ne1 rows (1 for vectors) */
    size_t off;      /* into params/grads, floats, 16-aligned */
    bool decay;      /* AdamW weight decay applies (matrices, not norms) */
} tr_tensor;

typedef struct tr_layer_idx {
    int attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down; /* indices into tensors */
} tr_layer_idx;

typedef struct tr_model {
    lc_train_config cfg;
    int n_vocab, head_dim, n_q, n_kv; /* n_q = n_head*head_dim, n_kv = n_head_kv*head_dim */
    tr_tensor *tensors;   /* owned */
    int n_tensors;
    size_t n_params;      /* floats in params (with alignment padding) */
    uint64_t n_weights;   /* real parameter count */
    float *params, *grads; /* owned, 64-byte aligned, n_params each */
    int tok_embd, output_norm;
    tr_layer_idx *layers; /* owned, n_layer */
} tr_model;

/* Checks cfg (dims, divisibility) and allocates params and grads (zero). */
int tr_model_new(const lc_train_config *cfg, int n_vocab, tr_model **out);
void tr_model_free(tr_model *m);
/* Initial weights from seed: matrices N(0, 0.02), the residual outputs (attn_output, ffn_down) scaled by
** 1/sqrt(2 n_layer), norms 1. Deterministic. */
void tr_model_init(tr_model *m, uint64_t seed);
static inline float *tr_param(const tr_model *m, int t) { return m->params + m->tensors[t].off; }
static inline float *tr_grad(const tr_model *m, int t) { return m->grads + m->tensors[t].off; }
int tr_model_find(const tr_model *m, const char *name); /* tensor index or -1 */

/* Buffers of 64-byte aligned floats freed together (a run's activations). After a failed allocation *ok is false
** and every later call returns NULL. tr_bufs_list: n pointers, each to n_floats (NULL where want[i] < 0; want may
** be NULL). */
typedef struct tr_bufs {
    void **p;
    size_t n;
} tr_bufs;
float *tr_bufs_alloc(tr_bufs *b, size_t n_floats, bool *ok);
float **tr_bufs_list(tr_bufs *b, int n, size_t n_floats, const int *want, bool *ok);
void tr_bufs_free(tr_bufs *b);

/* Activations and scratch for batches of up to max_seq sequences of T tokens, and the thread pool. */
typedef struct tr_run tr_run;
int tr_run_new(tr_model *m, int max_seq, int T, int n_threads, tr_run **out);
void tr_run_free(tr_run *r);
lc_pool *tr_run_pool(tr_run *r);
const tr_gemm_impl *tr_run_gemm(const tr_run *r);
/* Forward over n_seq sequences (tokens[n_seq*T], position t of a sequence at t), the loss against targets (same
** shape; < 0 ignored); returns the SUM of the per-token losses. With backward, grads += grad_scale * d(sum)/dparams.
** Without, the logits of the last call stay readable through tr_run_logits. */
double tr_run_step(tr_run *r, const int32_t *tokens, const int32_t *targets, int n_seq, bool backward,
                   float grad_scale);
const float *tr_run_logits(const tr_run *r); /* [n_seq*T][n_vocab] after a forward without backward */
/* Seconds spent so far in matrix products, attention and everything else (pool runs, wall clock). */
enum { TR_TIME_MATMUL, TR_TIME_ATTENTION, TR_TIME_OTHER, TR_TIME_COUNT };
const double *tr_run_times(const tr_run *r);
/* FLOPs of one forward+backward token (matmuls and attention at full context T), for speed reports. */
double tr_flops_per_token(const tr_model *m, int T);

/* ---- optimizer (adamw.c) ---- */
/* Global L2 norm of grads (per-chunk double sums added in a fixed order). */
double tr_grad_norm(tr_model *m, lc_pool *pool);
typedef struct tr_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    float grad_scale; /* multiplies every gradient first (clipping) */
    int64_t t;        /* 1-based step, for the bias corrections */
} tr_adamw;
/* One AdamW step on all parameters: m, v are n_params floats (moments, updated). Decoupled weight decay on tensors
** with decay set. */
void tr_adamw_step(tr_model *m, float *mom1, float *mom2, const tr_adamw *a, lc_pool *pool);
/* Learning rate of step s (0-based) of n: linear warm-up over warmup steps to lr, then cosine to min_lr. */
float tr_lr_at(int64_t s, int64_t n, int64_t warmup, float lr, float min_lr);

/* ---- the corpus (train_data.c) ---- */
typedef struct tr_data {
    int32_t *train, *val; /* owned token streams */
    size_t n_train, n_val;
    size_t n_docs;
    uint64_t hash;        /* of both streams and the window length: tells a checkpoint's data apart */
} tr_data;
/* Reads and tokenizes the corpus files (documents split at lines equal to doc_sep when not NULL; each document
** gets BOS when the tokenizer adds one and EOS at its end), and splits the stream into chunks of 8 windows of T+1
** tokens, every k-th chunk held out for validation (val_frac). Fails (LC_E_INVALID) when no training window of T+1
** tokens remains. */
int tr_data_load(tr_data *d, const char *const *paths, size_t n_paths, const char *doc_sep, const lc_tokenizer *tok,
                 int T, double val_frac);
void tr_data_free(tr_data *d);

/* ---- GGUF output (train_model.c) ---- */
/* Adds the model's llama.* keys, general.* keys and every tensor (borrowed from m->params) to w; copies the
** tokenizer.* keys of tok (an opened GGUF). */
int tr_model_to_gguf(const tr_model *m, gguf_writer *w, const gguf_file *tok, const char *name);

#endif /* LC_TRAIN_H */
