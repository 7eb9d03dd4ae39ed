/* api.c - the public face of the tokenizer without a model (lc_tokenizer_* in llamac.h): loading a vocabulary from
** whichever tokenizer file the user has, and thin forwards to the vocabulary functions.
**
** lc_tokenizer is lc_vocab itself (llamac.h names the same struct), so a model's vocabulary is handed out as is.
** The file format is told by content, never by name alone: GGUF by its magic, a llama2.c tokenizer.bin by records
** that tile the file exactly, JSON by its first character, else a SentencePiece protobuf.
*/
#include "../model/model.h"
#include "vocab_impl.h"

#include <errno.h>
#include <stdio.h>

/* Largest tokenizer file read into memory (Llama 3's tokenizer.json is 9 MB; a GGUF is mapped, not read). */
#define API_MAX_FILE ((size_t)1 << 31)

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !memcmp(s + a - b, suf, b);
}

static bool file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Counts the records of a llama2.c tokenizer.bin (int32 max_token_length; per token float32 score, int32 length,
** the bytes). The file does not store its count, so buf must be exactly a whole number of records: returns the
** count, or 0 with *bad_off set where the structure breaks. */
static uint32_t llama2c_count(const uint8_t *buf, size_t size, size_t *bad_off) {
    *bad_off = 0;
    if (size < 4) return 0;
    int32_t max_len = (int32_t)rd_u32(buf);
    if (max_len <= 0 || max_len > (1 << 20)) return 0;
    size_t off = 4;
    uint32_t n = 0;
    while (off < size) {
        int32_t len = size - off >= 8 ? (int32_t)rd_u32(buf + off + 4) : -1;
        if (len < 0 || len > max_len || (size_t)len > size - off - 8 || n == (1u << 24)) {
            *bad_off = off;
            return 0;
        }
        off += 8 + (size_t)len;
        n++;
    }
    return n;
}

/* tokenizer_config.json beside a tokenizer.json: "x.tokenizer.json" -> "x.tokenizer_config.json", else the
** directory's tokenizer_config.json. Writes "" when there is none. */
static void find_config(const char *path, char *out, size_t cap) {
    out[0] = 0;
    size_t n = strlen(path);
    if (ends_with(path, "tokenizer.json") && n + 7 < cap) {
        snprintf(out, cap, "%.*stokenizer_config.json", (int)(n - 14), path);
        if (file_exists(out)) return;
    }
    const char *slash = strrchr(path, '/');
    int dir = slash ? (int)(slash - path + 1) : 0;
    if ((size_t)dir + 21 < cap) {
        snprintf(out, cap, "%.*stokenizer_config.json", dir, path);
        if (file_exists(out)) return;
    }
    out[0] = 0;
}

static int load_gguf(const char *path, lc_vocab **out) {
    gguf_file *f = NULL;
    int r = gguf_open(path, &f);
    if (r) return r;
    r = lc_vocab_from_gguf(f, out);
    gguf_close(f);
    return r;
}

