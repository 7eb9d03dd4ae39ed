/* detok.c - the streaming detokenizer: ids to UTF-8 text, one id at a time, never splitting a character.
**
** A piece renders as llama.cpp's token_to_piece does (SentencePiece: U+2581 -> ' ', <0xNN> -> that byte; byte-level
** BPE: each character back to the byte it stands for; control/unknown pieces only when show_special, unused/undefined
** ones never). lc_detok_init also drops the
** leading space of the first rendered piece, as SentencePiece's decode does, so that detok(tokenize(text)) == text.
** The bytes then pass a UTF-8 validator: an incomplete character waits in d->pending for the next push; each maximal
** ill-formed subpart becomes U+FFFD (the Unicode "substitution of maximal subparts" practice, as Python and WHATWG).
*/
#include "unicode.h"
#include "vocab_impl.h"

void lc_detok_init(lc_detok *d, bool show_special) {
    memset(d, 0, sizeof *d);
    d->first = true;
    d->show_special = show_special;
}

typedef struct sink {
    char *out;   /* NULL: only count */
    size_t cap, n;
    bool raw;    /* bytes as they are, without the UTF-8 validator (lc_vocab_token_bytes) */
} sink;

static void sink_put(sink *s, const void *p, size_t n) {
    if (s->out && s->n + n <= s->cap) memcpy(s->out + s->n, p, n);
    s->n += n;
}

static const char replacement[3] = {'\xEF', '\xBF', '\xBD'}; /* U+FFFD */

/* Bytes a character with this lead byte has in all (for lead bytes 0xC2..0xF4). */
static int utf8_need(uint8_t lead) { return lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2; }

/* Feeds one byte through the validator, emitting complete characters and U+FFFD for ill-formed subparts. */
static void utf8_feed(lc_detok *d, uint8_t b, sink *s) {
    for (;;) {
        if (d->n_pending == 0) {
            if (b < 0x80) sink_put(s, &b, 1);
            else if (b >= 0xC2 && b <= 0xF4) d->pending[d->n_pending++] = b;
            else sink_put(s, replacement, 3); /* a stray continuation byte, or a lead byte no character has */
            return;
        }
        uint8_t lead = d->pending[0], lo = 0x80, hi = 0xBF;
        if (d->n_pending == 1) { /* second bytes that would make overlongs, surrogates or > U+10FFFF are excluded */
            if (lead == 0xE0) lo = 0xA0;
            else if (lead == 0xED) hi = 0x9F;
            else if (lead == 0xF0) lo = 0x90;
            else if (lead == 0xF4) hi = 0x8F;
        }
        if (b >= lo && b <= hi) {
            d->pending[d->n_pending++] = b;
            if (d->n_pending == utf8_need(lead)) {
                sink_put(s, d->pending, (size_t)d->n_pending);
                d->n_pending = 0;
            }
            return;
        }
        sink_put(s, replacement, 3); /* the held bytes are a maximal subpart; b starts afresh */
        d->n_pending = 0;
    }
}

