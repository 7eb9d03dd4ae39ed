/* unicode.c - UTF-8 decoding and class lookup over the generated range table (binary search; ASCII and the rest of
** Latin-1 from a direct table, since most text lives there). */
#include "unicode.h"


static unsigned class_search(uint32_t cp) {
    unsigned lo = 0, hi = lc__unicode_n_ranges;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cp < lc__unicode_ranges[mid].first) hi = mid;
        else if (cp > lc__unicode_ranges[mid].last) lo = mid + 1;
        else return lc__unicode_ranges[mid].bits;
    }
    return 0;
}

unsigned lc_uclass(uint32_t cp) { return cp < 256 ? lc__unicode_latin1[cp] : class_search(cp); }

size_t lc_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *p = (const unsigned char *)s;
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else goto invalid;
    if (n < len) goto invalid;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) goto invalid;
        v = v << 6 | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto invalid;
    *cp = v;
    return len;
invalid:
    *cp = LC_UTF8_INVALID;
    return 1;
}
