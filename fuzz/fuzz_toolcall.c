/* fuzz_toolcall.c - libFuzzer target for the streaming tool-call parser (src/chat/toolcall.c).
**
** The first byte picks how the input is cut into pieces (fixed steps or a pseudo-random walk). Checks (each violation
** traps): what is shown is always a prefix of the input before its first end marker (<|eom_id|>, <|eot_id|>); without
** a call, all of that is shown in the end; a call has a name and JSON-object arguments; code calls carry their code;
** the parser is reusable after a reset.
*/
#include "llamac.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) {
    fprintf(stderr, "%s\n", what);
    __builtin_trap();
}

static void check(lc_toolcall_parser *p, const char *in, size_t n, unsigned mode) {
    size_t cut = n;
    const char *const markers[2] = {"<|eom_id|>", "<|eot_id|>"};
    for (int k = 0; k < 2; k++) {
        const char *e = memmem(in, n, markers[k], 10);
        if (e && (size_t)(e - in) < cut) cut = (size_t)(e - in);
    }
    size_t sn = 0;
    uint32_t rng = mode * 2654435761u + 1;
    for (size_t i = 0; i < n;) {
        size_t step = mode % 8 + 1;
        if (mode >= 128) { /* a walk of 1..16-byte pieces */
            rng = rng * 1103515245u + 12345u;
            step = (rng >> 16) % 16 + 1;
        }
        const size_t k = n - i < step ? n - i : step;
        const char *show;
        size_t m;
        if (lc_toolcall_feed(p, in + i, k, &show, &m)) die("feed failed");
        if (sn + m > cut || memcmp(in + sn, show, m)) die("shown text is not a prefix of the answer");
        sn += m;
        i += k;
    }
    const char *show;
    size_t m, nc;
    const lc_tool_call *calls;
    if (lc_toolcall_finish(p, &show, &m, &calls, &nc)) die("finish failed");
    if (sn + m > cut || memcmp(in + sn, show, m)) die("final text is not the answer's continuation");
    sn += m;
    if (!nc && sn != cut) die("no call, but not all text shown");
    for (size_t i = 0; i < nc; i++) {
        const lc_tool_call *c = &calls[i];
        const size_t al = c->arguments ? strlen(c->arguments) : 0;
        if (!c->name || !al || c->arguments[0] != '{' || c->arguments[al - 1] != '}') die("malformed call");
        if ((c->kind == LC_TOOL_CODE) != (c->code != NULL)) die("code field wrong");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    lc_toolcall_parser *p;
    if (lc_toolcall_parser_new(&p)) return 0;
    check(p, (const char *)data + 1, size - 1, data[0]);
    lc_toolcall_reset(p);
    check(p, (const char *)data + 1, size - 1, data[0] ^ 0x80u); /* the other cutting, on the same parser */
    lc_toolcall_parser_free(p);
    return 0;
}
