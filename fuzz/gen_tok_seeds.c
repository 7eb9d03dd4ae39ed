/* gen_tok_seeds.c - writes seed inputs for the tokenizer fuzz targets (fuzz/Makefile `seeds`):
**   DIR_TOKENIZER: control byte + text (every vocabulary and mode; multilingual, special-token text, invalid UTF-8,
**                  long runs) and control byte + id streams for decode mode;
**   DIR_JSON:      tokenizer.json documents of the BPE fixture (merges as "a b" and as pairs), with and without a
**                  tokenizer_config.json after a NUL byte;
**   DIR_FILE:      name byte + the fixtures as GGUF (SentencePiece and byte-level BPE), SentencePiece protobuf,
**                  llama2.c tokenizer.bin, tokenizer.json.
** Usage: gen_tok_seeds DIR_TOKENIZER DIR_JSON DIR_FILE
*/
#include "tok_fixtures.h"
#include "../src/gguf/gguf.h"

#include <unistd.h>

static int g_fail;

static void write_seed(const char *dir, const char *name, uint8_t ctl, bool with_ctl, const void *data, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        g_fail = 1;
        return;
    }
    if (with_ctl) fputc(ctl, f);
    if (n) fwrite(data, 1, n, f);
    if (fclose(f)) g_fail = 1;
}

/* ---- growable byte buffer ---- */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void puts_(bytes *b, const char *s) { put(b, s, strlen(s)); }
static void put_u8(bytes *b, uint8_t c) { put(b, &c, 1); }
static void put_varint(bytes *b, uint64_t v) {
    while (v >= 0x80) put_u8(b, (uint8_t)(v | 0x80)), v >>= 7;
    put_u8(b, (uint8_t)v);
}
static void put_u32(bytes *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, le, 4);
}
static void put_json_str(bytes *b, const char *s) {
    put_u8(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') put_u8(b, '\\'), put_u8(b, (uint8_t)*s);
        else if ((uint8_t)*s < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", (unsigned)(uint8_t)*s);
            puts_(b, e);
        } else put_u8(b, (uint8_t)*s);
    }
    put_u8(b, '"');
}

static const char llama3_regex_json[] =
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"";

/* The BPE fixture as a Hugging Face tokenizer.json. */
static void bpe_json(bytes *b, bool pair_merges, bool post_processor) {
    fx_bpe x;
    fx_bpe_build(&x);
    puts_(b, "{\"version\": \"1.0\", \"added_tokens\": [");
    bool first = true;
    for (uint32_t i = 0; i < x.n; i++) {
        if (x.type[i] == LC_TOKTYPE_NORMAL) continue;
        char head[64];
        snprintf(head, sizeof head, "%s{\"id\": %u, \"content\": ", first ? "" : ", ", i);
        puts_(b, head);
        put_json_str(b, x.piece[i]);
        puts_(b, x.type[i] == LC_TOKTYPE_CONTROL ? ", \"special\": true}" : ", \"special\": false}");
        first = false;
    }
    puts_(b, "], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
             "\"Split\", \"pattern\": {\"Regex\": ");
    puts_(b, llama3_regex_json);
    puts_(b, "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": "
             "false, \"trim_offsets\": true, \"use_regex\": false}]}, ");
    if (post_processor)
        puts_(b, "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
                 "\"<|begin_of_text|>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}, ");
    puts_(b, "\"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"dropout\": null, "
             "\"ignore_merges\": true, \"byte_fallback\": false, \"vocab\": {");
    first = true;
    for (uint32_t i = 0; i < x.n; i++) {
        if (x.type[i] != LC_TOKTYPE_NORMAL) continue;
        if (!first) puts_(b, ", ");
        put_json_str(b, x.piece[i]);
        char num[32];
        snprintf(num, sizeof num, ": %u", i);
        puts_(b, num);
        first = false;
    }
    puts_(b, "}, \"merges\": [");
    for (uint32_t i = 0; i < x.n_merges; i++) {
        if (i) puts_(b, ", ");
        if (!pair_merges) {
            put_json_str(b, x.merge[i]);
            continue;
        }
        char *sp = strchr(x.merge[i], ' ');
        *sp = 0;
        put_u8(b, '[');
        put_json_str(b, x.merge[i]);
        puts_(b, ", ");
        put_json_str(b, sp + 1);
        put_u8(b, ']');
        *sp = ' ';
    }
    puts_(b, "]}}");
    fx_bpe_free(&x);
}

