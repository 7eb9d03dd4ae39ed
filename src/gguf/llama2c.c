/* llama2c.c - llama2.c checkpoints (Karpathy's run.c / export.py) presented as a synthetic gguf_file.
**
** Legacy "v0": 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
** means an unshared classifier follows), then fp32 arrays: token embedding, per-kind stacks over the layers (attention
** norm, wq, wk, wv, wo, ffn norm, w1, w2, w3), final norm, freq_cis real/imag (seq_len * head_size/2 each, skipped),
** [classifier]. Version 1 (export.py version1_export): u32 magic "ak42", i32 version 1, the 7 int32, u8
** shared_classifier, zero padding to 256 bytes, then norms (attention x L, ffn x L, final), embedding, wq..w3 stacks,
** [classifier]. Matrices are row-major [out][in], i.e. GGML ne = {in, out}; no permutation is needed (llama2.c's
** RoPE rotates adjacent pairs, as GGML's "norm" RoPE mode does). Every size is checked against the file exactly.
*/
#include "gguf.h"

#include <stdio.h>

typedef unsigned long long ull;

#define L2C_MAGIC 0x616b3432u /* "ak42" as a little-endian u32 */

static int32_t rd_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

typedef struct l2c_config {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} l2c_config;

/* One stack of tensors in file order: n_layers of them (or 1 for a global), each ne0 x ne1 floats. */
typedef struct l2c_stack {
    const char *name; /* printf pattern with %d for the layer, or a plain name; NULL: skipped (freq_cis) */
    bool per_layer;
    uint64_t ne0, ne1;
} l2c_stack;

static int fail(const char *name, uint64_t off, const char *fmt, ...) LC_PRINTF(3, 4);
static int fail(const char *name, uint64_t off, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return LC_ERR(LC_E_FORMAT, "%s: offset %llu: %s", name, (ull)off, msg);
}

/* Checks the header values; hdr is the file offset of dim (for messages). */
static int check_config(const char *name, const l2c_config *c, uint64_t hdr) {
    static const char *const field[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                                         "seq_len"};
    const int32_t v[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len};
    for (int i = 0; i < 7; i++)
        if (v[i] <= 0 && !(i == 5 && v[i] < 0 && v[i] != INT32_MIN))
            return fail(name, hdr + 4 * (uint64_t)i, "llama2.c header: %s is %d, must be %s: not a llama2.c checkpoint "
                        "or corrupt", field[i], v[i], i == 5 ? "nonzero (negative: unshared classifier)" : "positive");
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return fail(name, hdr + 16, "llama2.c header: n_kv_heads %d does not divide n_heads %d", c->n_kv_heads,
                    c->n_heads);
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2)
        return fail(name, hdr + 12, "llama2.c header: dim %d is not n_heads %d times an even head size", c->dim,
                    c->n_heads);
    return 0;
}

static int add_kv_u32(gguf_file *f, const char *key, uint64_t off, uint32_t v) {
    gguf_kv *kv = &f->kv[f->n_kv];
    if (!(kv->key = lc__strdup(key))) return LC_E_NOMEM;
    kv->offset = off;
    kv->val.type = GGUF_T_UINT32;
    kv->val.v.u = v;
    f->n_kv++;
    return 0;
}

static int add_kv_f32(gguf_file *f, const char *key, float v) {
    gguf_kv *kv = &f->kv[f->n_kv];
    if (!(kv->key = lc__strdup(key))) return LC_E_NOMEM;
    kv->val.type = GGUF_T_FLOAT32;
    kv->val.v.f = v;
    f->n_kv++;
    return 0;
}

