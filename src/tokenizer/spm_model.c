/* spm_model.c - a minimal reader of SentencePiece's tokenizer.model (a protobuf ModelProto), for Llama 2.
**
** Reads only what the BPE tokenizer needs: pieces (text, score, type), the trainer's model type and special ids, and
** the normalizer's add_dummy_prefix. Everything else is skipped by wire type. Field numbers are those of
** sentencepiece_model.proto (ModelProto.pieces = 1, trainer_spec = 2, normalizer_spec = 3; SentencePiece.piece = 1,
** score = 2, type = 3; TrainerSpec.model_type = 3, unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43;
** NormalizerSpec.add_dummy_prefix = 3, remove_extra_whitespaces = 4). Every length is checked against the bytes left.
*/
#include "vocab_impl.h"

#include <stdio.h>

typedef struct pb {
    const uint8_t *p, *end;
    const uint8_t *base; /* start of the file, for offsets in messages */
    const char *name;
} pb;

static int pb_error(const pb *b, const char *what) {
    return LC_ERR(LC_E_FORMAT, "%s: offset %zu: %s (not a SentencePiece model, or a damaged one)", b->name,
                  (size_t)(b->p - b->base), what);
}

static int pb_varint(pb *b, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return pb_error(b, "truncated varint");
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return LC_OK;
        }
    }
    return pb_error(b, "varint longer than 10 bytes");
}

/* Reads a field key; *wire is the wire type. */
static int pb_key(pb *b, uint32_t *field, int *wire) {
    uint64_t k = 0;
    int r = pb_varint(b, &k);
    if (r) return r;
    *field = (uint32_t)(k >> 3);
    *wire = (int)(k & 7);
    if (*field == 0 || k >> 3 > 0x1FFFFFFF) return pb_error(b, "bad field number");
    return LC_OK;
}

/* A length-delimited field's body as a sub-reader. */
static int pb_sub(pb *b, pb *sub) {
    uint64_t len = 0;
    int r = pb_varint(b, &len);
    if (r) return r;
    if (len > (uint64_t)(b->end - b->p)) return pb_error(b, "length runs past the end");
    *sub = (pb){.p = b->p, .end = b->p + len, .base = b->base, .name = b->name};
    b->p += len;
    return LC_OK;
}

static int pb_skip(pb *b, int wire) {
    uint64_t v;
    pb sub;
    switch (wire) {
    case 0: return pb_varint(b, &v);
    case 1:
        if (b->end - b->p < 8) return pb_error(b, "truncated 64-bit field");
        b->p += 8;
        return LC_OK;
    case 2: return pb_sub(b, &sub);
    case 5:
        if (b->end - b->p < 4) return pb_error(b, "truncated 32-bit field");
        b->p += 4;
        return LC_OK;
    default: return pb_error(b, "unsupported wire type (groups)");
    }
}

static int pb_fixed32(pb *b, uint32_t *out) {
    if (b->end - b->p < 4) return pb_error(b, "truncated 32-bit field");
    *out = (uint32_t)b->p[0] | (uint32_t)b->p[1] << 8 | (uint32_t)b->p[2] << 16 | (uint32_t)b->p[3] << 24;
    b->p += 4;
    return LC_OK;
}

typedef struct spm_piece {
    const char *text;
    uint32_t len;
    float score;
    int32_t type;
} spm_piece;

static int parse_piece(pb *b, spm_piece *pc) {
    *pc = (spm_piece){.text = "", .type = LC_TOKTYPE_NORMAL};
    while (b->p < b->end) {
        uint32_t field;
        int wire, r;
        if ((r = pb_key(b, &field, &wire))) return r;
        if (field == 1 && wire == 2) {
            pb s;
            if ((r = pb_sub(b, &s))) return r;
            if (s.end - s.p > (1 << 20)) return pb_error(b, "piece longer than 1 MiB");
            pc->text = (const char *)s.p, pc->len = (uint32_t)(s.end - s.p);
        } else if (field == 2 && wire == 5) {
            uint32_t bits = 0;
            if ((r = pb_fixed32(b, &bits))) return r;
            memcpy(&pc->score, &bits, 4);
        } else if (field == 3 && wire == 0) {
            uint64_t t = 0;
            if ((r = pb_varint(b, &t))) return r;
            pc->type = t <= LC_TOKTYPE_BYTE ? (int32_t)t : LC_TOKTYPE_UNDEFINED;
        } else if ((r = pb_skip(b, wire))) {
            return r;
        }
    }
    return LC_OK;
}

typedef struct spm_trainer {
    uint64_t model_type; /* 1 unigram (the proto's default), 2 BPE, 3 word, 4 char */
    int64_t unk, bos, eos, pad;
} spm_trainer;

static int parse_trainer(pb *b, spm_trainer *t) {
    while (b->p < b->end) {
        uint32_t field;
        int wire, r;
        uint64_t v = 0;
        if ((r = pb_key(b, &field, &wire))) return r;
        if (wire == 0 && (field == 3 || (field >= 40 && field <= 43))) {
            if ((r = pb_varint(b, &v))) return r;
            int64_t iv = (int64_t)(int32_t)(uint32_t)v; /* int32 fields: negative values are sign-extended varints */
            if (field == 3) t->model_type = v;
            else if (field == 40) t->unk = iv;
            else if (field == 41) t->bos = iv;
            else if (field == 42) t->eos = iv;
            else t->pad = iv;
        } else if ((r = pb_skip(b, wire))) {
            return r;
        }
    }
    return LC_OK;
}

