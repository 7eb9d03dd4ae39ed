/* synth.c - writes Llama-architecture GGUF files with random weights (tests, demos, benchmarks).
**
** The file has every key and tensor llama.cpp reads for arch "llama" (names and shapes as in its llama model
** loader), a SentencePiece-style ("llama") vocabulary of n_vocab pieces, and optionally a Llama 3.1 rope_freqs
** tensor computed the way convert_hf_to_gguf.py does. Weights are N(0, w_std), norm gains 1 + N(0, w_std). Each row
** has its own PRNG stream derived from (seed, tensor name, row): the output does not depend on the thread count, and
** two files that differ only in rope_freqs, tied output or rope theta have identical weights (tests rely on it).
*/
#include "../gguf/gguf.h"
#include "../quant/types.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

lc_synth_params lc_synth_default_params(void) {
    lc_synth_params p = {
        .n_vocab = 512, .n_embd = 128, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 384,
        .n_ctx_train = 2048, .head_dim = 0, .rope_theta = 10000.0f, .rms_eps = 1e-5f, .tied_output = false,
        .rope_freqs = false, .wtype = LC_TYPE_F32, .seed = 1, .w_std = 0.02f, .name = NULL,
    };
    return p;
}

/* ---- random numbers: splitmix64 to seed, xoshiro256** per row, Box-Muller for the normal ---- */
typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* FNV-1a of a tensor name: the stream of a tensor depends on its name, not its position in the file. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