/* Feeds b unless it is the leading space to drop (*strip: only the first byte of the first piece is a candidate). */
static void feed_stripped(lc_detok *d, uint8_t b, bool *strip, sink *s) {
    bool drop = *strip && b == ' ';
    *strip = false;
    if (drop) return;
    if (s->raw) sink_put(s, &b, 1);
    else utf8_feed(d, b, s);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Renders piece id through the validator into s. Returns false when the piece is hidden (renders nothing and does
** not count as the first piece). */
static bool render(const lc_vocab *v, lc_detok *d, int32_t id, sink *s) {
    const char *p = lc__vocab_text(v, id);
    uint32_t n = v->len[id];
    int type = v->type[id];
    bool strip = d->first && v->add_space_prefix;
    if ((type == LC_TOKTYPE_CONTROL || type == LC_TOKTYPE_UNKNOWN) && !d->show_special) return false;
    switch (type) {
    case LC_TOKTYPE_CONTROL: /* shown: as its text */
    case LC_TOKTYPE_UNKNOWN:
    case LC_TOKTYPE_USER_DEFINED:
        for (uint32_t i = 0; i < n; i++) feed_stripped(d, (uint8_t)p[i], &strip, s);
        break;
    case LC_TOKTYPE_NORMAL:
        if (v->kind == LC_VOCAB_BPE) { /* each character stands for a byte (GPT-2's mapping) */
            for (uint32_t i = 0; i < n;) {
                uint32_t cp;
                size_t k = lc_utf8_decode(p + i, n - i, &cp);
                if (cp < LC_BPE_CP_MAX && v->cp_byte[cp] >= 0) feed_stripped(d, (uint8_t)v->cp_byte[cp], &strip, s);
                else /* not a stand-in: the character itself */
                    for (size_t j = 0; j < k; j++) feed_stripped(d, (uint8_t)p[i + j], &strip, s);
                i += (uint32_t)k;
            }
            break;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint8_t c = (uint8_t)p[i];
            if (c == 0xE2 && i + 2 < n && (uint8_t)p[i + 1] == 0x96 && (uint8_t)p[i + 2] == 0x81) {
                i += 2;
                c = ' ';
            }
            feed_stripped(d, c, &strip, s);
        }
        break;
    case LC_TOKTYPE_BYTE: {
        int hi = n == 6 ? hex_digit(p[3]) : -1, lo = n == 6 ? hex_digit(p[4]) : -1;
        if (hi >= 0 && lo >= 0 && !memcmp(p, "<0x", 3) && p[5] == '>') feed_stripped(d, (uint8_t)(hi * 16 + lo), &strip, s);
        else /* a one-byte piece serving as byte token */
            for (uint32_t i = 0; i < n; i++) feed_stripped(d, (uint8_t)p[i], &strip, s);
        break;
    }
    default: return false; /* UNUSED, UNDEFINED: llama.cpp renders nothing */
    }
    d->first = false;
    return true;
}

int lc_vocab_detok_push(const lc_vocab *v, lc_detok *d, int32_t id, char *out, size_t cap) {
    if (!v || !d || (!out && cap)) return LC_ERR(LC_E_INVALID, "lc_detok_push: NULL argument");
    if (id < 0 || (uint32_t)id >= v->n)
        return LC_ERR(LC_E_RANGE, "lc_detok_push: token id %d is outside the vocabulary (%u tokens)", id, v->n);
    if (d->n_pending < 0 || d->n_pending > 3)
        return LC_ERR(LC_E_INVALID, "lc_detok_push: corrupt detokenizer state (%d pending bytes)", d->n_pending);
    /* count first on a copy, so a too-small buffer leaves d untouched */
    lc_detok probe = *d;
    sink count = {0};
    render(v, &probe, id, &count);
    if (count.n > cap || count.n > INT32_MAX)
        return LC_ERR(LC_E_RANGE, "lc_detok_push: token %d needs %zu bytes of output, the buffer has %zu", id, count.n,
                      cap);
    sink s = {.out = out, .cap = cap};
    render(v, d, id, &s);
    if (s.n < cap) out[s.n] = 0;
    return (int)s.n;
}

int lc_detok_flush(lc_detok *d, char *out, size_t cap) {
    if (!d || (!out && cap)) return LC_ERR(LC_E_INVALID, "lc_detok_flush: NULL argument");
    if (d->n_pending == 0) {
        if (cap) out[0] = 0;
        return 0;
    }
    if (cap < 3) return LC_ERR(LC_E_RANGE, "lc_detok_flush: 3 bytes needed for U+FFFD, the buffer has %zu", cap);
    memcpy(out, replacement, 3);
    if (cap > 3) out[3] = 0;
    d->n_pending = 0;
    return 3;
}

int lc_vocab_token_bytes(const lc_vocab *v, int32_t id, char *out, size_t cap) {
    if (!v || (!out && cap)) return LC_ERR(LC_E_INVALID, "lc_tokenizer_token_bytes: NULL argument");
    if (id < 0 || (uint32_t)id >= v->n)
        return LC_ERR(LC_E_RANGE, "lc_tokenizer_token_bytes: token id %d is outside the vocabulary (%u tokens)", id,
                      v->n);
    lc_detok d = {.show_special = true}; /* a continued text: no leading space is dropped */
    sink count = {.raw = true};
    render(v, &d, id, &count);
    if (count.n > cap || count.n > INT32_MAX)
        return LC_ERR(LC_E_RANGE, "lc_tokenizer_token_bytes: token %d needs %zu bytes, the buffer has %zu", id, count.n,
                      cap);
    d = (lc_detok){.show_special = true};
    sink s = {.out = out, .cap = cap, .raw = true};
    render(v, &d, id, &s);
    if (s.n < cap) out[s.n] = 0;
    return (int)s.n;
}