static const char config_json[] =
    "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": \"<|begin_of_text|>\", \"eos_token\": "
    "{\"content\": \"<|eot_id|>\", \"special\": true}, \"clean_up_tokenization_spaces\": true}";

/* The SentencePiece fixture as a protobuf ModelProto (pieces, trainer_spec model_type BPE, normalizer_spec). */
static void spm_model(bytes *b, const lc_vocab *v) {
    for (uint32_t id = 0; id < lc_vocab_n(v); id++) {
        bytes pc = {0};
        const char *p = lc_vocab_piece(v, (int32_t)id);
        put_u8(&pc, 0x0A), put_varint(&pc, strlen(p)), puts_(&pc, p);
        float s = lc_vocab_score(v, (int32_t)id);
        uint32_t bits;
        memcpy(&bits, &s, 4);
        put_u8(&pc, 0x15), put_u32(&pc, bits);
        put_u8(&pc, 0x18), put_varint(&pc, (uint64_t)lc_vocab_type(v, (int32_t)id));
        put_u8(b, 0x0A), put_varint(b, pc.n), put(b, pc.p, pc.n);
        free(pc.p);
    }
    bytes tr = {0};
    put_u8(&tr, 0x18), put_varint(&tr, 2); /* model_type BPE */
    put_varint(&tr, 40 << 3), put_varint(&tr, 0);
    put_varint(&tr, 41 << 3), put_varint(&tr, 1);
    put_varint(&tr, 42 << 3), put_varint(&tr, 2);
    put_varint(&tr, 43 << 3), put_varint(&tr, UINT64_MAX); /* pad_id -1 */
    put_u8(b, 0x12), put_varint(b, tr.n), put(b, tr.p, tr.n);
    free(tr.p);
    uint8_t norm[] = {0x1A, 0x04, 0x18, 0x01, 0x20, 0x00}; /* add_dummy_prefix 1, remove_extra_whitespaces 0 */
    put(b, norm, sizeof norm);
}

/* The SentencePiece fixture as a llama2.c tokenizer.bin (spaces instead of U+2581, as llama2.c stores them). */
static void llama2c_bin(bytes *b, const lc_vocab *v) {
    uint32_t max_len = 0;
    for (uint32_t id = 0; id < lc_vocab_n(v); id++) max_len = lc_vocab_piece_len(v, (int32_t)id) > max_len ? lc_vocab_piece_len(v, (int32_t)id) : max_len;
    put_u32(b, max_len);
    for (uint32_t id = 0; id < lc_vocab_n(v); id++) {
        const char *p = lc_vocab_piece(v, (int32_t)id);
        bytes s = {0};
        for (size_t i = 0; p[i];) {
            if (!strncmp(p + i, "\xE2\x96\x81", 3)) put_u8(&s, ' '), i += 3;
            else put_u8(&s, (uint8_t)p[i++]);
        }
        float sc = lc_vocab_score(v, (int32_t)id);
        uint32_t bits;
        memcpy(&bits, &sc, 4);
        put_u32(b, bits), put_u32(b, (uint32_t)s.n);
        if (s.n) put(b, s.p, s.n);
        free(s.p);
    }
}

/* A vocabulary as GGUF tokenizer.ggml.* metadata (no tensors). */
static void vocab_gguf(const char *path, const lc_vocab *v, bool bpe) {
    uint32_t n = lc_vocab_n(v);
    const char **pieces = malloc(n * sizeof *pieces);
    float *scores = malloc(n * sizeof *scores);
    int32_t *types = malloc(n * sizeof *types);
    for (uint32_t i = 0; i < n; i++)
        pieces[i] = lc_vocab_piece(v, (int32_t)i), scores[i] = lc_vocab_score(v, (int32_t)i),
        types[i] = lc_vocab_type(v, (int32_t)i);
    gguf_writer *w = gguf_writer_new();
    int r = !w || gguf_writer_set_str(w, "general.architecture", "llama") ||
            gguf_writer_set_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama") ||
            gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, n) ||
            gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_T_FLOAT32, scores, n) ||
            gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, n) ||
            gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)lc_vocab_bos(v)) ||
            gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)lc_vocab_eos(v)) ||
            gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (!r && bpe) {
        fx_bpe x;
        fx_bpe_build(&x);
        r = gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe") ||
            gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)x.merge, x.n_merges);
        fx_bpe_free(&x);
    }
    if (!r) r = gguf_writer_write(w, path);
    if (r) {
        fprintf(stderr, "gen_tok_seeds: %s: %s\n", path, lc_last_error());
        g_fail = 1;
    }
    gguf_writer_free(w);
    free(pieces), free(scores), free(types);
}

