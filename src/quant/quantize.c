/* quantize.c - `llamac quantize`: rewrites a GGUF with its weights converted by one of llama-quantize's recipes.
**
** The recipe (which type each tensor gets) follows llama.cpp's src/llama-quant.cpp (llama_tensor_get_type and its
** helpers) for the file types llamac writes, without an importance matrix; tensors are written in the order
** llama.cpp's model loader lists them (layer, then name) and metadata is copied with general.quantization_version
** and general.file_type moved to the end, so for the same input the output file is byte-identical to llama-quantize's.
** Each row is converted by the scalar reference quantizers (src/quant/quants.h), split over a thread pool by rows.
*/
#include "quants.h"

#include "../gguf/gguf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

#define QNT_VERSION 2 /* GGML_QNT_VERSION: the block layouts of the current quantized types */

/* ---- file types ---------------------------------------------------------------------------------------------- */

typedef struct ftype_info {
    int ftype;
    const char *name;
    int base_type; /* the type of most 2-D weights (llama_ftype_get_default_type) */
} ftype_info;

static const ftype_info ftypes[] = {
    {LC_FTYPE_Q4_0, "Q4_0", LC_TYPE_Q4_0},       {LC_FTYPE_Q4_1, "Q4_1", LC_TYPE_Q4_1},
    {LC_FTYPE_Q5_0, "Q5_0", LC_TYPE_Q5_0},       {LC_FTYPE_Q5_1, "Q5_1", LC_TYPE_Q5_1},
    {LC_FTYPE_Q8_0, "Q8_0", LC_TYPE_Q8_0},       {LC_FTYPE_Q2_K, "Q2_K", LC_TYPE_Q2_K},
    {LC_FTYPE_Q3_K_S, "Q3_K_S", LC_TYPE_Q3_K},   {LC_FTYPE_Q3_K_M, "Q3_K_M", LC_TYPE_Q3_K},
    {LC_FTYPE_Q3_K_L, "Q3_K_L", LC_TYPE_Q3_K},   {LC_FTYPE_Q4_K_S, "Q4_K_S", LC_TYPE_Q4_K},
    {LC_FTYPE_Q4_K_M, "Q4_K_M", LC_TYPE_Q4_K},   {LC_FTYPE_Q5_K_S, "Q5_K_S", LC_TYPE_Q5_K},
    {LC_FTYPE_Q5_K_M, "Q5_K_M", LC_TYPE_Q5_K},   {LC_FTYPE_Q6_K, "Q6_K", LC_TYPE_Q6_K},
    {LC_FTYPE_IQ4_NL, "IQ4_NL", LC_TYPE_IQ4_NL}, {LC_FTYPE_IQ4_XS, "IQ4_XS", LC_TYPE_IQ4_XS},
    {LC_FTYPE_F16, "F16", LC_TYPE_F16},          {LC_FTYPE_BF16, "BF16", LC_TYPE_BF16},
    {LC_FTYPE_ALL_F32, "F32", LC_TYPE_F32},
};
#define N_FTYPES (sizeof ftypes / sizeof *ftypes)

static const ftype_info *ftype_find(int ftype) {
    for (size_t i = 0; i < N_FTYPES; i++)
        if (ftypes[i].ftype == ftype) return &ftypes[i];
    return NULL;
}

const char *lc_ftype_name(int ftype) {
    const ftype_info *f = ftype_find(ftype);
    return f ? f->name : NULL;
}

int lc_ftype_from_name(const char *name) {
    static const struct { const char *alias; int ftype; } aliases[] = {
        {"Q3_K", LC_FTYPE_Q3_K_M}, {"Q4_K", LC_FTYPE_Q4_K_M}, {"Q5_K", LC_FTYPE_Q5_K_M}};
    if (!name) return -1;
    for (size_t i = 0; i < N_FTYPES; i++)
        if (!strcasecmp(name, ftypes[i].name)) return ftypes[i].ftype;
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (!strcasecmp(name, aliases[i].alias)) return aliases[i].ftype;
    return -1;
}

lc_quantize_params lc_quantize_default_params(void) {
    lc_quantize_params p;
    memset(&p, 0, sizeof p);
    p.ftype = LC_FTYPE_Q8_0;
    return p;
}

/* ---- the recipe ---------------------------------------------------------------------------------------------- */

