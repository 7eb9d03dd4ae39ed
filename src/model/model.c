/* model.c - loading a Llama model: hyperparameters from the llama.* keys, every tensor checked for presence, type
** and shape, weights bound to the mapped file, the vocabulary; plus the read-only public queries on a model.
**
** Facts from llama.cpp's loader (src/models/llama.cpp, llama-model.cpp): output.weight absent means tied to
** token_embd; rope_freqs.weight holds per-pair frequency divisors (Llama 3.1/3.2 scaling); rope.scaling.factor (or
** the older rope.scale_linear) divides positions for linear scaling; head_dim comes from attention.key_length when
** present, else n_embd / n_head; n_rot must equal head_dim for this architecture.
*/
#include "model.h"

#include "../kernels/kernels.h"
#include "../quant/types.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/mman.h>

lc_model_params lc_model_default_params(void) {
    lc_model_params p;
    memset(&p, 0, sizeof p);
    return p;
}

/* ---- keys ---- */

static int get_u32(const gguf_file *f, const char *arch, const char *suffix, bool required, uint32_t *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int r = gguf_get_u32(f, key, out);
    if (r < 0) return r;
    if (r == 0 && required)
        return LC_ERR(LC_E_FORMAT, "%s: required key '%s' is missing", f->path, key);
    return LC_OK;
}

static int get_f32(const gguf_file *f, const char *arch, const char *suffix, float *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int r = gguf_get_f32(f, key, out);
    return r < 0 ? r : LC_OK;
}

/* ---- tensors ---- */

static int bind(const gguf_file *f, const char *name, bool required, uint64_t ne0, uint64_t ne1, lc_weight *w) {
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (!required) return LC_OK;
        return LC_ERR(LC_E_FORMAT, "%s: tensor '%s' is missing", f->path, name);
    }
    bool shape_ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!shape_ok)
        return LC_ERR(LC_E_FORMAT, "%s: tensor '%s' has shape [%llu, %llu, %llu, %llu]; the hyperparameters require [%llu, %llu]",
                      f->path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                      (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (unsigned long long)ne0,
                      (unsigned long long)ne1);
    w->name = t->name;
    w->type = (int)t->type;
    w->data = t->data;
    w->ne[0] = ne0;
    w->ne[1] = ne1;
    uint64_t rb = 0;
    if (!lc_type_row_bytes(w->type, ne0, &rb))
        return LC_ERR(LC_E_FORMAT, "%s: tensor '%s': row of %llu elements is not a whole number of %s blocks", f->path,
                      name, (unsigned long long)ne0, lc_type_name(w->type) ? lc_type_name(w->type) : "?");
    w->row_bytes = (size_t)rb;
    return LC_OK;
}

static const char *supported_list(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS";
}

/* A matrix used in a matmul: its type must have a kernel. */
static int check_matmul_type(const gguf_file *f, const lc_weight *w) {
    const lc_kernels *k = lc_kernels_get();
    const lc_type_traits *tt = lc_type_traits_of(w->type);
    if (!tt->supported || !k->vec_dot[w->type] || lc_vec_dot_type(w->type) < 0)
        return LC_ERR(LC_E_UNSUPPORTED, "%s: tensor '%s' has type %s, which this build cannot compute with (supported: %s)",
                      f->path, w->name, tt->name ? tt->name : "unknown", supported_list());
    return LC_OK;
}

/* A vector used elementwise (norm gains, rope factors): returned as f32, converting into model-owned memory. */
static int bind_vec(lc_model *m, const char *name, bool required, uint64_t n, const float **out) {
    lc_weight w;
    *out = NULL;
    int r = bind(m->file, name, required, n, 1, &w);
    if (r || !w.data) return r;
    if (w.type == LC_TYPE_F32 && ((uintptr_t)w.data % 4) == 0) {
        *out = w.data;
        return LC_OK;
    }
    const lc_type_traits *tt = lc_type_traits_of(w.type);
    if (!tt->supported)
        return LC_ERR(LC_E_UNSUPPORTED, "%s: tensor '%s' has type %s, which this build cannot read (supported: %s)",
                      m->file->path, name, tt->name ? tt->name : "unknown", supported_list());
    float *v = lc__malloc(n * sizeof(float));
    float **list = lc__realloc(m->owned_vecs, (m->n_owned_vecs + 1) * sizeof *list);
    if (!v || !list) {
        lc__free(v);
        if (list) m->owned_vecs = list;
        return LC_ERR(LC_E_NOMEM, "%s: out of memory converting '%s'", m->file->path, name);
    }
    m->owned_vecs = list;
    m->owned_vecs[m->n_owned_vecs++] = v;
    lc_dequantize_row(w.type, w.data, v, (int64_t)n);
    *out = v;
    return LC_OK;
}

