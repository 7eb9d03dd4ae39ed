/* hf_json.c - a vocabulary from a Hugging Face tokenizer.json (+ tokenizer_config.json): byte-level BPE models with
** the Llama 3 pre-tokenizer.
**
** Read: model.vocab (piece -> id), model.merges ("a b" strings or ["a", "b"] pairs), model.ignore_merges,
** added_tokens (special -> control, else user-defined), the pre_tokenizer (its Split regex must be Llama 3's), and the
** BOS/EOS rules from tokenizer_config.json (bos_token, eos_token, add_bos_token, add_eos_token) or, without it, from the
** post_processor's TemplateProcessing. Anything else a tokenizer.json can say (normalizers, other models, other
** regexes) is LC_E_UNSUPPORTED, never approximated.
*/
#include "json.h"
#include "vocab_impl.h"

#include <math.h>

static const char llama3_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Finds the pre-tokenizer: a Split with the Llama 3 regex and a ByteLevel without its own regex, alone or in a
** Sequence. Sets *regex to the first Split pattern seen (for the message). */
static lc_pretok find_pretok(const lc_json *j, const lc_jnode *pt, const char **regex, bool *byte_level) {
    if (!pt || pt->type != LC_J_OBJ) return LC_PRETOK_NONE;
    const char *type = lc__json_get_str(j, pt, "type");
    if (!type) return LC_PRETOK_NONE;
    if (!strcmp(type, "Sequence")) {
        lc_pretok found = LC_PRETOK_NONE;
        const lc_jnode *list = lc__json_get(j, pt, "pretokenizers");
        for (const lc_jnode *it = list && list->type == LC_J_ARR ? lc__json_first(j, list) : NULL; it;
             it = lc__json_next(j, it)) {
            lc_pretok p = find_pretok(j, it, regex, byte_level);
            if (p != LC_PRETOK_NONE) found = p;
        }
        return found;
    }
    if (!strcmp(type, "ByteLevel")) {
        const lc_jnode *ur = lc__json_get(j, pt, "use_regex");
        *byte_level = true;
        if (ur && ur->type == LC_J_TRUE && !*regex) *regex = "(ByteLevel's own GPT-2 regex)";
        return LC_PRETOK_NONE;
    }
    if (!strcmp(type, "Split")) {
        const char *re = lc__json_get_str(j, lc__json_get(j, pt, "pattern"), "Regex");
        if (!*regex) *regex = re ? re : "(a non-regex pattern)";
        const char *behavior = lc__json_get_str(j, pt, "behavior");
        const lc_jnode *inv = lc__json_get(j, pt, "invert");
        if (re && !strcmp(re, llama3_regex) && behavior && !strcmp(behavior, "Isolated") &&
            !(inv && inv->type == LC_J_TRUE))
            return LC_PRETOK_LLAMA3;
    }
    return LC_PRETOK_NONE;
}

/* A token's text from tokenizer_config.json: "bos_token": "<s>" or {"content": "<s>", ...}. */
static const char *config_token(const lc_json *c, const char *key) {
    if (!c) return NULL;
    const lc_jnode *n = lc__json_get(c, lc__json_root(c), key);
    if (!n) return NULL;
    if (n->type == LC_J_STR) return lc__json_str(c, n);
    return lc__json_get_str(c, n, "content");
}

static int config_flag(const lc_json *c, const char *key) {
    const lc_jnode *n = c ? lc__json_get(c, lc__json_root(c), key) : NULL;
    return !n ? -1 : n->type == LC_J_TRUE ? 1 : 0;
}