/* Broad roles of tensors, by name (llama.cpp's tensor_category). */
typedef enum role {
    ROLE_OTHER, ROLE_TOKEN_EMBD, ROLE_OUTPUT, ROLE_ATTN_Q, ROLE_ATTN_K, ROLE_ATTN_V, ROLE_ATTN_OUTPUT, ROLE_FFN_DOWN,
} role;

static role role_of(const char *name) {
    if (!strcmp(name, "output.weight")) return ROLE_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight")) return ROLE_TOKEN_EMBD;
    /* fused QKV and MLA's kv_b count as V: their V part is what is most sensitive to quantization */
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight") || strstr(name, "attn_v.weight"))
        return ROLE_ATTN_V;
    if (strstr(name, "attn_k.weight")) return ROLE_ATTN_K;
    if (strstr(name, "attn_q.weight")) return ROLE_ATTN_Q;
    if (strstr(name, "attn_output.weight")) return ROLE_ATTN_OUTPUT;
    if (strstr(name, "ffn_up") || strstr(name, "ffn_gate")) return ROLE_OTHER; /* no rule of ours touches them */
    if (strstr(name, "ffn_down")) return ROLE_FFN_DOWN;
    return ROLE_OTHER;
}

/* Dimensions that count, as ggml_n_dims: trailing sizes of 1 do not (a [n, 1] tensor is 1-D). */
static int n_dims_of(const gguf_tensor *t) {
    for (int d = GGUF_MAX_DIMS - 1; d > 0; d--)
        if (t->ne[d] > 1) return d + 1;
    return 1;
}

/* Whether a tensor is a weight matrix the recipe converts (llama.cpp's tensor_allows_quantization): 2-D or more,
** named "...weight", and none of the small or special tensors that stay as they are. */
static bool is_quantizable(const gguf_tensor *t) {
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
        "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd",
        "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
        "mm.a.code_embd"};
    if (n_dims_of(t) < 2) return false;
    size_t len = strlen(t->name);
    if (len < 6 || strcmp(t->name + len - 6, "weight") != 0) return false;
    if (!strcmp(t->name, "position_embd.weight") || !strcmp(t->name, "token_types.weight")) return false;
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        if (strstr(t->name, keep[i])) return false;
    return true;
}

/* What the recipe needs to know about the model, and its running counters (tensors are visited in output order). */
typedef struct recipe {
    int ftype, base_type;
    bool falcon;             /* llama.cpp has a few Falcon-specific choices */
    bool is_70b;             /* llama.cpp's LLM_TYPE_70B for the llama architecture: 80 layers, GQA */
    bool tied;               /* no output.weight: token_embd doubles as the output matrix */
    uint32_t n_gqa, n_expert, n_layer;
    int n_attn_v, i_attn_v, i_ffn_down;
    uint32_t n_fallback;
} recipe;

/* A layer whose tensors get more bits in the _M mixes: the first and last eighth, and every third in between. */
static bool use_more_bits(int i_layer, int n_layer) {
    return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

static bool in_list(int ftype, const int *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == ftype) return true;
    return false;
}