static int add_metadata(gguf_file *f, const l2c_config *c, uint64_t hdr) {
    if (!(f->kv = lc__calloc(16, sizeof *f->kv))) return LC_E_NOMEM;
    gguf_kv *arch = &f->kv[f->n_kv];
    if (!(arch->key = lc__strdup("general.architecture"))) return LC_E_NOMEM;
    arch->val.type = GGUF_T_STRING;
    arch->val.v.s = (gguf_str){"llama", 5}; /* static string, not in the mapping */
    f->n_kv++;
    uint32_t vocab = (uint32_t)(c->vocab_size < 0 ? -c->vocab_size : c->vocab_size);
    int e = 0;
    e = e ? e : add_kv_u32(f, "general.file_type", 0, 0); /* LLAMA_FTYPE_ALL_F32 */
    e = e ? e : add_kv_u32(f, "llama.context_length", hdr + 24, (uint32_t)c->seq_len);
    e = e ? e : add_kv_u32(f, "llama.embedding_length", hdr, (uint32_t)c->dim);
    e = e ? e : add_kv_u32(f, "llama.feed_forward_length", hdr + 4, (uint32_t)c->hidden_dim);
    e = e ? e : add_kv_u32(f, "llama.block_count", hdr + 8, (uint32_t)c->n_layers);
    e = e ? e : add_kv_u32(f, "llama.attention.head_count", hdr + 12, (uint32_t)c->n_heads);
    e = e ? e : add_kv_u32(f, "llama.attention.head_count_kv", hdr + 16, (uint32_t)c->n_kv_heads);
    e = e ? e : add_kv_u32(f, "llama.rope.dimension_count", hdr, (uint32_t)(c->dim / c->n_heads));
    e = e ? e : add_kv_u32(f, "llama.vocab_size", hdr + 20, vocab);
    e = e ? e : add_kv_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f); /* llama2.c's rmsnorm */
    e = e ? e : add_kv_f32(f, "llama.rope.freq_base", 10000.0f);               /* llama2.c's RoPE theta */
    return e;
}

static int parse(gguf_file *f) {
    const uint8_t *p = f->base;
    const char *name = f->path;
    uint64_t size = f->size, hdr, data;
    bool v1 = size >= 4 && (uint32_t)rd_i32(p) == L2C_MAGIC, shared;
    if (v1) {
        if (size < 256) return fail(name, size, "file ends inside the 256-byte llama2.c version 1 header");
        int32_t version = rd_i32(p + 4);
        if (version != 1)
            return fail(name, 4, "llama2.c checkpoint version %d is not supported (only the legacy format and version "
                        "1, fp32; version 2 is int8)", version);
        if (p[36] > 1) return fail(name, 36, "llama2.c header: shared_classifier flag is %u, not 0 or 1", p[36]);
        hdr = 8;
        data = 256;
        f->format = "llama2.c v1";
        f->version = 1;
    } else {
        if (size < 28) return fail(name, size, "file ends inside the 28-byte llama2.c header (%llu bytes)", (ull)size);
        hdr = 0;
        data = 28;
        f->format = "llama2.c v0";
        f->version = 0;
    }
    l2c_config c = {rd_i32(p + hdr), rd_i32(p + hdr + 4), rd_i32(p + hdr + 8), rd_i32(p + hdr + 12),
                    rd_i32(p + hdr + 16), rd_i32(p + hdr + 20), rd_i32(p + hdr + 24)};
    int e = check_config(name, &c, hdr);
    if (e) return e;
    if (v1) {
        if (c.vocab_size < 0) return fail(name, hdr + 20, "llama2.c header: vocab_size %d is negative", c.vocab_size);
        shared = p[36] == 1;
    } else {
        shared = c.vocab_size > 0;
    }
    uint64_t dim = (uint64_t)c.dim, hid = (uint64_t)c.hidden_dim, L = (uint64_t)c.n_layers;
    uint64_t vocab = (uint64_t)(c.vocab_size < 0 ? -(int64_t)c.vocab_size : c.vocab_size);
    uint64_t head = dim / (uint64_t)c.n_heads, kv_dim = head * (uint64_t)c.n_kv_heads;
    uint64_t freq = (uint64_t)c.seq_len * head / 2; /* one freq_cis table, in floats */

    const l2c_stack embd = {"token_embd.weight", false, dim, vocab};
    const l2c_stack an = {"blk.%d.attn_norm.weight", true, dim, 1}, fn = {"blk.%d.ffn_norm.weight", true, dim, 1};
    const l2c_stack on = {"output_norm.weight", false, dim, 1};
    const l2c_stack wq = {"blk.%d.attn_q.weight", true, dim, dim}, wk = {"blk.%d.attn_k.weight", true, dim, kv_dim};
    const l2c_stack wv = {"blk.%d.attn_v.weight", true, dim, kv_dim}, wo = {"blk.%d.attn_output.weight", true, dim, dim};
    const l2c_stack w1 = {"blk.%d.ffn_gate.weight", true, dim, hid}, w2 = {"blk.%d.ffn_down.weight", true, hid, dim};
    const l2c_stack w3 = {"blk.%d.ffn_up.weight", true, dim, hid};
    const l2c_stack fc = {NULL, false, freq, 2}, cls = {"output.weight", false, dim, vocab};
    l2c_stack order[16];
    int n = 0;
    if (v1) {
        const l2c_stack o[] = {an, fn, on, embd, wq, wk, wv, wo, w1, w2, w3};
        for (size_t i = 0; i < sizeof o / sizeof *o; i++) order[n++] = o[i];
    } else {
        const l2c_stack o[] = {embd, an, wq, wk, wv, wo, fn, w1, w2, w3, on, fc};
        for (size_t i = 0; i < sizeof o / sizeof *o; i++) order[n++] = o[i];
    }
    if (!shared) order[n++] = cls;

    /* The exact file size the header implies, with overflow checks, before anything is allocated. */
    uint64_t need = data;
    for (int i = 0; i < n; i++) {
        uint64_t b;
        if (!lc__mul_ok(order[i].ne0, order[i].ne1, &b) || !lc__mul_ok(b, order[i].per_layer ? L : 1, &b) ||
            !lc__mul_ok(b, 4, &b) || !lc__add_ok(need, b, &need))
            return fail(name, hdr, "llama2.c header: the sizes it implies overflow: corrupt header");
    }
    char cfg[200];
    snprintf(cfg, sizeof cfg, "dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d, "
             "seq_len %d, %s classifier", c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
             c.seq_len, shared ? "shared" : "unshared");
    if (size < need)
        return fail(name, size, "file ends after %llu bytes but its llama2.c header (%s) implies %llu: truncated, or "
                    "not a llama2.c checkpoint", (ull)size, cfg, (ull)need);
    if (size > need)
        return fail(name, need, "%llu bytes follow the last tensor that its llama2.c header (%s) implies: not a "
                    "llama2.c checkpoint of this layout (or a different classifier setting)", (ull)(size - need), cfg);

    if ((e = add_metadata(f, &c, hdr))) return e;
    uint64_t n_t = 2 + 9 * L + (shared ? 0 : 1); /* bounded: every layer took bytes of the file */
    if (!(f->tensors = lc__calloc(n_t, sizeof *f->tensors))) return LC_E_NOMEM;
    f->alignment = 4;
    f->data_offset = data;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const l2c_stack *s = &order[i];
        uint64_t bytes = s->ne0 * s->ne1 * 4, count = s->per_layer ? L : 1;
        for (uint64_t l = 0; l < count; l++, off += bytes) {
            if (!s->name) continue;
            gguf_tensor *t = &f->tensors[f->n_tensors];
            char nm[GGUF_MAX_NAME];
            snprintf(nm, sizeof nm, s->name, (int)l);
            if (!(t->name = lc__strdup(nm))) return LC_E_NOMEM;
            f->n_tensors++;
            t->type = LC_TYPE_F32;
            t->n_dims = s->ne1 > 1 ? 2 : 1;
            t->ne[0] = s->ne0;
            t->ne[1] = s->ne1;
            t->ne[2] = t->ne[3] = 1;
            t->offset = off;
            t->size = bytes;
            t->data = p + data + off;
            t->info_offset = hdr;
        }
    }
    return 0;
}