static bool is_json(const uint8_t *buf, size_t size) {
    size_t i = 0;
    while (i < size && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')) i++;
    return i < size && (buf[i] == '{' || buf[i] == '[');
}

int lc__tokenizer_from_buf(const uint8_t *buf, size_t size, const char *name, const char *config, size_t config_len,
                           const char *config_name, lc_vocab **out) {
    *out = NULL;
    int r;
    if (size == 0)
        return LC_ERR(LC_E_FORMAT, "%s: the file is empty; expected a tokenizer (GGUF, tokenizer.json, "
                      "tokenizer.model or llama2.c tokenizer.bin)", name);
    if (size >= 4 && !memcmp(buf, "GGUF", 4)) {
        gguf_file *f = NULL;
        if ((r = gguf_parse(buf, size, name, &f))) return r;
        r = lc_vocab_from_gguf(f, out);
        gguf_close(f);
        return r;
    }
    /* before JSON: a tokenizer.bin whose max_token_length is 123 starts with '{'; JSON never tiles as records (its
    ** first four bytes are text, a max_token_length beyond the cap) */
    size_t bad_off = 0;
    uint32_t n = llama2c_count(buf, size, &bad_off);
    if (n >= 3) return lc_vocab_from_llama2c_buf(buf, size, name, n, out);
    if (ends_with(name, ".bin")) /* meant as a tokenizer.bin: say where its structure breaks */
        return LC_ERR(LC_E_FORMAT, "%s: offset %zu: not a llama2.c tokenizer.bin (after a positive int32 "
                      "max_token_length, records of float32 score, int32 length and the bytes must fill the file "
                      "exactly)", name, bad_off);
    if (is_json(buf, size))
        return lc__vocab_from_hf_json_named((const char *)buf, size, name, config, config_len,
                                            config_name ? config_name : "tokenizer_config.json", out);
    r = lc_vocab_from_spm_model_buf(buf, size, name, out);
    if (r == LC_E_FORMAT && !ends_with(name, ".model")) /* say what else was tried, unless it was meant as one */
        r = lc__error_prefix(r, "%s is not GGUF, JSON or a llama2.c tokenizer.bin; as a SentencePiece model: ", name);
    return r;
}

int lc_tokenizer_load(const char *path, const char *config_path, lc_tokenizer **out) {
    lc__base_init();
    if (!out) return LC_ERR(LC_E_INVALID, "lc_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path) return LC_ERR(LC_E_INVALID, "lc_tokenizer_load: no path given");
    FILE *fp = fopen(path, "rb");
    if (!fp) return LC_ERR(LC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[4] = {0};
    size_t got = fread(head, 1, 4, fp);
    fclose(fp);
    /* a GGUF is mapped, not read: a model of many GB costs only its metadata */
    if (got == 4 && !memcmp(head, "GGUF", 4)) return load_gguf(path, out);

    uint8_t *buf = NULL, *cbuf = NULL;
    size_t size = 0, csize = 0;
    char found[4096];
    int r = lc__read_file(path, &buf, &size, API_MAX_FILE);
    if (r) return r;
    if (is_json(buf, size)) {
        if (!config_path) {
            find_config(path, found, sizeof found);
            config_path = found;
        }
        if (*config_path && (r = lc__read_file(config_path, &cbuf, &csize, (size_t)1 << 28))) goto done;
    }
    r = lc__tokenizer_from_buf(buf, size, path, cbuf ? (const char *)cbuf : NULL, csize, config_path, out);
done:
    lc__free(buf);
    lc__free(cbuf);
    return r;
}

void lc_tokenizer_free(lc_tokenizer *t) { lc_vocab_free(t); }

const lc_tokenizer *lc_model_tokenizer(const lc_model *m) { return m ? m->vocab : NULL; }

int lc_tokenizer_tokenize(const lc_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *ids,
                          size_t cap, size_t *n_out) {
    return lc_vocab_tokenize(t, text, len, flags, ids, cap, n_out);
}

int lc_tokenizer_detok_push(const lc_tokenizer *t, lc_detok *d, int32_t id, char *out, size_t cap) {
    return lc_vocab_detok_push(t, d, id, out, cap);
}

int lc_tokenizer_token_bytes(const lc_tokenizer *t, int32_t id, char *out, size_t cap) {
    return lc_vocab_token_bytes(t, id, out, cap);
}

uint32_t lc_tokenizer_n_vocab(const lc_tokenizer *t) { return lc_vocab_n(t); }
bool lc_tokenizer_add_bos(const lc_tokenizer *t) { return lc_vocab_add_bos(t); }
int32_t lc_tokenizer_bos(const lc_tokenizer *t) { return lc_vocab_bos(t); }
int32_t lc_tokenizer_eos(const lc_tokenizer *t) { return lc_vocab_eos(t); }
bool lc_tokenizer_is_eog(const lc_tokenizer *t, int32_t id) { return lc_vocab_is_eog(t, id); }

const char *lc_tokenizer_piece(const lc_tokenizer *t, int32_t id, size_t *len) {
    if (len) *len = lc_vocab_piece_len(t, id);
    return lc_vocab_piece(t, id);
}

bool lc_tokenizer_is_control(const lc_tokenizer *t, int32_t id) {
    int type = lc_vocab_type(t, id);
    return type == LC_TOKTYPE_CONTROL || type == LC_TOKTYPE_UNKNOWN;
}