static int load_hparams(lc_model *m) {
    const gguf_file *f = m->file;
    lc_hparams *hp = &m->hp;
    gguf_str arch_s = {0};
    int r = gguf_get_str(f, "general.architecture", &arch_s);
    if (r < 0) return r;
    char arch[64] = "llama";
    if (r == 1) {
        if (arch_s.len >= sizeof arch) arch_s.len = sizeof arch - 1;
        memcpy(arch, arch_s.ptr, arch_s.len);
        arch[arch_s.len] = 0;
        if (strcmp(arch, "llama") != 0)
            return LC_ERR(LC_E_UNSUPPORTED, "%s: architecture '%s' is not supported (llamac runs 'llama' models)", f->path,
                          arch);
    }
    if ((r = get_u32(f, arch, "embedding_length", true, &hp->n_embd)) ||
        (r = get_u32(f, arch, "block_count", true, &hp->n_layer)) ||
        (r = get_u32(f, arch, "feed_forward_length", true, &hp->n_ff)) ||
        (r = get_u32(f, arch, "attention.head_count", true, &hp->n_head)))
        return r;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 2048;
    if ((r = get_u32(f, arch, "attention.head_count_kv", false, &hp->n_head_kv)) ||
        (r = get_u32(f, arch, "context_length", false, &hp->n_ctx_train)))
        return r;
    if (hp->n_embd == 0 || hp->n_embd > 65536 || hp->n_layer == 0 || hp->n_layer > 1024 || hp->n_ff == 0 ||
        hp->n_ff > 1u << 20 || hp->n_head == 0 || hp->n_head > 1024)
        return LC_ERR(LC_E_FORMAT, "%s: implausible hyperparameters: n_embd %u, n_layer %u, n_ff %u, n_head %u", f->path,
                      hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head);
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv)
        return LC_ERR(LC_E_FORMAT, "%s: head_count %u is not a multiple of head_count_kv %u", f->path, hp->n_head,
                      hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    uint32_t vlen = 0;
    if ((r = get_u32(f, arch, "attention.key_length", false, &hp->head_dim)) ||
        (r = get_u32(f, arch, "attention.value_length", false, &vlen)))
        return r;
    if (vlen && vlen != hp->head_dim)
        return LC_ERR(LC_E_UNSUPPORTED, "%s: key_length %u differs from value_length %u", f->path, hp->head_dim, vlen);
    if (hp->head_dim == 0 || hp->head_dim % 2 || hp->head_dim > 1024)
        return LC_ERR(LC_E_FORMAT, "%s: head dimension %u must be even and at most 1024", f->path, hp->head_dim);
    hp->n_rot = hp->head_dim;
    if ((r = get_u32(f, arch, "rope.dimension_count", false, &hp->n_rot))) return r;
    if (hp->n_rot != hp->head_dim)
        return LC_ERR(LC_E_FORMAT, "%s: rope.dimension_count %u must equal the head dimension %u for llama", f->path,
                      hp->n_rot, hp->head_dim);
    hp->rope_theta = 10000.0f;
    hp->rms_eps = 1e-5f;
    float scale = 0.0f;
    if ((r = get_f32(f, arch, "rope.freq_base", &hp->rope_theta)) ||
        (r = get_f32(f, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) ||
        (r = get_f32(f, arch, "rope.scaling.factor", &scale)))
        return r;
    if (scale == 0.0f && (r = get_f32(f, arch, "rope.scale_linear", &scale))) return r;
    char skey[256];
    snprintf(skey, sizeof skey, "%s.rope.scaling.type", arch);
    gguf_str stype;
    if ((r = gguf_get_str(f, skey, &stype)) < 0) return r;
    if (r == 1 && !(stype.len == 6 && memcmp(stype.ptr, "linear", 6) == 0) &&
        !(stype.len == 4 && memcmp(stype.ptr, "none", 4) == 0))
        return LC_ERR(LC_E_UNSUPPORTED, "%s: rope scaling type '%.*s' is not supported (linear, none)", f->path,
                      (int)LC_MIN(stype.len, 64), stype.ptr);
    m->rope_freq_scale = scale == 0.0f ? 1.0f : 1.0f / scale;
    if (!(hp->rope_theta > 0.0f) || !isfinite(hp->rope_theta) || !(hp->rms_eps >= 0.0f) || !isfinite(m->rope_freq_scale))
        return LC_ERR(LC_E_FORMAT, "%s: bad rope.freq_base %g, rms epsilon %g or rope scale %g", f->path,
                      (double)hp->rope_theta, (double)hp->rms_eps, (double)scale);
    /* vocabulary size: the embedding matrix is authoritative */
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te) return LC_ERR(LC_E_FORMAT, "%s: tensor 'token_embd.weight' is missing", f->path);
    if (te->n_dims != 2 || te->ne[1] == 0 || te->ne[1] > (1u << 24))
        return LC_ERR(LC_E_FORMAT, "%s: tensor 'token_embd.weight' must be 2-D with at most 2^24 rows", f->path);
    hp->n_vocab = (uint32_t)te->ne[1];
    uint32_t vs = 0;
    if ((r = get_u32(f, arch, "vocab_size", false, &vs))) return r;
    if (vs && vs != hp->n_vocab)
        return LC_ERR(LC_E_FORMAT, "%s: %s.vocab_size is %u but token_embd.weight has %u rows", f->path, arch, vs,
                      hp->n_vocab);
    uint32_t ft = 0;
    hp->ftype = -1;
    if ((r = gguf_get_u32(f, "general.file_type", &ft)) < 0) return r;
    return LC_OK;
}