typedef struct spm_normalizer {
    bool add_dummy_prefix, remove_extra_whitespaces;
} spm_normalizer;

static int parse_normalizer(pb *b, spm_normalizer *n) {
    while (b->p < b->end) {
        uint32_t field;
        int wire, r;
        uint64_t v = 0;
        if ((r = pb_key(b, &field, &wire))) return r;
        if (wire == 0 && (field == 3 || field == 4)) {
            if ((r = pb_varint(b, &v))) return r;
            if (field == 3) n->add_dummy_prefix = v != 0;
            else n->remove_extra_whitespaces = v != 0;
        } else if ((r = pb_skip(b, wire))) {
            return r;
        }
    }
    return LC_OK;
}

int lc_vocab_from_spm_model_buf(const void *buf, size_t size, const char *name, lc_vocab **out) {
    *out = NULL;
    pb b = {.p = buf, .end = (const uint8_t *)buf + size, .base = buf, .name = name};
    spm_trainer tr = {.model_type = 1, .unk = 0, .bos = 1, .eos = 2, .pad = -1};
    spm_normalizer nm = {.add_dummy_prefix = true, .remove_extra_whitespaces = true};
    size_t n = 0, cap = 0;
    spm_piece *pieces = NULL;
    int r = LC_OK;
    while (b.p < b.end && r == LC_OK) {
        uint32_t field;
        int wire;
        pb sub;
        if ((r = pb_key(&b, &field, &wire))) break;
        if (wire == 2 && field >= 1 && field <= 3) {
            if ((r = pb_sub(&b, &sub))) break;
            if (field == 1) {
                if (n == cap) {
                    size_t c = cap ? 2 * cap : 1024;
                    spm_piece *a = c <= (1u << 24) ? lc__realloc(pieces, c * sizeof *a) : NULL;
                    if (!a) {
                        r = c <= (1u << 24) ? LC_ERR(LC_E_NOMEM, "%s: out of memory for %zu pieces", name, c)
                                            : pb_error(&b, "more than 16M pieces");
                        break;
                    }
                    pieces = a, cap = c;
                }
                r = parse_piece(&sub, &pieces[n++]);
            } else if (field == 2) {
                r = parse_trainer(&sub, &tr);
            } else {
                r = parse_normalizer(&sub, &nm);
            }
        } else {
            r = pb_skip(&b, wire);
        }
    }
    if (r == LC_OK && n == 0) r = LC_ERR(LC_E_FORMAT, "%s: no pieces; not a SentencePiece model", name);
    if (r == LC_OK && tr.model_type != 2)
        r = LC_ERR(LC_E_UNSUPPORTED, "%s: SentencePiece model type %llu; only BPE (2, as Llama 2) is supported", name,
                   (unsigned long long)tr.model_type);
    if (r == LC_OK && nm.remove_extra_whitespaces)
        LC_WARN("%s: the model collapses runs of whitespace (remove_extra_whitespaces), which llamac does not do; "
                "texts with repeated spaces may tokenize differently",
                name);
    const char **texts = NULL;
    uint32_t *lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    if (r == LC_OK) {
        texts = lc__malloc(n * sizeof *texts);
        lens = lc__malloc(n * sizeof *lens);
        scores = lc__malloc(n * sizeof *scores);
        types = lc__malloc(n * sizeof *types);
        if (!texts || !lens || !scores || !types) r = LC_ERR(LC_E_NOMEM, "%s: out of memory for %zu pieces", name, n);
    }
    if (r == LC_OK) {
        for (size_t i = 0; i < n; i++)
            texts[i] = pieces[i].text, lens[i] = pieces[i].len, scores[i] = pieces[i].score, types[i] = pieces[i].type;
        int64_t ids[4] = {tr.bos, tr.eos, tr.unk, tr.pad};
        for (int k = 0; k < 4; k++)
            if (ids[k] < 0 || ids[k] >= (int64_t)n) ids[k] = -1; /* SentencePiece: a negative id disables it */
        lc_vocab_desc d = {.name = name, .kind = LC_VOCAB_SPM, .n = (uint32_t)n, .piece = texts, .piece_len = lens,
                           .score = scores, .type = types, .bos = (int32_t)ids[0], .eos = (int32_t)ids[1],
                           .unk = (int32_t)ids[2], .pad = (int32_t)ids[3], .eot = -1, .eom = -1,
                           .add_bos = true, .add_eos = false, .add_space_prefix = nm.add_dummy_prefix};
        r = lc_vocab_from_arrays(&d, out);
    }
    lc__free(pieces);
    lc__free(texts);
    lc__free(lens);
    lc__free(scores);
    lc__free(types);
    return r;
}

int lc_vocab_from_spm_model(const char *path, lc_vocab **out) {
    uint8_t *buf;
    size_t size;
    *out = NULL;
    int r = lc__read_file(path, &buf, &size, (size_t)1 << 30);
    if (r) return r;
    r = lc_vocab_from_spm_model_buf(buf, size, path, out);
    lc__free(buf);
    return r;
}
