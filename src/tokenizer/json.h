/* json.h - a small strict JSON reader (RFC 8259) for tokenizer.json and tokenizer_config.json.
**
** Parses a whole document into an array of nodes; strings are decoded (escapes, surrogate pairs) into one buffer.
** Errors name the file and the byte offset. Nesting deeper than 128 levels is rejected. Internal to the tokenizer.
*/
#ifndef LC_JSON_H
#define LC_JSON_H

#include "../base/base.h"

typedef enum lc_jtype { LC_J_NULL, LC_J_FALSE, LC_J_TRUE, LC_J_NUM, LC_J_STR, LC_J_ARR, LC_J_OBJ } lc_jtype;

typedef struct lc_jnode {
    lc_jtype type;
    uint32_t next;       /* next sibling (array item / object member), 0: none (node 0 is the root) */
    uint32_t child;      /* first item / member, 0: none */
    uint32_t n;          /* arrays, objects: item count; strings: byte length */
    uint64_t str;        /* strings: offset of the decoded bytes (NUL-terminated) in the string buffer */
    uint64_t key;        /* members of an object: offset of the decoded key */
    uint32_t key_len;
    double num;
} lc_jnode;

typedef struct lc_json {
    lc_jnode *nodes;
    uint32_t n_nodes, cap_nodes;
    char *strs;
    uint64_t n_strs, cap_strs;
} lc_json;

/* Parses text[0..len); name is used in messages. *out owned by the caller: lc__json_free. */
int lc__json_parse(const char *text, size_t len, const char *name, lc_json **out);
void lc__json_free(lc_json *j);

static inline const lc_jnode *lc__json_root(const lc_json *j) { return &j->nodes[0]; }
static inline const lc_jnode *lc__json_first(const lc_json *j, const lc_jnode *n) {
    return n->child ? &j->nodes[n->child] : NULL;
}
static inline const lc_jnode *lc__json_next(const lc_json *j, const lc_jnode *n) {
    return n->next ? &j->nodes[n->next] : NULL;
}
static inline const char *lc__json_str(const lc_json *j, const lc_jnode *n) { return j->strs + n->str; }
static inline const char *lc__json_key(const lc_json *j, const lc_jnode *n) { return j->strs + n->key; }
/* Member key of object o, or NULL (also when o is NULL or not an object). */
const lc_jnode *lc__json_get(const lc_json *j, const lc_jnode *o, const char *key);
/* The string value of member key, or NULL. */
const char *lc__json_get_str(const lc_json *j, const lc_jnode *o, const char *key);

#endif /* LC_JSON_H */