static int bind_weights(lc_model *m) {
    const gguf_file *f = m->file;
    lc_hparams *hp = &m->hp;
    const uint64_t n_embd = hp->n_embd, n_q = (uint64_t)hp->n_head * hp->head_dim,
                   n_kv = (uint64_t)hp->n_head_kv * hp->head_dim, n_ff = hp->n_ff, n_vocab = hp->n_vocab;
    int r;
    if ((r = bind(f, "token_embd.weight", true, n_embd, n_vocab, &m->tok_embd))) return r;
    if (!lc_type_traits_of(m->tok_embd.type)->supported) return check_matmul_type(f, &m->tok_embd);
    if ((r = bind_vec(m, "output_norm.weight", true, n_embd, &m->output_norm))) return r;
    if ((r = bind(f, "output.weight", false, n_embd, n_vocab, &m->output))) return r;
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output) m->output = m->tok_embd;
    if ((r = check_matmul_type(f, &m->output))) return r;
    if ((r = bind_vec(m, "rope_freqs.weight", false, hp->n_rot / 2, &m->rope_freqs))) return r;
    hp->has_rope_freqs = m->rope_freqs != NULL;
    m->layers = lc__calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) return LC_ERR(LC_E_NOMEM, "%s: out of memory", f->path);
    int counts[LC_TYPE_COUNT] = {0};
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        lc_layer *L = &m->layers[il];
        char nm[96];
#define NAME(s) (snprintf(nm, sizeof nm, "blk.%u." s ".weight", il), nm)
        if ((r = bind_vec(m, NAME("attn_norm"), true, n_embd, &L->attn_norm)) ||
            (r = bind_vec(m, NAME("ffn_norm"), true, n_embd, &L->ffn_norm)) ||
            (r = bind(f, NAME("attn_q"), true, n_embd, n_q, &L->wq)) ||
            (r = bind(f, NAME("attn_k"), true, n_embd, n_kv, &L->wk)) ||
            (r = bind(f, NAME("attn_v"), true, n_embd, n_kv, &L->wv)) ||
            (r = bind(f, NAME("attn_output"), true, n_q, n_embd, &L->wo)) ||
            (r = bind(f, NAME("ffn_gate"), true, n_embd, n_ff, &L->w_gate)) ||
            (r = bind(f, NAME("ffn_up"), true, n_embd, n_ff, &L->w_up)) ||
            (r = bind(f, NAME("ffn_down"), true, n_ff, n_embd, &L->w_down)))
            return r;
