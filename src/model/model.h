/* model.h - the Llama model: hyperparameters, weights bound to tensors of the mapped file, the context (KV cache,
** scratch, thread pool) and the forward pass over a batch.
**
** A model is immutable after lc_model_load. A context owns everything a forward pass writes; it is allocated once
** in lc_context_new so the token loop never allocates (the logits buffer only grows when more output rows are asked
** for than ever before).
*/
#ifndef LC_MODEL_H
#define LC_MODEL_H

#include "../base/base.h"
#include "../gguf/gguf.h"
#include "../tokenizer/tokenizer.h"

#include <stdatomic.h>

/* A weight matrix (or vector): ne[0] elements per row (the input dimension), ne[1] rows. Borrowed from the mapping,
** or from model-owned memory for converted vectors. */
typedef struct lc_weight {
    const char *name;
    int type;
    const void *data;
    uint64_t ne[2];
    size_t row_bytes;
    bool r8; /* repacked at load into the kernels' r8 layout (kernels.h): read it with lc_matmul_r8 and
             ** lc__weight_row, never row by row */
} lc_weight;

/* Elements [col0, col0 + n) of row `row` of W as f32, whatever its layout (col0 on a block boundary). */
void lc__weight_row(const lc_weight *w, int64_t row, int64_t col0, int64_t n, float *out);

typedef struct lc_layer {
    const float *attn_norm, *ffn_norm; /* [n_embd], f32 (converted at load if stored otherwise) */
    lc_weight wq, wk, wv, wo;           /* wq [n_embd -> n_head*head_dim], wk/wv [n_embd -> n_head_kv*head_dim] */
    lc_weight w_gate, w_up, w_down;     /* gate/up [n_embd -> n_ff], down [n_ff -> n_embd] */
} lc_layer;

struct lc_model {
    gguf_file *file; /* owned: the GGUF (or the synthetic one over a llama2.c checkpoint) */
    lc_hparams hp;
    float rope_freq_scale; /* 1 / linear scaling factor */
    lc_weight tok_embd, output;
    const float *output_norm;
    const float *rope_freqs; /* [n_rot/2] or NULL */
    lc_layer *layers;        /* owned, n_layer */
    float **owned_vecs;      /* norm vectors converted to f32 at load (owned) */
    size_t n_owned_vecs;
    lc_vocab *vocab; /* owned; NULL for a llama2.c checkpoint without tokenizer.bin */
    uint64_t n_bytes, n_params;
};

/* One KV cache cell: which sequence and position it holds (seq -1: free). */
typedef struct lc_kv_cell {
    int32_t pos, seq;
} lc_kv_cell;

/* LoRA adapters (lora.c): A [rank][n_in] and B [n_out][rank], converted to F32 at load. */
enum { LC_LORA_Q, LC_LORA_K, LC_LORA_V, LC_LORA_O, LC_LORA_GATE, LC_LORA_UP, LC_LORA_DOWN, LC_LORA_OUTPUT };
#define LC_MAX_LORA 8
typedef struct lc_lora_weight {
    int layer, proj, rank, n_in, n_out;
    float *a, *b;
} lc_lora_weight;
struct lc_lora {
    float alpha;
    lc_lora_weight *w;
    size_t n;
};
/* y += s * B (A x) for the adapters of (layer, proj) set on c (all threads take part; barriers inside). */
void lc__lora_apply(lc_context *c, int layer, int proj, const float *x, float *y, int n_tok, int ith, int nth);

struct lc_context {
    lc_model *model;
    /* LoRA adapters (lc_context_set_lora) and their scratch: n_batch x max rank, n_batch x max n_out */
    const lc_lora *lora[LC_MAX_LORA];
    float lora_scale[LC_MAX_LORA];
    int n_lora;
    float *lora_t, *lora_u;
    lc_context_params p;
    lc_pool *pool;
    /* KV cache: per layer [n_ctx][n_kv_dim] of kv_type (f16 or f32) */
    void **k_cache, **v_cache;
    size_t kv_elt; /* bytes per element */
    lc_kv_cell *cells;
    uint32_t n_used_hi; /* cells [0, n_used_hi) may be in use */
    int32_t *seq_hi;    /* per sequence id: its highest cell during lc_decode's placement (n_seq_max) */
    /* scratch, n_batch rows each */
    float *x, *xb, *xb2, *q, *k, *v, *att_out, *hb, *hb2;
    void *xq;          /* activations converted to the vec-dot type of the next matmul */
    size_t xq_bytes;
    uint64_t kv_bytes, scratch_bytes; /* lc_context_memory */
    _Atomic uint64_t mm_ticket;       /* forward.c: next chunk of matmul rows to take (reset every forward) */
    float *att;        /* per thread: scores over n_ctx cells */
    void *qconv;       /* per thread: one query head converted to the K cache type */
    float *rope_cs;    /* per batch row: cos/sin pairs [n_batch][n_rot] */
    int32_t *cell_of;  /* per batch row: the KV cell it was written to */
    int32_t *out_rows; /* batch rows whose logits were asked for, in order */
    int32_t *out_idx;  /* per batch row: index into logits or -1 */
    int32_t n_out, n_batch_last;
    float *logits;     /* [cap_out][n_vocab] */
    int32_t cap_out;
    /* the batch being decoded (borrowed during lc_decode) */
    const int32_t *b_token;
    int32_t *b_pos, *b_seq; /* owned copies, n_batch */
    int32_t b_n;
};

/* Binds hyperparameters and weights of an opened file; takes ownership of f (closes it on failure too). */
int lc__model_from_file(gguf_file *f, const char *path, lc_model **out);
/* The forward pass over the batch stored in c (b_token/b_pos/b_seq/b_n, cells assigned). */
void lc__forward(lc_context *c);
/* RoPE cos/sin pairs of position pos: cs[2i] = cos, cs[2i+1] = sin of pos * base^(-2i/n_rot) / ff[i] * freq_scale
** (ff may be NULL), the angle accumulated in float as ggml does (forward.c; the fine-tuning forward uses it too). */
void lc__rope_cache(float *cs, int32_t pos, int n_rot, float base, float freq_scale, const float *ff);

#endif /* LC_MODEL_H */