/* The first and last items of the post_processor's TemplateProcessing "single" template, when special tokens. */
static void template_specials(const lc_json *j, const lc_jnode *pp, const char **first, const char **last) {
    if (!pp || pp->type != LC_J_OBJ) return;
    const char *type = lc__json_get_str(j, pp, "type");
    if (type && !strcmp(type, "Sequence")) {
        const lc_jnode *list = lc__json_get(j, pp, "processors");
        for (const lc_jnode *it = list && list->type == LC_J_ARR ? lc__json_first(j, list) : NULL; it;
             it = lc__json_next(j, it))
            template_specials(j, it, first, last);
        return;
    }
    if (!type || strcmp(type, "TemplateProcessing")) return;
    const lc_jnode *single = lc__json_get(j, pp, "single");
    if (!single || single->type != LC_J_ARR || !single->n) return;
    const lc_jnode *it = lc__json_first(j, single), *end = it;
    for (const lc_jnode *x = it; x; x = lc__json_next(j, x)) end = x;
    *first = lc__json_get_str(j, lc__json_get(j, it, "SpecialToken"), "id");
    *last = end != it ? lc__json_get_str(j, lc__json_get(j, end, "SpecialToken"), "id") : NULL;
}

static bool is_uint_id(const lc_jnode *n) {
    return n && n->type == LC_J_NUM && n->num >= 0 && n->num < (double)(1u << 24) && n->num == floor(n->num);
}

int lc_vocab_from_hf_json_buf(const char *tok_json, size_t tok_len, const char *config_json, size_t config_len,
                              const char *name, lc_vocab **out) {
    return lc__vocab_from_hf_json_named(tok_json, tok_len, name, config_json, config_len, "tokenizer_config.json",
                                        out);
}

