/* fuzz_tok_json.c - libFuzzer target for the JSON reader (json.c) and the tokenizer.json loader (hf_json.c).
**
** The input is a tokenizer.json, optionally followed by a NUL byte and a tokenizer_config.json (raw NUL cannot occur
** in JSON, so the split is unambiguous). Checks (each violation traps): a parsed document's node tree is consistent
** (indices in range and increasing, counts equal to the items, strings NUL-terminated inside the string buffer); a
** rejection is LC_E_FORMAT, LC_E_UNSUPPORTED or LC_E_NOMEM with a message naming the file at fault; a loaded
** vocabulary tokenizes and decodes a few texts with every id in range.
*/
#include "../src/tokenizer/json.h"
#include "../src/tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

static void die(const char *what) {
    fprintf(stderr, "%s (last error: %s)\n", what, lc_last_error());
    __builtin_trap();
}

static void check_tree(const lc_json *j) {
    if (j->n_nodes == 0 || j->n_nodes > j->cap_nodes || j->n_strs > j->cap_strs) die("bad node or string counts");
    for (uint32_t i = 0; i < j->n_nodes; i++) {
        const lc_jnode *n = &j->nodes[i];
        if (n->next && (n->next <= i || n->next >= j->n_nodes)) die("bad next index");
        if (n->child && (n->child <= i || n->child >= j->n_nodes)) die("bad child index");
        if (n->key >= j->n_strs || n->key + n->key_len >= j->n_strs || j->strs[n->key + n->key_len]) die("bad key");
        if (n->type == LC_J_STR && (n->str + n->n >= j->n_strs || j->strs[n->str + n->n])) die("bad string");
        if (n->type == LC_J_ARR || n->type == LC_J_OBJ) {
            uint32_t count = 0;
            for (const lc_jnode *c = lc__json_first(j, n); c; c = lc__json_next(j, c)) {
                if (++count > n->n) die("more items than the count");
                if (n->type == LC_J_ARR && c->key_len) die("array item with a key");
            }
            if (count != n->n) die("fewer items than the count");
            if (count && !n->child) die("count without a child");
        } else if (n->child) {
            die("a scalar with children");
        }
    }
}

static void check_rejection(int r, const char *a, const char *b) {
    if (r != LC_E_FORMAT && r != LC_E_UNSUPPORTED && r != LC_E_NOMEM) die("unexpected status");
    const char *m = lc_last_error();
    if (!strstr(m, a) && !(b && strstr(m, b))) die("the message does not name the file");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    lc__log_level = 0; /* warnings about odd but accepted files would flood the output */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t tok_len = nul ? (size_t)(nul - data) : size;
    const char *cfg = nul ? (const char *)nul + 1 : NULL;
    size_t cfg_len = nul ? size - tok_len - 1 : 0;

    lc_json *j = NULL;
    int r = lc__json_parse((const char *)data, tok_len, "fuzz.json", &j);
    if (r == LC_OK) {
        check_tree(j);
        lc__json_free(j);
    } else {
        if (j) die("a failed parse returned a document");
        check_rejection(r, "fuzz.json: byte offset ", NULL);
    }

    lc_vocab *v = NULL;
    r = lc__vocab_from_hf_json_named((const char *)data, tok_len, "fuzz.json", cfg, cfg_len, "fuzz_config.json", &v);
    if (r) {
        if (v) die("a failed load returned a vocabulary");
        check_rejection(r, "fuzz.json", "fuzz_config.json");
        return 0;
    }
    static const char *const texts[] = {"Hello world! <|eot_id|> 123 'll", "\xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82\n\n",
                                        "\xFF\xFE bad \xC3", ""};
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++)
        for (unsigned flags = 0; flags < 4; flags++) {
            int32_t ids[256];
            size_t n = 0;
            r = lc_vocab_tokenize(v, texts[t], strlen(texts[t]), flags, ids, 256, &n);
            if (r == LC_E_UNSUPPORTED && (flags & LC_TOK_ADD_BOS) && lc_vocab_bos(v) < 0) continue;
            if (r) die("tokenize failed");
            lc_detok d;
            lc_detok_init(&d, flags & 1);
            for (size_t i = 0; i < n; i++) {
                char out[1 << 12];
                if (ids[i] < 0 || (uint32_t)ids[i] >= lc_vocab_n(v)) die("id out of range");
                size_t cap = 4 * ((size_t)lc_vocab_piece_len(v, ids[i]) + 1);
                char *o = cap <= sizeof out ? out : malloc(cap);
                if (lc_vocab_detok_push(v, &d, ids[i], o, cap) < 0) die("detok failed");
                if (o != out) free(o);
            }
        }
    lc_vocab_free(v);
    return 0;
}