int llama2c_parse(const void *buf, size_t size, const char *name, gguf_file **out) {
    *out = NULL;
    if (!buf && size) return LC_ERR(LC_E_INVALID, "llama2c_parse: NULL buffer");
    gguf_file *f = gguf__new(name, buf, size);
    if (!f) return LC_ERR(LC_E_NOMEM, "%s: out of memory", name ? name : "<buffer>");
    int e = parse(f);
    if (e == LC_E_NOMEM) e = LC_ERR(LC_E_NOMEM, "%s: out of memory", f->path);
    if (e) {
        gguf_close(f);
        return e;
    }
    *out = f;
    return 0;
}

int llama2c_open(const char *path, gguf_file **out) { return llama2c_open_ex(path, NULL, out); }

int llama2c_open_ex(const char *path, const gguf_load *how, gguf_file **out) {
    *out = NULL;
    if (!path) return LC_ERR(LC_E_INVALID, "llama2c_open: no path given");
    const uint8_t *base;
    size_t size;
    bool copied;
    int e = gguf__map(path, how, &base, &size, &copied);
    if (e) return e;
    if ((e = llama2c_parse(base, size, path, out))) {
        gguf__unmap(base, size);
        return e;
    }
    (*out)->mapped = true;
    (*out)->copied = copied;
    return 0;
}