int lc__vocab_from_hf_json_named(const char *tok_json, size_t tok_len, const char *name, const char *config_json,
                                 size_t config_len, const char *config_name, lc_vocab **out) {
    *out = NULL;
    lc_json *j = NULL, *c = NULL;
    const char **pieces = NULL, **merges = NULL;
    uint32_t *lens = NULL, *merge_lens = NULL;
    int32_t *types = NULL;
    char *merge_buf = NULL;
    int r = lc__json_parse(tok_json, tok_len, name, &j);
    if (r) return r;
    /* the config's own name in its parse errors, so a broken config is not taken for a broken tokenizer.json */
    if (config_json && (r = lc__json_parse(config_json, config_len, config_name, &c))) goto done;
    const lc_jnode *root = lc__json_root(j), *model = lc__json_get(j, root, "model");
    const char *mtype = lc__json_get_str(j, model, "type");
    if (!mtype || strcmp(mtype, "BPE")) {
        r = LC_ERR(mtype ? LC_E_UNSUPPORTED : LC_E_FORMAT, "%s: model.type is %s%s%s; only \"BPE\" is supported", name,
                   mtype ? "\"" : "", mtype ? mtype : "missing", mtype ? "\"" : "");
        goto done;
    }
    const lc_jnode *bf = lc__json_get(j, model, "byte_fallback"), *norm = lc__json_get(j, root, "normalizer");
    if (bf && bf->type == LC_J_TRUE) {
        r = LC_ERR(LC_E_UNSUPPORTED, "%s: model.byte_fallback is true (a SentencePiece-style BPE); not supported", name);
        goto done;
    }
    if (norm && norm->type != LC_J_NULL) {
        r = LC_ERR(LC_E_UNSUPPORTED, "%s: a normalizer is set; only tokenizers without one (as Llama 3) are supported",
                   name);
        goto done;
    }
    const char *regex = NULL;
    bool byte_level = false;
    lc_pretok pre = find_pretok(j, lc__json_get(j, root, "pre_tokenizer"), &regex, &byte_level);
    if (pre == LC_PRETOK_NONE || !byte_level) {
        r = LC_ERR(LC_E_UNSUPPORTED, "%s: pre_tokenizer %s%s is not Llama 3's (a Split on its regex, then ByteLevel)",
                   name, regex ? "with regex " : "without a byte-level step", regex ? regex : "");
        goto done;
    }

    /* ids: model.vocab and added_tokens */
    const lc_jnode *vocab = lc__json_get(j, model, "vocab"), *added = lc__json_get(j, root, "added_tokens");
    if (!vocab || vocab->type != LC_J_OBJ || !vocab->n) {
        r = LC_ERR(LC_E_FORMAT, "%s: model.vocab is missing or empty", name);
        goto done;
    }
    if (added && added->type != LC_J_ARR) added = NULL;
    uint32_t n = 0;
    for (const lc_jnode *m = lc__json_first(j, vocab); m; m = lc__json_next(j, m)) {
        if (!is_uint_id(m)) {
            r = LC_ERR(LC_E_FORMAT, "%s: model.vocab[\"%.40s\"] is not a token id", name, lc__json_key(j, m));
            goto done;
        }
        n = LC_MAX(n, (uint32_t)m->num + 1);
    }
    for (const lc_jnode *a = added ? lc__json_first(j, added) : NULL; a; a = lc__json_next(j, a)) {
        const lc_jnode *id = lc__json_get(j, a, "id");
        if (!is_uint_id(id) || !lc__json_get_str(j, a, "content")) {
            r = LC_ERR(LC_E_FORMAT, "%s: an entry of added_tokens lacks a valid id or content", name);
            goto done;
        }
        n = LC_MAX(n, (uint32_t)id->num + 1);
    }
    pieces = lc__calloc(n, sizeof *pieces);
    lens = lc__calloc(n, sizeof *lens);
    types = lc__malloc(n * sizeof *types);
    if (!pieces || !lens || !types) {
        r = LC_ERR(LC_E_NOMEM, "%s: out of memory for %u tokens", name, n);
        goto done;
    }
    for (const lc_jnode *m = lc__json_first(j, vocab); m; m = lc__json_next(j, m)) {
        uint32_t id = (uint32_t)m->num;
        if (pieces[id]) {
            r = LC_ERR(LC_E_FORMAT, "%s: model.vocab gives id %u to two pieces", name, id);
            goto done;
        }
        pieces[id] = lc__json_key(j, m), lens[id] = m->key_len, types[id] = LC_TOKTYPE_NORMAL;
    }
    for (const lc_jnode *a = added ? lc__json_first(j, added) : NULL; a; a = lc__json_next(j, a)) {
        uint32_t id = (uint32_t)lc__json_get(j, a, "id")->num;
        const lc_jnode *content = lc__json_get(j, a, "content"), *special = lc__json_get(j, a, "special");
        if (pieces[id] && (lens[id] != content->n || memcmp(pieces[id], lc__json_str(j, content), content->n))) {
            r = LC_ERR(LC_E_FORMAT, "%s: added token %u \"%.40s\" differs from model.vocab's piece", name, id,
                       lc__json_str(j, content));
            goto done;
        }
        pieces[id] = lc__json_str(j, content), lens[id] = content->n;
        types[id] = special && special->type == LC_J_TRUE ? LC_TOKTYPE_CONTROL : LC_TOKTYPE_USER_DEFINED;
    }
    for (uint32_t id = 0; id < n; id++)
        if (!pieces[id]) {
            r = LC_ERR(LC_E_FORMAT, "%s: no piece has id %u (ids must be 0 to %u without gaps)", name, id, n - 1);
            goto done;
        }

    /* merges */
    const lc_jnode *ml = lc__json_get(j, model, "merges");
    uint32_t n_merges = ml && ml->type == LC_J_ARR ? ml->n : 0;
    merges = lc__calloc(n_merges ? n_merges : 1, sizeof *merges);
    merge_lens = lc__calloc(n_merges ? n_merges : 1, sizeof *merge_lens);
    if (!merges || !merge_lens) {
        r = LC_ERR(LC_E_NOMEM, "%s: out of memory for %u merges", name, n_merges);
        goto done;
    }
    uint64_t pair_bytes = 0; /* the ["a", "b"] form is joined into "a b" */
    for (const lc_jnode *m = n_merges ? lc__json_first(j, ml) : NULL; m; m = lc__json_next(j, m))
        if (m->type == LC_J_ARR && m->n == 2)
            pair_bytes += (uint64_t)lc__json_first(j, m)->n + lc__json_next(j, lc__json_first(j, m))->n + 1;
    if (pair_bytes && !(merge_buf = lc__malloc((size_t)pair_bytes))) {
        r = LC_ERR(LC_E_NOMEM, "%s: out of memory for merges", name);
        goto done;
    }
    uint64_t mb = 0;
    uint32_t k = 0;
    for (const lc_jnode *m = n_merges ? lc__json_first(j, ml) : NULL; m; m = lc__json_next(j, m), k++) {
        if (m->type == LC_J_STR) {
            merges[k] = lc__json_str(j, m), merge_lens[k] = m->n;
            continue;
        }
        const lc_jnode *a = m->type == LC_J_ARR && m->n == 2 ? lc__json_first(j, m) : NULL;
        const lc_jnode *b = a ? lc__json_next(j, a) : NULL;
        if (!a || a->type != LC_J_STR || b->type != LC_J_STR) {
            r = LC_ERR(LC_E_FORMAT, "%s: model.merges[%u] is neither \"a b\" nor [\"a\", \"b\"]", name, k);
            goto done;
        }
        merges[k] = merge_buf + mb;
        memcpy(merge_buf + mb, lc__json_str(j, a), a->n);
        merge_buf[mb + a->n] = ' ';
        memcpy(merge_buf + mb + a->n + 1, lc__json_str(j, b), b->n);
        merge_lens[k] = a->n + 1 + b->n;
        mb += merge_lens[k];
    }

    /* special ids and the BOS/EOS rules */
    lc_vocab_desc d = {.name = name, .kind = LC_VOCAB_BPE, .n = n, .piece = pieces, .piece_len = lens, .type = types,
                       .bos = -1, .eos = -1, .unk = -1, .pad = -1, .eot = -1, .eom = -1, .merges = merges,
                       .merge_len = merge_lens, .n_merges = n_merges, .pre = pre};
    const lc_jnode *im = lc__json_get(j, model, "ignore_merges");
    d.ignore_merges = im && im->type == LC_J_TRUE;
    const char *t_first = NULL, *t_last = NULL;
    template_specials(j, lc__json_get(j, root, "post_processor"), &t_first, &t_last);
    const char *bos = config_token(c, "bos_token"), *eos = config_token(c, "eos_token");
    if (!bos) bos = t_first;
    int add_bos = config_flag(c, "add_bos_token"), add_eos = config_flag(c, "add_eos_token");
    d.add_bos = add_bos >= 0 ? add_bos == 1 : (t_first != NULL);
    d.add_eos = add_eos >= 0 ? add_eos == 1 : (t_last != NULL);
    if (!eos && d.add_eos) eos = t_last;
    for (uint32_t id = 0; id < n; id++) { /* the ids of those texts */
        if (bos && lens[id] == strlen(bos) && !memcmp(pieces[id], bos, lens[id]) && d.bos < 0) d.bos = (int32_t)id;
        if (eos && lens[id] == strlen(eos) && !memcmp(pieces[id], eos, lens[id]) && d.eos < 0) d.eos = (int32_t)id;
    }
    if ((bos && d.bos < 0) || (eos && d.eos < 0)) {
        r = LC_ERR(LC_E_FORMAT, "%s: the %s token \"%.40s\" is not in the vocabulary", name, bos && d.bos < 0 ? "BOS" : "EOS",
                   bos && d.bos < 0 ? bos : eos);
        goto done;
    }
    r = lc_vocab_from_arrays(&d, out);
done:
    lc__free(pieces);
    lc__free(lens);
    lc__free(types);
    lc__free(merges);
    lc__free(merge_lens);
    lc__free(merge_buf);
    lc__json_free(j);
    lc__json_free(c);
    return r;
}

int lc_vocab_from_hf_json(const char *tokenizer_json, const char *config_json, lc_vocab **out) {
    uint8_t *t = NULL, *c = NULL;
    size_t tn = 0, cn = 0;
    *out = NULL;
    int r = lc__read_file(tokenizer_json, &t, &tn, (size_t)1 << 31);
    if (!r && config_json) r = lc__read_file(config_json, &c, &cn, (size_t)1 << 28);
    if (!r)
        r = lc__vocab_from_hf_json_named((const char *)t, tn, tokenizer_json, (const char *)c, cn,
                                         config_json ? config_json : "", out);
    lc__free(t);
    lc__free(c);
    return r;
}