/* The recipe's type for a quantizable tensor, before the row-length fallback (llama_tensor_get_type_impl). */
static int recipe_type(recipe *r, const gguf_tensor *t, role ro, int *err) {
    const int ft = r->ftype;
    int type = r->base_type;
    *err = 0;
    if (ro == ROLE_OUTPUT || (r->tied && ro == ROLE_TOKEN_EMBD)) {
        /* the output matrix gets Q6_K, or Q8_0 when the base type's blocks do not divide its rows */
        uint32_t blck = lc_type_traits_of(type)->blck_size;
        if (r->falcon || t->ne[0] % blck != 0) type = LC_TYPE_Q8_0;
        else if (type != LC_TYPE_Q8_0) type = LC_TYPE_Q6_K;
    } else if (ro == ROLE_TOKEN_EMBD) {
        /* untied embeddings keep the base type in every mix llamac writes */
    } else if (ro == ROLE_ATTN_V) {
        if (ft == LC_FTYPE_Q2_K) type = r->n_gqa >= 4 ? LC_TYPE_Q4_K : LC_TYPE_Q3_K;
        else if (ft == LC_FTYPE_Q3_K_M) type = r->i_attn_v < 2 ? LC_TYPE_Q5_K : LC_TYPE_Q4_K;
        else if (ft == LC_FTYPE_Q3_K_L) type = LC_TYPE_Q5_K;
        else if ((ft == LC_FTYPE_IQ4_NL || ft == LC_FTYPE_IQ4_XS) && r->n_gqa >= 4) type = LC_TYPE_Q5_K;
        else if ((ft == LC_FTYPE_Q4_K_M || ft == LC_FTYPE_Q5_K_M) && use_more_bits(r->i_attn_v, r->n_attn_v))
            type = LC_TYPE_Q6_K;
        else if (ft == LC_FTYPE_Q4_K_S && r->i_attn_v < 4) type = LC_TYPE_Q5_K;
        /* 70B: V is 8x smaller than Q (8 heads share it), so more bits cost little */
        if (r->is_70b && (type == LC_TYPE_Q3_K || type == LC_TYPE_Q4_K)) type = LC_TYPE_Q5_K;
        if (r->n_expert == 8) type = LC_TYPE_Q8_0;
        r->i_attn_v++;
    } else if (ro == ROLE_ATTN_K) {
        if (r->n_expert == 8) type = LC_TYPE_Q8_0;
    } else if (ro == ROLE_FFN_DOWN) {
        int i_layer = r->i_ffn_down, n_layer = (int)r->n_layer;
        if (r->n_expert > 1) { /* experts are not stored layer by layer: the layer comes from the name */
            if (sscanf(t->name, "blk.%d.", &i_layer) != 1 || i_layer < 0 || i_layer >= n_layer) {
                *err = LC_ERR(LC_E_FORMAT, "tensor '%s': cannot tell its layer (expected blk.N. with N < %d)",
                              t->name, n_layer);
                return type;
            }
        }
        const bool more = use_more_bits(i_layer, n_layer);
        if (ft == LC_FTYPE_Q2_K) type = LC_TYPE_Q3_K;
        else if (ft == LC_FTYPE_Q3_K_M)
            type = i_layer < n_layer / 16 ? LC_TYPE_Q5_K : !r->falcon || more ? LC_TYPE_Q4_K : LC_TYPE_Q3_K;
        else if (ft == LC_FTYPE_Q3_K_L) type = r->falcon ? LC_TYPE_Q4_K : LC_TYPE_Q5_K;
        else if (ft == LC_FTYPE_Q4_K_M) {
            if (r->falcon) type = i_layer < n_layer / 16 ? LC_TYPE_Q6_K : more ? LC_TYPE_Q5_K : LC_TYPE_Q4_K;
            else if (more) type = LC_TYPE_Q6_K;
        } else if (i_layer < n_layer / 8 && (ft == LC_FTYPE_IQ4_NL || ft == LC_FTYPE_IQ4_XS))
            type = LC_TYPE_Q5_K;
        else if (ft == LC_FTYPE_Q5_K_M && more) type = LC_TYPE_Q6_K;
        else if (ft == LC_FTYPE_Q4_K_S && !r->falcon && i_layer < n_layer / 8) type = LC_TYPE_Q5_K;
        r->i_ffn_down++;
    } else if (ro == ROLE_ATTN_OUTPUT) {
        static const int moe_q5k[] = {LC_FTYPE_Q2_K,   LC_FTYPE_Q3_K_S, LC_FTYPE_Q3_K_M, LC_FTYPE_IQ4_NL,
                                      LC_FTYPE_Q4_K_S, LC_FTYPE_Q4_K_M, LC_FTYPE_IQ4_XS};
        if (r->falcon) {
            if (ft == LC_FTYPE_Q3_K_L) type = LC_TYPE_Q4_K;
        } else if (r->n_expert == 8) {
            if (in_list(ft, moe_q5k, sizeof moe_q5k / sizeof *moe_q5k)) type = LC_TYPE_Q5_K;
        } else {
            if (ft == LC_FTYPE_Q2_K) type = LC_TYPE_Q3_K;
            else if (ft == LC_FTYPE_Q3_K_M) type = LC_TYPE_Q4_K;
            else if (ft == LC_FTYPE_Q3_K_L) type = LC_TYPE_Q5_K;
        }
    }
    return type;
}

