/* unicode.h - what the tokenizers need of Unicode: UTF-8 decoding and the classes \p{L}, \p{N}, \s.
**
** The class table (unicode_tables.c) is generated from the Unicode Character Database by
** scripts/gen_unicode_tables.py; lc__unicode_version names the UCD version it came from.
*/
#ifndef LC_UNICODE_H
#define LC_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum { LC_UCLASS_LETTER = 1, LC_UCLASS_NUMBER = 2, LC_UCLASS_SPACE = 4 };

typedef struct lc_urange {
    uint32_t first, last, bits;
} lc_urange;

extern const char lc__unicode_version[];
extern const lc_urange lc__unicode_ranges[];
extern const unsigned lc__unicode_n_ranges;
extern const unsigned char lc__unicode_latin1[256];

/* Class bits of code point cp (0: none of letter, number, white space). */
unsigned lc_uclass(uint32_t cp);

/* Decodes one well-formed UTF-8 character at s[0..n) (n > 0): returns its length (1-4) and sets *cp. An ill-formed
** sequence (overlong, surrogate, > U+10FFFF, truncated, stray byte) returns 1 and sets *cp to LC_UTF8_INVALID. */
#define LC_UTF8_INVALID 0xFFFFFFFFu
size_t lc_utf8_decode(const char *s, size_t n, uint32_t *cp);

#endif /* LC_UNICODE_H */
