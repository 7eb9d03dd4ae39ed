/* tok_jsonl.h - reading the reference lines of ../shared/data/tokenizer/ (JSON lines) in the tokenizer tests: the string
** and id-array values of a key on one line (each line is one flat JSON object). Test helper, not library code. */
#ifndef LC_TOK_JSONL_H
#define LC_TOK_JSONL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Minimal JSON for those lines: the string value of key at *p, decoded (\uXXXX with surrogate pairs) into a malloc'd
** buffer; NULL if the key is absent. */
static inline char *json_str(const char *line, const char *key, size_t *len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    char *out = malloc(strlen(p) + 1), *o = out;
    while (*p && *p != '"') {
        if (*p != '\\') { *o++ = *p++; continue; }
        p++;
        char c = *p++;
        if (c == 'n') *o++ = '\n';
        else if (c == 't') *o++ = '\t';
        else if (c == 'r') *o++ = '\r';
        else if (c == 'b') *o++ = '\b';
        else if (c == 'f') *o++ = '\f';
        else if (c == 'u') {
            unsigned cp = (unsigned)strtoul((char[]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) *o++ = (char)cp;
            else if (cp < 0x800) *o++ = (char)(0xC0 | cp >> 6), *o++ = (char)(0x80 | (cp & 0x3F));
            else if (cp < 0x10000)
                *o++ = (char)(0xE0 | cp >> 12), *o++ = (char)(0x80 | (cp >> 6 & 0x3F)), *o++ = (char)(0x80 | (cp & 0x3F));
            else
                *o++ = (char)(0xF0 | cp >> 18), *o++ = (char)(0x80 | (cp >> 12 & 0x3F)),
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F)), *o++ = (char)(0x80 | (cp & 0x3F));
        } else *o++ = c; /* \" \\ \/ */
    }
    *len = (size_t)(o - out);
    *o = 0;
    return out;
}

/* The integer array value of key (malloc'd), or NULL. */
static inline int32_t *json_ids(const char *line, const char *key, size_t *n) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": [", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    int32_t *ids = malloc((strlen(p) / 2 + 1) * sizeof *ids);
    *n = 0;
    while (*p && *p != ']') {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) break;
        ids[(*n)++] = (int32_t)v;
        p = e;
        while (*p == ',' || *p == ' ') p++;
    }
    return ids;
}

#endif /* LC_TOK_JSONL_H */
