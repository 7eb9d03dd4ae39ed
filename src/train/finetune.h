/* finetune.h - internals of LoRA fine-tuning (frozen.c, finetune_model.c, finetune_data.c, finetune.c).
**
** The base model is an lc_model as lc_model_load gives it: its weights stay in their file type, mmap'd and frozen.
** Each adapted projection W [n_out][n_in] gets y = W x + s B (A x), s = alpha / r, with A [r][n_in] and B
** [n_out][r] trained (llama.cpp's GGUF LoRA layout: "<W>.lora_a" ne [n_in, r], "<W>.lora_b" ne [r, n_out]). The
** products through W run on rows dequantized on the fly (frozen.c) into small per-thread panels, so no f32 copy of
** a weight matrix ever exists; the adapters' products, the layers and AdamW are the pre-training's (train.h).
*/
#ifndef LC_FINETUNE_H
#define LC_FINETUNE_H

#include "train.h"

#include "../model/model.h"
#include "../quant/types.h"

/* ---- products through a frozen weight of any type (frozen.c) ----
** Both split the work over (ith, nth) of a pool run, need no barrier inside and give bit-identical results for any
** nth. scratch: fz_scratch_floats(n_in_max) floats owned by the calling thread (panels of dequantized rows, then
** tr_gemm's own scratch). */
size_t fz_scratch_floats(int n_in_max);
/* Y[rows][n_out] (+)= X[rows][n_in] @ W^T (thread ith computes its share of the output columns). */
void fz_fwd(const tr_gemm_impl *g, const lc_weight *w, const float *X, float *Y, int rows, bool acc, float *scratch,
            int ith, int nth);
/* dX[rows][n_in] (+)= dY[rows][n_out] @ W (thread ith computes its share of the input columns). */
void fz_bwd(const tr_gemm_impl *g, const lc_weight *w, const float *dY, float *dX, int rows, bool acc, float *scratch,
            int ith, int nth);

/* ---- the model under fine-tuning (finetune_model.c) ---- */
enum { FT_Q, FT_K, FT_V, FT_O, FT_GATE, FT_UP, FT_DOWN, FT_N_PROJ }; /* = LC_LORA_Q .. LC_LORA_DOWN */

typedef struct ft_model {
    const lc_model *base; /* borrowed */
    int n_layer, D, F, H, HK, hd, n_q, n_kv, n_vocab, rank;
    float alpha, scale;   /* scale = alpha / rank */
    const lc_weight **w;  /* [n_layer * FT_N_PROJ]: the base's projections (borrowed) */
    int *lora;            /* [n_layer * FT_N_PROJ]: index of the A tensor in lora (B is the next), or -1 */
    tr_model *lora_m;     /* owned: the A and B tensors as trainable parameters (params, grads) */
} ft_model;

/* The adapters on the projections of base whose bit (1 << FT_*) is set in targets, rank r (A: N(0, 1/n_in), seeded;
** B: zero, so training starts from the base model exactly). LC_E_INVALID for a model this cannot fine-tune. */
int ft_model_new(const lc_model *base, int rank, float alpha, unsigned targets, uint64_t seed, ft_model **out);
void ft_model_free(ft_model *m);
/* Adds the adapter's keys and tensors (borrowed from m) to w, in llama.cpp's format. */
int ft_model_to_gguf(const ft_model *m, gguf_writer *w, const char *name);

/* Activations for batches of up to max_seq sequences of T tokens, and the pool. */
typedef struct ft_run ft_run;
int ft_run_new(ft_model *m, int max_seq, int T, int n_threads, ft_run **out);
void ft_run_free(ft_run *r);
lc_pool *ft_run_pool(ft_run *r);
const tr_gemm_impl *ft_run_gemm(const ft_run *r);
/* As tr_run_step: the sum of the losses of the targets >= 0; with backward, lora grads += grad_scale * d(sum)/d. */
double ft_run_step(ft_run *r, const int32_t *tokens, const int32_t *targets, int n_seq, bool backward,
                   float grad_scale);
const float *ft_run_logits(const ft_run *r); /* [n_seq*T][n_vocab] after a forward without backward */
const double *ft_run_times(const ft_run *r); /* TR_TIME_* seconds */
/* FLOPs of one forward+backward token (frozen products 4 per weight, adapters 6 per parameter, attention). */
double ft_flops_per_token(const ft_model *m, int T);

/* ---- data (finetune_data.c) ---- */
/* One chat conversation (a JSON line: {"messages": [...]} or a list of messages) rendered with the template of ch
** (a rendering-only session of the model) and tokenized as lc_chat tokenizes; mask[i] = 1 for the tokens of the
** assistant turns (their text and the template's end-of-turn marker after it). *tok and *mask owned by the caller
** (lc__free). LC_E_INVALID naming what is wrong, or the template's LC_E_FORMAT (the caller prefixes the file and
** line). */
int ft_chat_encode(const lc_model *m, lc_chat *ch, const char *line, size_t len, int32_t **tok, uint8_t **mask,
                   size_t *n);

/* Training samples: T input tokens and T targets (-1: no loss) each. */
typedef struct ft_data {
    bool chat;
    int T;
    tr_data text;          /* plain text: the token streams */
    int32_t *seq;          /* chat: [n_seq][2][T] tokens then targets, training conversations first */
    size_t n_train, n_val; /* chat: conversations */
    size_t n_truncated, n_skipped; /* chat: conversations cut at T+1 tokens, without assistant turns */
    uint64_t n_train_tokens, n_val_tokens; /* tokens with a loss */
    uint64_t hash;         /* of the samples: tells a checkpoint's data apart */
} ft_data;
/* Reads the files: chat JSONL when chat, else text (documents split at doc_sep). T <= max_T tokens per sample (chat:
** the longest conversation, at most max_T). */
int ft_data_load(ft_data *d, const lc_model *m, const char *const *paths, size_t n_paths, bool chat,
                 const char *doc_sep, int max_T, double val_frac);
void ft_data_free(ft_data *d);

#endif /* LC_FINETUNE_H */