static void rng_seed(rng *r, uint64_t seed, uint64_t tensor, uint64_t row) {
    uint64_t x = seed ^ (tensor * 0xD1B54A32D192ED03ull) ^ (row * 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in (0, 1]: 53 random bits, never 0 (log below). */
static double rng_uniform(rng *r) { return ((double)(rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); }

/* x[n] = mean + std * N(0,1), by the Box-Muller transform (two normals per pair of uniforms). */
static void rng_normal_fill(rng *r, float *x, int64_t n, float mean, float std) {
    const double two_pi = 6.283185307179586;
    for (int64_t i = 0; i < n; i += 2) {
        double rad = sqrt(-2.0 * log(rng_uniform(r))), ang = two_pi * rng_uniform(r);
        x[i] = mean + std * (float)(rad * cos(ang));
        if (i + 1 < n) x[i + 1] = mean + std * (float)(rad * sin(ang));
    }
}

/* ---- the tensor list ---- */
enum { KIND_MATRIX, KIND_NORM, KIND_ROPE_FREQS };

typedef struct synth_tensor {
    char name[48];
    int kind;
    uint32_t type;
    uint64_t ne0, ne1; /* ne0: row length (contiguous); ne1: rows (1 for vectors) */
    uint64_t size, offset; /* bytes; offset into the scratch area */
} synth_tensor;

static void tensor_add(synth_tensor *t, size_t *n, const char *name, int kind, uint32_t type, uint64_t ne0,
                       uint64_t ne1) {
    synth_tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->kind = kind;
    x->type = type;
    x->ne0 = ne0;
    x->ne1 = ne1;
}

/* Llama 3.1 RoPE frequency factors (rope_type "llama3": factor 8, low_freq_factor 1, high_freq_factor 4, original
** context 8192), one per dimension pair, as convert_hf_to_gguf.py computes them: wavelengths shorter than
** ctx/high keep factor 1, longer than ctx/low get `factor`, in between a smooth interpolation. float32 like its
** torch code. */
static void rope_llama3_factors(float *out, uint32_t head_dim, float theta) {
    const float factor = 8.0f, low = 1.0f, high = 4.0f, old_ctx = 8192.0f;
    const float low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    for (uint32_t i = 0; i < head_dim / 2; i++) {
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        float wavelen = 2.0f * 3.14159265358979323846f / freq;
        if (wavelen < high_wavelen) out[i] = 1.0f;
        else if (wavelen > low_wavelen) out[i] = factor;
        else {
            float smooth = (old_ctx / wavelen - low) / (high - low);
            out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
    }
}

/* Converts one row of float32 into the storage type. */
static void row_store(uint32_t type, const float *x, void *dst, int64_t n) {
    switch (type) {
    case LC_TYPE_F16: lc_fp32_to_fp16_row(x, (lc_fp16 *)dst, n); break;
    case LC_TYPE_BF16: lc_fp32_to_bf16_row(x, (lc_bf16 *)dst, n); break;
    case LC_TYPE_Q8_0: lc_quantize_row_q8_0_ref(x, (block_q8_0 *)dst, n); break;
    default: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    }
}

typedef struct fill_job {
    const lc_synth_params *p;
    const synth_tensor *t;
    uint64_t name_hash, row_bytes;
    uint8_t *dst;
    float *scratch; /* nth * ne0 floats */
} fill_job;

static void fill_rows(void *arg, int ith, int nth) {
    fill_job *j = arg;
    const synth_tensor *t = j->t;
    float *x = j->scratch + (size_t)ith * t->ne0;
    float std = j->p->w_std > 0 ? j->p->w_std : 0.02f;
    uint64_t r0 = t->ne1 * (uint64_t)ith / (uint64_t)nth, r1 = t->ne1 * (uint64_t)(ith + 1) / (uint64_t)nth;
    for (uint64_t r = r0; r < r1; r++) {
        rng g;
        rng_seed(&g, j->p->seed, j->name_hash, r);
        rng_normal_fill(&g, x, (int64_t)t->ne0, t->kind == KIND_NORM ? 1.0f : 0.0f, std);
        row_store(t->type, x, j->dst + r * j->row_bytes, (int64_t)t->ne0);
    }
}

/* ---- the vocabulary: <unk> <s> </s>, 256 byte tokens, then printable pieces ---- */
#define SYNTH_N_SPECIAL 3
#define SYNTH_N_FIXED (SYNTH_N_SPECIAL + 256)
enum { TOKTYPE_NORMAL = 1, TOKTYPE_UNKNOWN = 2, TOKTYPE_CONTROL = 3, TOKTYPE_BYTE = 6 };

typedef struct synth_vocab {
    char **pieces;
    float *scores;
    int32_t *types;
    uint32_t n;
} synth_vocab;

static void vocab_free(synth_vocab *v) {
    if (v->pieces)
        for (uint32_t i = 0; i < v->n; i++) lc__free(v->pieces[i]);
    lc__free(v->pieces);
    lc__free(v->scores);
    lc__free(v->types);
}

/* Printable piece number k (0-based, unique): SentencePiece's word-start marker U+2581 alone, single
** characters, the marker + each letter/digit, then strings of lowercase letters of length 2, 3, ... each bare and
** with the marker (so every prefix of a piece is a piece too, which BPE merging needs). */
static void piece_text(uint64_t k, char *buf, size_t cap) {
    static const char singles[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()";
    static const char *const mark = "\xE2\x96\x81"; /* U+2581 */
    const uint64_t n_single = sizeof singles - 1, n_marked = 62;
    if (k == 0) { snprintf(buf, cap, "%s", mark); return; }
    k--;
    if (k < n_single) { snprintf(buf, cap, "%c", singles[k]); return; }
    k -= n_single;
    if (k < n_marked) { snprintf(buf, cap, "%s%c", mark, singles[k]); return; }
    k -= n_marked;
    uint64_t count = 26 * 26;
    size_t len = 2;
    while (k >= 2 * count) { k -= 2 * count; count *= 26; len++; }
    bool marked = k & 1;
    uint64_t idx = k >> 1;
    char s[32];
    for (size_t i = 0; i < len; i++) { s[len - 1 - i] = (char)('a' + idx % 26); idx /= 26; }
    s[len] = 0;
    snprintf(buf, cap, "%s%s", marked ? mark : "", s);
}

static int vocab_build(synth_vocab *v, uint32_t n) {
    v->n = n;
    v->pieces = lc__calloc(n, sizeof *v->pieces);
    v->scores = lc__calloc(n, sizeof *v->scores);
    v->types = lc__calloc(n, sizeof *v->types);
    if (!v->pieces || !v->scores || !v->types) return LC_ERR(LC_E_NOMEM, "lc_synth_write: vocabulary of %u pieces", n);
    char buf[64];
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0) { snprintf(buf, sizeof buf, "<unk>"); v->types[i] = TOKTYPE_UNKNOWN; }
        else if (i == 1) { snprintf(buf, sizeof buf, "<s>"); v->types[i] = TOKTYPE_CONTROL; }
        else if (i == 2) { snprintf(buf, sizeof buf, "</s>"); v->types[i] = TOKTYPE_CONTROL; }
        else if (i < SYNTH_N_FIXED) { snprintf(buf, sizeof buf, "<0x%02X>", i - SYNTH_N_SPECIAL); v->types[i] = TOKTYPE_BYTE; }
        else {
            piece_text(i - SYNTH_N_FIXED, buf, sizeof buf);
            v->types[i] = TOKTYPE_NORMAL;
            v->scores[i] = -(float)(i - SYNTH_N_FIXED); /* earlier (shorter) pieces merge first */
        }
        if (!(v->pieces[i] = lc__strdup(buf))) return LC_ERR(LC_E_NOMEM, "lc_synth_write: vocabulary piece %u", i);
    }
    return LC_OK;
}

/* ---- scratch area for all tensor data (the writer borrows it until it has written the file) ----
** Large models (the 1B benchmark shape is 2.5 GB at F16) use a MAP_SHARED mapping of an unlinked temporary file
** next to the output, so the kernel can write the pages out instead of holding them all in RAM. */
#define SCRATCH_FILE_MIN (64ull << 20)

typedef struct scratch {
    uint8_t *p;
    uint64_t size;
    bool mapped;
} scratch;

static int scratch_alloc(scratch *s, uint64_t size, const char *path) {
    s->size = size ? size : 1;
    s->mapped = false;
    if (size >= SCRATCH_FILE_MIN && size <= (uint64_t)SIZE_MAX) {
        size_t plen = strlen(path) + 32;
        char *tmpl = lc__malloc(plen);
        if (!tmpl) return LC_ERR(LC_E_NOMEM, "lc_synth_write: path");
        snprintf(tmpl, plen, "%s.scratch.XXXXXX", path);
        int fd = mkstemp(tmpl);
        if (fd >= 0) {
            unlink(tmpl);
            if (ftruncate(fd, (off_t)size) == 0) {
                void *m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (m != MAP_FAILED) { s->p = m; s->mapped = true; }
            }
            close(fd);
        }
        lc__free(tmpl);
        if (s->mapped) return LC_OK;
    }
    if (size > (uint64_t)SIZE_MAX || !(s->p = lc__malloc((size_t)s->size)))
        return LC_ERR(LC_E_NOMEM, "lc_synth_write: %llu bytes of tensor data for %s", (unsigned long long)size, path);
    return LC_OK;
}

static void scratch_free(scratch *s) {
    if (!s->p) return;
    if (s->mapped) munmap(s->p, (size_t)s->size);
    else lc__free(s->p);
    s->p = NULL;
}

/* llama.cpp's LLAMA_FTYPE of a file whose matrices are all of one type. */
static uint32_t ftype_of(int wtype) {
    switch (wtype) {
    case LC_TYPE_F16: return 1;
    case LC_TYPE_Q8_0: return 7;
    case LC_TYPE_BF16: return 32;
    default: return 0;
    }
}

static int check_params(const lc_synth_params *p, uint32_t head_dim) {
    if (p->wtype != LC_TYPE_F32 && p->wtype != LC_TYPE_F16 && p->wtype != LC_TYPE_BF16 && p->wtype != LC_TYPE_Q8_0)
        return LC_ERR(LC_E_INVALID, "lc_synth_write: weight type %d (%s) not supported; use F32, F16, BF16 or Q8_0",
                      p->wtype, lc_type_name(p->wtype) ? lc_type_name(p->wtype) : "unknown");
    if (p->n_vocab < SYNTH_N_FIXED || p->n_vocab > (1u << 22))
        return LC_ERR(LC_E_INVALID, "lc_synth_write: n_vocab %u must be in [%d, %u] (3 control + 256 byte tokens first)",
                      p->n_vocab, SYNTH_N_FIXED, 1u << 22);
    if (p->n_embd == 0 || p->n_embd > 65536 || p->n_layer == 0 || p->n_layer > 1024 || p->n_ff == 0 ||
        p->n_ff > (1u << 20) || p->n_ctx_train == 0)
        return LC_ERR(LC_E_INVALID, "lc_synth_write: n_embd %u, n_layer %u, n_ff %u, n_ctx_train %u out of range",
                      p->n_embd, p->n_layer, p->n_ff, p->n_ctx_train);
    if (p->n_head == 0 || p->n_head_kv == 0 || p->n_head % p->n_head_kv != 0 || p->n_head > 1024)
        return LC_ERR(LC_E_INVALID, "lc_synth_write: n_head %u must be a positive multiple of n_head_kv %u", p->n_head,
                      p->n_head_kv);
    if (p->head_dim == 0 && p->n_embd % p->n_head != 0)
        return LC_ERR(LC_E_INVALID, "lc_synth_write: n_embd %u is not a multiple of n_head %u; set head_dim",
                      p->n_embd, p->n_head);
    if (head_dim == 0 || head_dim % 2 != 0 || head_dim > 1024)
        return LC_ERR(LC_E_INVALID, "lc_synth_write: head_dim %u must be even and in [2, 1024] (RoPE rotates pairs)",
                      head_dim);
    if (!(p->rope_theta > 0) || !(p->rms_eps > 0) || !(p->w_std >= 0) || !isfinite(p->w_std))
        return LC_ERR(LC_E_INVALID, "lc_synth_write: rope_theta %g and rms_eps %g must be > 0, w_std %g >= 0",
                      (double)p->rope_theta, (double)p->rms_eps, (double)p->w_std);
    if (p->wtype == LC_TYPE_Q8_0 && (p->n_embd % QK8_0 || p->n_ff % QK8_0 || (p->n_head * head_dim) % QK8_0))
        return LC_ERR(LC_E_INVALID, "lc_synth_write: Q8_0 needs n_embd %u, n_ff %u and n_head*head_dim %u to be "
                      "multiples of %d", p->n_embd, p->n_ff, p->n_head * head_dim, QK8_0);
    return LC_OK;
}

/* Sets the metadata: general.*, llama.* hyperparameters and the tokenizer. */
static int set_metadata(gguf_writer *w, const lc_synth_params *p, uint32_t head_dim, const synth_vocab *v) {
    int r = LC_OK;
#define SET(call) do { if ((r = (call)) != LC_OK) return r; } while (0)
    SET(gguf_writer_set_str(w, "general.architecture", "llama"));
    SET(gguf_writer_set_str(w, "general.name", p->name ? p->name : "llamac-random"));
    SET(gguf_writer_set_str(w, "general.description",
                            "random weights written by llamac (lc_synth_write): not a trained model, output is noise"));
    SET(gguf_writer_set_u32(w, "general.file_type", ftype_of(p->wtype)));
    if (p->wtype == LC_TYPE_Q8_0) SET(gguf_writer_set_u32(w, "general.quantization_version", 2));
    SET(gguf_writer_set_u32(w, "llama.context_length", p->n_ctx_train));
    SET(gguf_writer_set_u32(w, "llama.embedding_length", p->n_embd));
    SET(gguf_writer_set_u32(w, "llama.block_count", p->n_layer));
    SET(gguf_writer_set_u32(w, "llama.feed_forward_length", p->n_ff));
    SET(gguf_writer_set_u32(w, "llama.attention.head_count", p->n_head));
    SET(gguf_writer_set_u32(w, "llama.attention.head_count_kv", p->n_head_kv));
    SET(gguf_writer_set_u32(w, "llama.rope.dimension_count", head_dim)); /* llama.cpp requires n_rot == head_dim */
    SET(gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_theta));
    SET(gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", p->rms_eps));
    if (head_dim != p->n_embd / p->n_head || p->n_embd % p->n_head) {
        SET(gguf_writer_set_u32(w, "llama.attention.key_length", head_dim));
        SET(gguf_writer_set_u32(w, "llama.attention.value_length", head_dim));
    }
    SET(gguf_writer_set_u32(w, "llama.vocab_size", p->n_vocab));
    SET(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
    SET(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces, v->n));
    SET(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_T_FLOAT32, v->scores, v->n));
    SET(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, v->types, v->n));
    SET(gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    SET(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
    SET(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
    SET(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true));
    SET(gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false));
#undef SET
    return r;
}

int lc_synth_write(const char *path, const lc_synth_params *p) {
    if (!path || !p) return LC_ERR(LC_E_INVALID, "lc_synth_write: path and params must not be NULL");
    lc__base_init();
    const uint32_t head_dim = p->head_dim ? p->head_dim : (p->n_head ? p->n_embd / p->n_head : 0);
    int r = check_params(p, head_dim);
    if (r != LC_OK) return r;
    const uint64_t n_embd = p->n_embd, n_ff = p->n_ff, n_vocab = p->n_vocab;
    const uint64_t n_q = (uint64_t)p->n_head * head_dim, n_kv = (uint64_t)p->n_head_kv * head_dim;
    const uint32_t wt = (uint32_t)p->wtype;

    size_t n_t = 0, cap = 4 + 9 * (size_t)p->n_layer;
    synth_tensor *t = lc__calloc(cap, sizeof *t);
    if (!t) return LC_ERR(LC_E_NOMEM, "lc_synth_write: tensor list");
    char name[48];
    tensor_add(t, &n_t, "token_embd.weight", KIND_MATRIX, wt, n_embd, n_vocab);
    if (p->rope_freqs) tensor_add(t, &n_t, "rope_freqs.weight", KIND_ROPE_FREQS, LC_TYPE_F32, head_dim / 2, 1);
    for (uint32_t l = 0; l < p->n_layer; l++) {
        static const struct { const char *suffix; int kind; } parts[] = {
            {"attn_norm", KIND_NORM}, {"attn_q", KIND_MATRIX},   {"attn_k", KIND_MATRIX},
            {"attn_v", KIND_MATRIX},  {"attn_output", KIND_MATRIX}, {"ffn_norm", KIND_NORM},
            {"ffn_gate", KIND_MATRIX}, {"ffn_up", KIND_MATRIX},   {"ffn_down", KIND_MATRIX},
        };
        /* shapes as llama.cpp's loader asks for them: {ne0 = input width, ne1 = output rows} */
        const uint64_t shape[9][2] = {{n_embd, 1}, {n_embd, n_q},  {n_embd, n_kv}, {n_embd, n_kv}, {n_q, n_embd},
                                      {n_embd, 1}, {n_embd, n_ff}, {n_embd, n_ff}, {n_ff, n_embd}};
        for (int k = 0; k < 9; k++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, parts[k].suffix);
            tensor_add(t, &n_t, name, parts[k].kind, parts[k].kind == KIND_NORM ? LC_TYPE_F32 : wt, shape[k][0],
                       shape[k][1]);
        }
    }
    tensor_add(t, &n_t, "output_norm.weight", KIND_NORM, LC_TYPE_F32, n_embd, 1);
    if (!p->tied_output) tensor_add(t, &n_t, "output.weight", KIND_MATRIX, wt, n_embd, n_vocab);

    uint64_t total = 0, max_ne0 = 0;
    for (size_t i = 0; i < n_t; i++) {
        uint64_t row;
        if (!lc_type_row_bytes((int)t[i].type, t[i].ne0, &row) || !lc__mul_ok(row, t[i].ne1, &t[i].size) ||
            !lc__add_ok(total, t[i].size, &total)) {
            lc__free(t);
            return LC_ERR(LC_E_INVALID, "lc_synth_write: tensor %s [%llu x %llu] of type %d: size overflows or "
                          "the row is not a whole number of blocks", t[i].name, (unsigned long long)t[i].ne0,
                          (unsigned long long)t[i].ne1, (int)t[i].type);
        }
        t[i].offset = total - t[i].size;
        if (t[i].ne0 > max_ne0) max_ne0 = t[i].ne0;
    }

    synth_vocab v = {0};
    scratch s = {0};
    lc_pool *pool = NULL;
    gguf_writer *w = NULL;
    float *rowbuf = NULL;
    int nth = lc_n_cores();
    if (nth < 1) nth = 1;
    if (nth > 64) nth = 64;
    if ((r = vocab_build(&v, p->n_vocab)) != LC_OK) goto done;
    if ((r = scratch_alloc(&s, total, path)) != LC_OK) goto done;
    if (!(rowbuf = lc__malloc((size_t)max_ne0 * (size_t)nth * sizeof(float)))) {
        r = LC_ERR(LC_E_NOMEM, "lc_synth_write: row buffers");
        goto done;
    }
    if (total >= (16ull << 20) && nth > 1 && (r = lc_pool_new(nth, &pool)) != LC_OK) goto done;
    if (!(w = gguf_writer_new())) {
        r = LC_ERR(LC_E_NOMEM, "lc_synth_write: GGUF writer");
        goto done;
    }
    if ((r = set_metadata(w, p, head_dim, &v)) != LC_OK) goto done;

    for (size_t i = 0; i < n_t; i++) {
        uint8_t *dst = s.p + t[i].offset;
        if (t[i].kind == KIND_ROPE_FREQS) {
            rope_llama3_factors(rowbuf, head_dim, p->rope_theta);
            memcpy(dst, rowbuf, (size_t)t[i].size);
        } else {
            fill_job j = {.p = p, .t = &t[i], .name_hash = name_hash(t[i].name), .row_bytes = t[i].size / t[i].ne1, .dst = dst,
                          .scratch = rowbuf};
            if (pool && t[i].ne1 >= 64) lc_pool_run(pool, fill_rows, &j);
            else fill_rows(&j, 0, 1);
        }
        uint64_t ne[2] = {t[i].ne0, t[i].ne1};
        if ((r = gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].kind == KIND_MATRIX ? 2 : 1, ne, dst, t[i].size)) != LC_OK)
            goto done;
    }
    r = gguf_writer_write(w, path);
    if (r != LC_OK) r = lc__error_prefix(r, "lc_synth_write: ");

done:
    gguf_writer_free(w);
    lc_pool_free(pool);
    lc__free(rowbuf);
    scratch_free(&s);
    vocab_free(&v);
    lc__free(t);
    return r;
}