#undef NAME
        const lc_weight *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            if ((r = check_matmul_type(f, mats[i]))) return r;
            counts[mats[i]->type]++;
        }
    }
    int best = 0;
    for (int t = 0; t < LC_TYPE_COUNT; t++)
        if (counts[t] > counts[best]) best = t;
    hp->ftype = best;
    /* totals, and a warning for tensors this architecture does not use (llama.cpp refuses those) */
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        m->n_bytes += t->size;
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        const char *n = t->name;
        bool known = !strcmp(n, "token_embd.weight") || !strcmp(n, "output_norm.weight") || !strcmp(n, "output.weight") ||
                     !strcmp(n, "rope_freqs.weight");
        unsigned il;
        char rest[64];
        if (!known && sscanf(n, "blk.%u.%63s", &il, rest) == 2 && il < hp->n_layer) {
            static const char *const parts[] = {"attn_norm.weight", "ffn_norm.weight", "attn_q.weight",
                                                "attn_k.weight",    "attn_v.weight",   "attn_output.weight",
                                                "ffn_gate.weight",  "ffn_up.weight",   "ffn_down.weight"};
            for (size_t j = 0; j < sizeof parts / sizeof *parts; j++) known |= !strcmp(rest, parts[j]);
        }
        if (!known) LC_WARN("%s: tensor '%s' is not used by the llama architecture; ignored", f->path, n);
    }
    return LC_OK;
}

/* Touches every page of the weights once, so the first token does not pay for page faults, with progress. */
static void prefault(lc_model *m, const lc_model_params *p) {
    const gguf_file *f = m->file;
    if (!f->mapped || f->copied || f->size == 0) return; /* a copy is resident already */
    madvise((void *)((uintptr_t)f->base & ~(uintptr_t)4095), f->size, MADV_WILLNEED);
    volatile uint8_t sink = 0;
    const size_t step = 4096, chunk = (size_t)64 << 20;
    for (size_t off = 0; off < f->size; off += chunk) {
        size_t end = LC_MIN(f->size, off + chunk);
        for (size_t o = off; o < end; o += step) sink ^= f->base[o];
        if (p && p->progress) p->progress((float)end / (float)f->size, p->progress_user);
    }
    (void)sink;
}

void lc__weight_row(const lc_weight *w, int64_t row, int64_t col0, int64_t n, float *out) {
    if (w->r8) {
        lc__r8_dequantize(w->type, w->data, w->row_bytes, (int64_t)w->ne[1], row, col0, n, out);
        return;
    }
    const lc_type_traits *tt = lc_type_traits_of(w->type);
    const size_t off = (size_t)(col0 / (int64_t)tt->blck_size) * tt->type_size;
    lc_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)row * w->row_bytes + off, out, n);
}

/* Repacks the matmul weights of the types the kernel variant reads in the r8 layout (kernels.h), in place, when the
** weights are a private copy (never a mapped file: use_mmap keeps the zero-copy load). The token embeddings stay as
** stored unless they are the output too (tied): then the output's products gain what the layers' do, and the
** lookups read a row through lc__weight_row. Decode reads a group of 8 rows as one range and its blocks as whole
** vectors; an F16 or BF16 group of 32 rows is read in the order the float GEMM consumes it: see docs/PERFORMANCE.md.
** (Repacking a 1B F16 model costs ~0.3 s of CPU on Zen 3.) */
static void repack_one(const lc_kernels *k, lc_weight *w, bool *opened, const gguf_file *f) {
    if (!w->data || w->r8 || !k->gemm_r8[w->type] || !lc__r8_packs(w->type, (int64_t)w->ne[0]) ||
        w->ne[1] < (uint64_t)lc__r8_rows(w->type))
        return;
    if (!*opened) { /* the copy is read-only once loaded; the same range back to writable splits no mapping */
        if (mprotect((void *)f->base, f->size, PROT_READ | PROT_WRITE)) return;
        *opened = true;
    }
    if (lc__r8_pack(w->type, (void *)w->data, w->row_bytes, (int64_t)w->ne[1])) w->r8 = true;
}