/* A type whose blocks do not divide the row length falls back to a 32-element type of similar size, or F16 when
** even that does not fit (llama.cpp's tensor_type_fallback). */
static int fallback_type(recipe *r, const gguf_tensor *t, int type, bool *fell) {
    const uint64_t ncols = t->ne[0];
    *fell = false;
    if (ncols % lc_type_traits_of(type)->blck_size == 0) return type;
    *fell = true;
    r->n_fallback++;
    int fb = type;
    switch (type) {
    case LC_TYPE_IQ4_XS: fb = LC_TYPE_IQ4_NL; break;
    case LC_TYPE_Q2_K:
    case LC_TYPE_Q3_K: fb = LC_TYPE_Q4_0; break;
    case LC_TYPE_Q4_K: fb = LC_TYPE_Q5_0; break;
    case LC_TYPE_Q5_K: fb = LC_TYPE_Q5_1; break;
    case LC_TYPE_Q6_K: fb = LC_TYPE_Q8_0; break;
    default: break; /* a 32-element type: nothing smaller to try */
    }
    if (ncols % lc_type_traits_of(fb)->blck_size != 0) fb = LC_TYPE_F16;
    return fb;
}

static bool is_float_type(int type) { return type == LC_TYPE_F32 || type == LC_TYPE_F16 || type == LC_TYPE_BF16; }

/* Types this file can turn into f32 and back. */
static bool can_read(int type) { return is_float_type(type) || type == LC_TYPE_Q8_0 || lc__quant_ref(type); }
static bool can_write(int type) {
    return is_float_type(type) || type == LC_TYPE_Q8_0 || (lc__quant_ref(type) && lc__quant_ref(type)->vec_dot);
}

/* ---- model facts the recipe needs ---------------------------------------------------------------------------- */

/* An integer key, or the first element of an integer array (per-layer head counts); false when absent. */
static bool meta_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return false;
    const gguf_value *v = &kv->val;
    int64_t x;
    switch (v->type) {
    case GGUF_T_UINT8: case GGUF_T_UINT16: case GGUF_T_UINT32: case GGUF_T_UINT64:
        x = v->v.u > INT64_MAX ? INT64_MAX : (int64_t)v->v.u;
        break;
    case GGUF_T_INT8: case GGUF_T_INT16: case GGUF_T_INT32: case GGUF_T_INT64: x = v->v.i; break;
    case GGUF_T_ARRAY:
        if (v->v.arr.n == 0 || v->v.arr.type == GGUF_T_STRING || v->v.arr.type == GGUF_T_ARRAY ||
            v->v.arr.type == GGUF_T_FLOAT32 || v->v.arr.type == GGUF_T_FLOAT64 || v->v.arr.type == GGUF_T_BOOL)
            return false;
        x = gguf_arr_i64(v, 0);
        break;
    default: return false;
    }
    if (x < 0 || x > UINT32_MAX) return false;
    *out = (uint32_t)x;
    return true;
}

static int recipe_init(recipe *r, const gguf_file *f, int ftype, int base_type) {
    memset(r, 0, sizeof *r);
    r->ftype = ftype;
    r->base_type = base_type;
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch) != 1 || arch.len == 0 || arch.len > 64)
        return LC_ERR(LC_E_FORMAT, "%s: no general.architecture string; is this a model file?", f->path);
    char a[80], key[160];
    snprintf(a, sizeof a, "%.*s", (int)arch.len, arch.ptr);
    r->falcon = !strcmp(a, "falcon");
    snprintf(key, sizeof key, "%s.block_count", a);
    if (!meta_u32(f, key, &r->n_layer) || r->n_layer == 0 || r->n_layer > 4096)
        return LC_ERR(LC_E_FORMAT, "%s: key %s is missing or not a layer count in 1..4096", f->path, key);
    uint32_t n_head = 0, n_head_kv = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", a);
    meta_u32(f, key, &n_head);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", a);
    if (!meta_u32(f, key, &n_head_kv)) n_head_kv = n_head;
    r->n_gqa = n_head_kv ? n_head / n_head_kv : 0;
    snprintf(key, sizeof key, "%s.expert_count", a);
    meta_u32(f, key, &r->n_expert);
    r->is_70b = !strcmp(a, "llama") && r->n_expert != 8 && r->n_layer == 80 && n_head != n_head_kv;
    r->tied = true;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        role ro = role_of(f->tensors[i].name);
        if (ro == ROLE_OUTPUT) r->tied = false;
        if (ro == ROLE_ATTN_V) r->n_attn_v++;
    }
    return LC_OK;
}