static void file_seed(const char *dir, const char *name, uint8_t name_sel, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        g_fail = 1;
        return;
    }
    bytes b = {0};
    uint8_t chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) put(&b, chunk, k);
    fclose(f);
    write_seed(dir, name, name_sel, true, b.p, b.n);
    free(b.p);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: gen_tok_seeds DIR_TOKENIZER DIR_JSON DIR_FILE\n");
        return 2;
    }
    const char *dt = argv[1], *dj = argv[2], *df = argv[3];

    /* fuzz_tokenizer: texts under every vocabulary (bits 0-2) and mode (bits 3-4), and id streams */
    static const char *const texts[] = {
        "Hello world",
        " the abc  aaa bca 123456 it's THEY'LL \xC3\xA9t\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82!!\r\n\n",
        "<s>x</s><unk><tool>y<|begin_of_text|><|eot_id|><pad><|reserved_0|>",
        "\xFF\xC3\x28\xE2\x82\xF0\x9F\x99 \xED\xA0\x80 \xC0\xAF tail\xE2",
        "   \t\n\n  x  \n",
        "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xE3\x81\x93\xE3\x82\x93",
        "",
    };
    char name[64];
    int k = 0;
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++)
        for (unsigned ctl = 0; ctl < 32; ctl += 1 + (t % 3)) {
            snprintf(name, sizeof name, "text-%02d", k++);
            write_seed(dt, name, (uint8_t)ctl, true, texts[t], strlen(texts[t]));
        }
    bytes big = {0};
    for (int i = 0; i < 700; i++) puts_(&big, i % 7 ? "the abc " : "\xE4\xB8\x96 aa  ");
    write_seed(dt, "long-spm", 0x00, true, big.p, big.n);
    write_seed(dt, "long-bpe", 0x02, true, big.p, big.n);
    free(big.p);
    for (unsigned ctl = 0; ctl < 5; ctl++) {
        uint8_t ids[64];
        for (int i = 0; i < 64; i++) ids[i] = (uint8_t)(i * 37 + ctl * 11);
        snprintf(name, sizeof name, "ids-%u", ctl);
        write_seed(dt, name, (uint8_t)(0x20 | 0x40 | 0x80 | ctl), true, ids, sizeof ids);
    }

    /* fuzz_tok_json */
    bytes j = {0};
    bpe_json(&j, false, true);
    write_seed(dj, "bpe-mini", 0, false, j.p, j.n);
    put_u8(&j, 0);
    puts_(&j, config_json);
    write_seed(dj, "bpe-mini-config", 0, false, j.p, j.n);
    free(j.p);
    j = (bytes){0};
    bpe_json(&j, true, false);
    write_seed(dj, "bpe-mini-pairs", 0, false, j.p, j.n);

    /* fuzz_tok_file: byte 0 picks the name (0 .tok, 1 .bin, 2 .model) */
    write_seed(df, "json", 0, true, j.p, j.n);
    free(j.p);
    lc_vocab *spm = fx_spm_vocab(true), *bpe = fx_bpe_vocab();
    if (!spm || !bpe) return 1;
    bytes m = {0};
    spm_model(&m, spm);
    write_seed(df, "spm-model", 2, true, m.p, m.n);
    free(m.p);
    m = (bytes){0};
    llama2c_bin(&m, spm);
    write_seed(df, "tokenizer-bin", 1, true, m.p, m.n);
    free(m.p);
    char path[4096];
    snprintf(path, sizeof path, "%s/.tmp-spm.gguf", df);
    vocab_gguf(path, spm, false);
    file_seed(df, "gguf-spm", 0, path);
    remove(path);
    snprintf(path, sizeof path, "%s/.tmp-bpe.gguf", df);
    vocab_gguf(path, bpe, true);
    file_seed(df, "gguf-bpe", 0, path);
    remove(path);
    lc_vocab_free(spm);
    lc_vocab_free(bpe);
    return g_fail;
}
