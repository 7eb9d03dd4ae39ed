/* fuzz_tok_file.c - libFuzzer target for the tokenizer-file loaders behind lc_tokenizer_load: the format sniffing
** (api.c), GGUF tokenizer.ggml.* metadata (vocab.c), SentencePiece's protobuf tokenizer.model (spm_model.c), llama2.c
** tokenizer.bin (vocab.c) and tokenizer.json (hf_json.c).
**
** Checks (each violation traps): a rejection is LC_E_FORMAT, LC_E_UNSUPPORTED or LC_E_NOMEM with a message naming
** the file; a loaded vocabulary has consistent accessors (pieces found back by their text, special ids in range),
** and tokenizes and decodes a few texts with every id in range.
*/
#include "../src/tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

static void die(const char *what) {
    fprintf(stderr, "%s (last error: %s)\n", what, lc_last_error());
    __builtin_trap();
}

static void check_vocab(const lc_vocab *v) {
    const uint32_t n = lc_vocab_n(v);
    if (n == 0) die("empty vocabulary");
    const int32_t special[] = {lc_vocab_bos(v), lc_vocab_eos(v), lc_vocab_unk(v), lc_vocab_pad(v), lc_vocab_eot(v),
                               lc_vocab_eom(v)};
    for (size_t k = 0; k < sizeof special / sizeof *special; k++)
        if (special[k] < -1 || (special[k] >= 0 && (uint32_t)special[k] >= n)) die("special id out of range");
    for (uint32_t id = 0; id < n && id < 4096; id++) {
        const char *p = lc_vocab_piece(v, (int32_t)id);
        uint32_t len = lc_vocab_piece_len(v, (int32_t)id);
        if (!p || p[len]) die("piece not NUL-terminated");
        if (len && lc_vocab_find(v, p, len) != (int32_t)id) die("a piece is not found back by its text");
    }
    for (int b = 0; b < 256; b++) {
        int32_t t = lc_vocab_byte_token(v, (uint8_t)b);
        if (t < -1 || (t >= 0 && (uint32_t)t >= n)) die("byte token out of range");
    }
    static const char *const texts[] = {"Hello world! <s> <|eot_id|> 123 'll", "\xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82\n",
                                        "\xFF\xFE bad \xC3", "  "};
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++)
        for (unsigned flags = 0; flags < 4; flags++) {
            int32_t ids[256];
            size_t k = 0;
            int r = lc_vocab_tokenize(v, texts[t], strlen(texts[t]), flags, ids, 256, &k);
            if (r == LC_E_UNSUPPORTED && (flags & LC_TOK_ADD_BOS) && lc_vocab_bos(v) < 0) continue;
            /* a SentencePiece vocabulary with neither byte fallback nor <unk> cannot say some bytes */
            if (r == LC_E_FORMAT && lc_vocab_unk(v) < 0) continue;
            if (r) die("tokenize failed");
            lc_detok d;
            lc_detok_init(&d, flags & 1);
            for (size_t i = 0; i < k; i++) {
                if (ids[i] < 0 || (uint32_t)ids[i] >= n) die("id out of range");
                size_t cap = 4 * ((size_t)lc_vocab_piece_len(v, ids[i]) + 1);
                char *o = malloc(cap);
                if (lc_vocab_detok_push(v, &d, ids[i], o, cap) < 0) die("detok failed");
                free(o);
            }
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    lc__log_level = 0; /* warnings about odd but accepted files would flood the output */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* byte 0 picks the name: ".bin" makes a broken file a tokenizer.bin error, ".model" a protobuf one */
    static const char *const names[] = {"fuzz.tok", "fuzz.bin", "fuzz.model"};
    const char *name = names[size ? data[0] % 3 : 0];
    if (size) data++, size--;
    lc_vocab *v = NULL;
    int r = lc__tokenizer_from_buf(data, size, name, NULL, 0, NULL, &v);
    if (r) {
        if (v) die("a failed load returned a vocabulary");
        if (r != LC_E_FORMAT && r != LC_E_UNSUPPORTED && r != LC_E_NOMEM) die("unexpected status");
        if (!strstr(lc_last_error(), name)) die("the message does not name the file");
        return 0;
    }
    check_vocab(v);
    lc_vocab_free(v);
    return 0;
}