/* ---- tensor order: llama.cpp's loader sorts by layer (blk.N., others first), then by name --------------------- */

static int layer_of(const char *name) {
    int l = -1;
    sscanf(name, "blk.%d.", &l);
    return l;
}

static int tensor_order(const void *pa, const void *pb) {
    const gguf_tensor *a = *(const gguf_tensor *const *)pa, *b = *(const gguf_tensor *const *)pb;
    int la = layer_of(a->name), lb = layer_of(b->name);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* ---- conversion ---------------------------------------------------------------------------------------------- */

/* y = x (n elements, a multiple of the type's block) written as type; the quantizers are llama-quantize's. */
static void quantize_row(int type, const float *x, void *y, int64_t n) {
    switch (type) {
    case LC_TYPE_F32: memcpy(y, x, (size_t)n * sizeof(float)); break;
    case LC_TYPE_F16: lc_fp32_to_fp16_row(x, y, n); break;
    case LC_TYPE_BF16: lc_fp32_to_bf16_row(x, y, n); break;
    case LC_TYPE_Q8_0: lc_quantize_row_q8_0_ref(x, y, n); break;
    default: lc__quant_quantize_row(type, x, y, n); break;
    }
}

typedef struct plan_entry {
    const gguf_tensor *t;
    int type_out;
    bool fallback;
    uint64_t n_rows, bytes_out;
    const void *data_out; /* the input's bytes (copied unchanged) or the converted bytes in the scratch buffer */
} plan_entry;

/* One tensor's conversion, shared by the pool's threads: rows are taken in chunks from an atomic counter. */
typedef struct convert_job {
    const plan_entry *e;
    uint8_t *dst;
    uint64_t row_in, row_out, chunk_rows;
    float *rowbuf;          /* n_threads rows of ne[0] floats (unused for F32 input) */
    uint64_t rowbuf_stride; /* floats per thread */
    atomic_ullong next_row, rows_done;
    atomic_llong bad_row; /* first row found with a NaN/Inf (-1: none) */
    /* progress, reported by thread 0 */
    void (*progress)(float, void *);
    void *progress_user;
    uint64_t bytes_before, bytes_total;
} convert_job;

static void convert_rows(void *arg, int ith, int nth) {
    (void)nth;
    convert_job *j = arg;
    const gguf_tensor *t = j->e->t;
    const int64_t n = (int64_t)t->ne[0];
    const uint8_t *src = t->data;
    float *buf = j->rowbuf + (uint64_t)ith * j->rowbuf_stride;
    for (;;) {
        uint64_t r0 = atomic_fetch_add(&j->next_row, j->chunk_rows);
        if (r0 >= j->e->n_rows) break;
        uint64_t r1 = LC_MIN(r0 + j->chunk_rows, j->e->n_rows);
        for (uint64_t r = r0; r < r1; r++) {
            const float *x;
            if (t->type == LC_TYPE_F32 && (uintptr_t)(src + r * j->row_in) % sizeof(float) == 0) {
                x = (const float *)(src + r * j->row_in); /* read in place (unless general.alignment < 4) */
            } else {
                lc_dequantize_row((int)t->type, src + r * j->row_in, buf, n);
                x = buf;
            }
            bool finite = true;
            for (int64_t i = 0; i < n; i++) finite &= isfinite(x[i]) != 0;
            if (!finite) {
                long long none = -1;
                atomic_compare_exchange_strong(&j->bad_row, &none, (long long)r);
                continue;
            }
            quantize_row(j->e->type_out, x, j->dst + r * j->row_out, n);
        }
        uint64_t done = atomic_fetch_add(&j->rows_done, r1 - r0) + (r1 - r0);
        if (ith == 0 && j->progress && j->bytes_total)
            j->progress((float)((double)(j->bytes_before + done * j->row_in) / (double)j->bytes_total),
                        j->progress_user);
    }
}

/* ---- scratch memory for the converted tensors ---------------------------------------------------------------- */
/* The writer borrows every tensor's bytes until it writes the file, so all converted tensors must exist at once.
** They go to a file mapped shared beside the output (unlinked at once), so the kernel can page them out and a model
** larger than RAM still quantizes; when that is not possible (no space reserved, no mmap), to the heap. */
typedef struct scratch {
    uint8_t *p;
    size_t n;
    bool mapped;
} scratch;

static int scratch_new(scratch *s, const char *out_path, uint64_t n) {
    memset(s, 0, sizeof *s);
    if (n == 0) return LC_OK;
    if (n > (uint64_t)SIZE_MAX / 2 || n > (uint64_t)INT64_MAX)
        return LC_ERR(LC_E_NOMEM, "%s: %llu bytes of converted tensors are beyond this machine's address space",
                      out_path, (ull)n);
    s->n = (size_t)n;
    size_t len = strlen(out_path) + 32;
    char *tmp = lc__malloc(len);
    if (tmp) {
        snprintf(tmp, len, "%s.scratch.XXXXXX", out_path);
        int fd = mkstemp(tmp);
        if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == EROFS)) {
            /* the writer could not create its temporary file there either: say so before converting anything */
            int e = LC_ERR(LC_E_IO, "%s: cannot create files in its directory: %s", out_path, strerror(errno));
            lc__free(tmp);
            return e;
        }
        if (fd >= 0) {
            unlink(tmp);
            if (posix_fallocate(fd, 0, (off_t)n) == 0) { /* reserved: no SIGBUS on a full disk later */
                void *p = mmap(NULL, s->n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (p != MAP_FAILED) {
                    s->p = p;
                    s->mapped = true;
                }
            }
            close(fd);
        }
        lc__free(tmp);
    }
    if (!s->p && !(s->p = lc__malloc(s->n)))
        return LC_ERR(LC_E_NOMEM, "%s: out of memory for %llu bytes of converted tensors", out_path, (ull)n);
    return LC_OK;
}