static void repack_weights(lc_model *m) {
    const gguf_file *f = m->file;
    const lc_kernels *k = lc_kernels_get();
    if (!f->copied || f->size == 0) return;
    bool opened = false;
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        lc_layer *L = &m->layers[il];
        lc_weight *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) repack_one(k, mats[i], &opened, f);
    }
    if (!m->hp.tied_output) {
        repack_one(k, &m->output, &opened, f);
    } else {
        repack_one(k, &m->tok_embd, &opened, f);
        m->output = m->tok_embd;
    }
    if (opened) mprotect((void *)f->base, f->size, PROT_READ);
}

int lc__model_from_file(gguf_file *f, const char *path, lc_model **out) {
    (void)path;
    *out = NULL;
    lc_model *m = lc__calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return LC_ERR(LC_E_NOMEM, "out of memory");
    }
    m->file = f;
    int r = load_hparams(m);
    if (!r) r = bind_weights(m);
    if (r) {
        lc_model_free(m);
        return r;
    }
    *out = m;
    return LC_OK;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int lc_model_load(const char *path, const lc_model_params *params, lc_model **out) {
    lc__base_init();
    *out = NULL;
    if (!path) return LC_ERR(LC_E_INVALID, "lc_model_load: no path given");
    FILE *fp = fopen(path, "rb");
    if (!fp) return LC_ERR(LC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    bool is_gguf = got == 4 && memcmp(magic, "GGUF", 4) == 0;
    gguf_file *f = NULL;
    int r;
    bool llama2c = false;
    /* weights are copied into huge pages unless asked to map them (or only the metadata is wanted) */
    const gguf_load how = {.copy = !(params && (params->use_mmap || params->metadata_only)),
                           .progress = params ? params->progress : NULL,
                           .progress_user = params ? params->progress_user : NULL};
    if (is_gguf || !ends_with(path, ".bin")) {
        r = gguf_open_ex(path, &how, &f);
    } else {
        r = llama2c_open_ex(path, &how, &f);
        llama2c = true;
    }
    if (r) return r;
    lc_model *m = NULL;
    if (params && params->metadata_only) { /* hyperparameters when readable; nothing bound */
        if (!(m = lc__calloc(1, sizeof *m))) {
            gguf_close(f);
            return LC_ERR(LC_E_NOMEM, "out of memory");
        }
        m->file = f;
        if (load_hparams(m)) memset(&m->hp, 0, sizeof m->hp);
        m->hp.ftype = -1;
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            m->n_bytes += t->size;
            m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        }
        *out = m;
        return LC_OK;
    }
    if ((r = lc__model_from_file(f, path, &m))) return r;
    repack_weights(m);
    if (llama2c) {
        char tok[4096];
        const char *tp = params ? params->tokenizer_path : NULL;
        if (!tp) {
            const char *slash = strrchr(path, '/');
            int dir = slash ? (int)(slash - path + 1) : 0;
            snprintf(tok, sizeof tok, "%.*stokenizer.bin", dir, path);
            tp = tok;
            FILE *t = fopen(tp, "rb");
            if (t) fclose(t);
            else tp = NULL; /* no tokenizer beside it: ids only */
        }
        if (tp && (r = lc_vocab_from_llama2c(tp, m->hp.n_vocab, &m->vocab))) {
            lc_model_free(m);
            return r;
        }
        if (!tp) LC_WARN("%s: no tokenizer.bin beside the checkpoint; only token ids can be used", path);
    } else if (gguf_find(f, "tokenizer.ggml.model")) {
        if ((r = lc_vocab_from_gguf(f, &m->vocab))) {
            lc_model_free(m);
            return r;
        }
        if (lc_vocab_n(m->vocab) != m->hp.n_vocab) {
            r = LC_ERR(LC_E_FORMAT, "%s: the tokenizer has %u tokens but token_embd.weight has %u rows", path,
                       lc_vocab_n(m->vocab), m->hp.n_vocab);
            lc_model_free(m);
            return r;
        }
    } else {
        LC_WARN("%s: no tokenizer in the file; only token ids can be used", path);
    }
    prefault(m, params);
    *out = m;
    return LC_OK;
}

void lc_model_free(lc_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_owned_vecs; i++) lc__free(m->owned_vecs[i]);
    lc__free(m->owned_vecs);
    lc__free(m->layers);
    lc_vocab_free(m->vocab);
    gguf_close(m->file);
    lc__free(m);
}

/* ---- queries ---- */

const lc_hparams *lc_model_hparams(const lc_model *m) { return &m->hp; }
uint64_t lc_model_size_bytes(const lc_model *m) { return m->n_bytes; }
uint64_t lc_model_n_params(const lc_model *m) { return m->n_params; }

void lc_model_desc(const lc_model *m, char *buf, size_t cap) {
    double p = (double)m->n_params;
    const char *t = lc_type_name(m->hp.ftype);
    if (p >= 1e9) snprintf(buf, cap, "llama %.1fB %s", p / 1e9, t ? t : "?");
    else if (p >= 1e6) snprintf(buf, cap, "llama %.1fM %s", p / 1e6, t ? t : "?");
    else snprintf(buf, cap, "llama %.0fK %s", p / 1e3, t ? t : "?");
}

size_t lc_model_meta_count(const lc_model *m) { return (size_t)m->file->n_kv; }

const char *lc_model_meta_get(const lc_model *m, size_t i, char *buf, size_t cap, size_t max_items) {
    if (i >= m->file->n_kv) {
        if (cap) buf[0] = 0;
        return NULL;
    }
    gguf_value_format(&m->file->kv[i].val, buf, cap, max_items);
    return m->file->kv[i].key;
}

const char *lc_model_meta_str(const lc_model *m, const char *key) {
    /* strings in the mapping are not NUL-terminated; keep a per-model cache would need allocation, so only
    ** strings followed by room are returned through a thread-local copy */
    static _Thread_local char buf[4096];
    gguf_str s;
    if (gguf_get_str(m->file, key, &s) != 1) return NULL;
    size_t n = LC_MIN(s.len, sizeof buf - 1);
    memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return buf;
}

size_t lc_model_tensor_count(const lc_model *m) { return (size_t)m->file->n_tensors; }

int lc_model_tensor_get(const lc_model *m, size_t i, lc_tensor_info *out) {
    if (i >= m->file->n_tensors) return LC_ERR(LC_E_RANGE, "tensor index %zu out of range", i);
    const gguf_tensor *t = &m->file->tensors[i];
    out->name = t->name;
    out->type = (int)t->type;
    out->n_dims = t->n_dims;
    memcpy(out->ne, t->ne, sizeof out->ne);
    out->n_bytes = t->size;
    out->offset = m->file->data_offset + t->offset;
    return LC_OK;
}

/* ---- tokens: forwarded to the vocabulary ---- */

int lc_tokenize(const lc_model *m, const char *text, size_t len, unsigned flags, int32_t *ids, size_t cap,
                size_t *n_out) {
    if (!m->vocab) return LC_ERR(LC_E_UNSUPPORTED, "this model has no tokenizer; pass token ids instead");
    return lc_vocab_tokenize(m->vocab, text, len, flags, ids, cap, n_out);
}
int32_t lc_token_bos(const lc_model *m) { return m->vocab ? lc_vocab_bos(m->vocab) : 1; }
int32_t lc_token_eos(const lc_model *m) { return m->vocab ? lc_vocab_eos(m->vocab) : 2; }
bool lc_token_add_bos(const lc_model *m) { return m->vocab ? lc_vocab_add_bos(m->vocab) : true; }
bool lc_token_is_eog(const lc_model *m, int32_t id) { return m->vocab ? lc_vocab_is_eog(m->vocab, id) : id == 2; }
const char *lc_token_piece(const lc_model *m, int32_t id) { return m->vocab ? lc_vocab_piece(m->vocab, id) : NULL; }

int lc_detok_push(const lc_model *m, lc_detok *d, int32_t id, char *out, size_t cap) {
    if (!m->vocab) return LC_ERR(LC_E_UNSUPPORTED, "this model has no tokenizer; token %d cannot be shown as text", id);
    return lc_vocab_detok_push(m->vocab, d, id, out, cap);
}