static void scratch_free(scratch *s) {
    if (!s->p) return;
    if (s->mapped) munmap(s->p, s->n);
    else lc__free(s->p);
    s->p = NULL;
}

/* ---- file size ----------------------------------------------------------------------------------------------- */

static uint64_t pad_to(uint64_t x, uint64_t a) { return x + (a - x % a) % a; }

/* Bytes a key/value pair takes in the file: key length, key, then the value's type and bytes. */
static uint64_t kv_bytes_u32(const char *key) { return 8 + strlen(key) + 4 + 4; }

/* Size of the output file: the input's metadata (its last tensor info ends where the header does, and the same keys
** and tensor infos are written) adjusted for the keys quantize adds or drops, then the padded tensor data. */
static uint64_t output_file_bytes(const gguf_file *f, const plan_entry *plan, const bool *dropped) {
    uint64_t meta = 24; /* magic, version, n_tensors, n_kv */
    for (uint64_t i = 0; i < f->n_kv; i++) {
        uint64_t next = i + 1 < f->n_kv ? f->kv[i + 1].offset : 0;
        if (!next) { /* the last key ends where the first tensor info begins */
            next = f->data_offset;
            for (uint64_t k = 0; k < f->n_tensors; k++) next = LC_MIN(next, f->tensors[k].info_offset);
        }
        if (!dropped[i]) meta += next - f->kv[i].offset;
    }
    meta += kv_bytes_u32("general.quantization_version") + kv_bytes_u32("general.file_type");
    for (uint64_t i = 0; i < f->n_tensors; i++)
        meta += 8 + strlen(f->tensors[i].name) + 4 + 8ull * f->tensors[i].n_dims + 4 + 8;
    uint64_t total = pad_to(meta, f->alignment);
    for (uint64_t i = 0; i < f->n_tensors; i++) total += pad_to(plan[i].bytes_out, f->alignment);
    return total;
}

/* ---- the driver ---------------------------------------------------------------------------------------------- */

static int check_not_same_file(const char *in, const char *out) {
    struct stat si, so;
    if (!strcmp(in, out) || (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev &&
                             si.st_ino == so.st_ino))
        return LC_ERR(LC_E_INVALID, "%s: the output is the input file (%s); write to another file", out, in);
    return LC_OK;
}

/* Metadata keys not copied: set anew at the end (as llama.cpp's gguf_set_val moves a key to the end) or dropped. */
static bool key_is_dropped(const char *key) {
    return !strcmp(key, "general.quantization_version") || !strcmp(key, "general.file_type") ||
           !strcmp(key, "split.no") || !strcmp(key, "split.count") || !strcmp(key, "split.tensors.count");
}

int lc_quantize_file(const char *in_path, const char *out_path, const lc_quantize_params *params,
                     lc_quantize_result *res) {
    lc__base_init();
    lc_quantize_params p = params ? *params : lc_quantize_default_params();
    if (res) memset(res, 0, sizeof *res);
    const ftype_info *fi = ftype_find(p.ftype);
    if (!fi) return LC_ERR(LC_E_INVALID, "quantize: file type %d is not one llamac writes (see lc_ftype)", p.ftype);
    if (!in_path || (!p.dry_run && !out_path))
        return LC_ERR(LC_E_INVALID, "quantize: an input and an output path are needed");
    int e;
    if (out_path && (e = check_not_same_file(in_path, out_path))) return e;

    gguf_file *f = NULL;
    const gguf_tensor **order = NULL;
    plan_entry *plan = NULL;
    bool *dropped = NULL;
    gguf_writer *w = NULL;
    lc_pool *pool = NULL;
    float *rowbuf = NULL;
    scratch sc = {0};
    if ((e = gguf_open(in_path, &f))) return e;
    uint32_t split_count = 1;
    if (meta_u32(f, "split.count", &split_count) && split_count > 1) {
        e = LC_ERR(LC_E_UNSUPPORTED, "%s: a split model (%u files); merge the parts first (llama-gguf-split --merge)",
                   in_path, split_count);
        goto done;
    }
    recipe r;
    if ((e = recipe_init(&r, f, fi->ftype, fi->base_type))) goto done;

    const uint64_t nt = f->n_tensors;
    order = lc__calloc(nt ? nt : 1, sizeof *order);
    plan = lc__calloc(nt ? nt : 1, sizeof *plan);
    dropped = lc__calloc(f->n_kv ? f->n_kv : 1, sizeof *dropped);
    if (!order || !plan || !dropped) {
        e = LC_ERR(LC_E_NOMEM, "%s: out of memory for %llu tensors", in_path, (ull)nt);
        goto done;
    }
    for (uint64_t i = 0; i < nt; i++) order[i] = &f->tensors[i];
    qsort(order, nt, sizeof *order, tensor_order);

    /* the plan: a type for every tensor, checked before anything is converted */
    uint64_t conv_bytes_in = 0, conv_bytes_out = 0, max_ne0 = 0;
    for (uint64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = order[i];
        plan_entry *pe = &plan[i];
        pe->t = t;
        pe->type_out = (int)t->type;
        if (is_quantizable(t)) {
            pe->type_out = fi->base_type;
            if (!is_float_type(fi->base_type)) {
                pe->type_out = recipe_type(&r, t, role_of(t->name), &e);
                if (e) goto done;
                pe->type_out = fallback_type(&r, t, pe->type_out, &pe->fallback);
            }
        }
        pe->n_rows = t->ne[1] * t->ne[2] * t->ne[3];
        uint64_t row_out;
        if (!lc_type_row_bytes(pe->type_out, t->ne[0], &row_out) || !lc__mul_ok(row_out, pe->n_rows, &pe->bytes_out)) {
            e = LC_ERR(LC_E_FORMAT, "%s: tensor '%s': %llu x %llu elements do not fit type %s", in_path, t->name,
                       (ull)t->ne[0], (ull)pe->n_rows, lc_type_name(pe->type_out));
            goto done;
        }
        if (pe->type_out == (int)t->type) {
            pe->data_out = t->data;
        } else {
            const char *tin = lc_type_name((int)t->type) ? lc_type_name((int)t->type) : "?";
            if (!can_read((int)t->type) || !can_write(pe->type_out)) {
                e = LC_ERR(LC_E_UNSUPPORTED, "%s: tensor '%s': llamac cannot convert %s to %s", in_path, t->name, tin,
                           lc_type_name(pe->type_out));
                goto done;
            }
            if (!is_float_type((int)t->type) && !p.allow_requantize) {
                e = LC_ERR(LC_E_INVALID,
                           "%s: tensor '%s' is already quantized (%s); converting it to %s compounds the rounding "
                           "errors: start from an F32/F16/BF16 file, or allow it (--allow-requantize)",
                           in_path, t->name, tin, lc_type_name(pe->type_out));
                goto done;
            }
            conv_bytes_in += t->size;
            conv_bytes_out += pe->bytes_out;
            max_ne0 = LC_MAX(max_ne0, t->ne[0]);
        }
        if (res) {
            res->n_elements += t->ne[0] * pe->n_rows;
            res->bytes_in += t->size;
            res->bytes_out += pe->bytes_out;
        }
    }
    for (uint64_t i = 0; i < f->n_kv; i++) dropped[i] = key_is_dropped(f->kv[i].key);
    if (res) {
        res->n_tensors = nt;
        res->n_fallback = r.n_fallback;
        res->file_bytes = output_file_bytes(f, plan, dropped);
    }
    if (p.on_tensor)
        for (uint64_t i = 0; i < nt; i++) {
            const gguf_tensor *t = plan[i].t;
            lc_quantize_tensor qt = {t->name, (int)t->type, plan[i].type_out, t->n_dims,
                                     {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}, t->size, plan[i].bytes_out,
                                     plan[i].fallback, i, nt};
            p.on_tensor(&qt, p.on_tensor_user);
        }
    if (p.dry_run) goto done;

    /* convert */
    if ((e = scratch_new(&sc, out_path, conv_bytes_out))) goto done;
    if ((e = lc_pool_new(p.n_threads, &pool))) goto done;
    const int nth = lc_pool_n_threads(pool);
    if (max_ne0 && !(rowbuf = lc__malloc((size_t)nth * (size_t)max_ne0 * sizeof(float)))) {
        e = LC_ERR(LC_E_NOMEM, "%s: out of memory for row buffers", in_path);
        goto done;
    }
    uint64_t at = 0, bytes_done = 0;
    for (uint64_t i = 0; i < nt; i++) {
        plan_entry *pe = &plan[i];
        if (pe->data_out) continue;
        const gguf_tensor *t = pe->t;
        convert_job job = {.e = pe, .dst = sc.p + at, .rowbuf = rowbuf, .rowbuf_stride = max_ne0,
                           .progress = p.progress, .progress_user = p.progress_user, .bytes_before = bytes_done,
                           .bytes_total = conv_bytes_in};
        job.row_in = t->size / (pe->n_rows ? pe->n_rows : 1);
        job.row_out = pe->bytes_out / (pe->n_rows ? pe->n_rows : 1);
        job.chunk_rows = LC_MAX(1, 16384 / LC_MAX(t->ne[0], 1)); /* ~16K elements per grab, as llama-quantize */
        atomic_init(&job.next_row, 0);
        atomic_init(&job.rows_done, 0);
        atomic_init(&job.bad_row, -1);
        lc_pool_run(pool, convert_rows, &job);
        long long bad = atomic_load(&job.bad_row);
        if (bad >= 0) {
            e = LC_ERR(LC_E_FORMAT, "%s: tensor '%s' has a NaN or infinite value in row %lld; the model is broken "
                       "(re-export it)", in_path, t->name, bad);
            goto done;
        }
        pe->data_out = sc.p + at;
        at += pe->bytes_out;
        bytes_done += t->size;
    }

    /* write: metadata in the input's order, the two keys quantize sets at the end, tensors in plan order */
    if (!(w = gguf_writer_new())) {
        e = LC_ERR(LC_E_NOMEM, "%s: out of memory", out_path);
        goto done;
    }
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (!dropped[i] && (e = gguf_writer_set_value(w, f->kv[i].key, &f->kv[i].val))) goto done;
    if ((e = gguf_writer_set_u32(w, "general.quantization_version", QNT_VERSION)) ||
        (e = gguf_writer_set_u32(w, "general.file_type", (uint32_t)fi->ftype)))
        goto done;
    for (uint64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = plan[i].t;
        if ((e = gguf_writer_add_tensor(w, t->name, (uint32_t)plan[i].type_out, t->n_dims, t->ne, plan[i].data_out,
                                        plan[i].bytes_out)))
            goto done;
    }
    if ((e = gguf_writer_write(w, out_path))) goto done;
    if (res) {
        struct stat st;
        if (stat(out_path, &st) == 0) res->file_bytes = (uint64_t)st.st_size;
    }
done:
    gguf_writer_free(w);
    lc__free(rowbuf);
    lc_pool_free(pool);
    scratch_free(&sc);
    lc__free(dropped);
    lc__free(plan);
    lc__free(order);
    gguf_close(f);
    return e;
}
