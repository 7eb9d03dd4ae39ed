/* fuzz_toolcall.c - libFuzzer target for the streaming tool-call parser (src/chat/toolcall.c).
**
** The first byte picks where the input is cut into pieces. Checks (each violation traps): what is shown is always a
** prefix of the input; without a call, everything is shown in the end; a call has a name and JSON-object arguments.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    const unsigned step = data[0] % 7 + 1;
    const char *in = (const char *)data + 1;
    const size_t n = size - 1;
    lc_toolcall_parser *p;
    if (lc_toolcall_parser_new(&p)) return 0;
    char *seen = malloc(n + 1);
    size_t sn = 0;
    for (size_t i = 0; i < n; i += step) {
        const size_t k = n - i < step ? n - i : step;
        const char *show;
        size_t m;
        if (lc_toolcall_feed(p, in + i, k, &show, &m)) die("feed failed");
        if (sn + m > n || memcmp(in + sn, show, m)) die("shown text is not the input's prefix");
        memcpy(seen + sn, show, m);
        sn += m;
    }
    const char *show;
    size_t m, nc;
    const lc_tool_call *calls;
    if (lc_toolcall_finish(p, &show, &m, &calls, &nc)) die("finish failed");
    if (sn + m > n || memcmp(in + sn, show, m)) die("final text is not the input's continuation");
    sn += m;
    if (!nc && sn != n) die("no call, but not all text shown");
    if (nc && (!calls[0].name || !calls[0].arguments || calls[0].arguments[0] != '{')) die("malformed call");
    free(seen);
    lc_toolcall_parser_free(p);
    return 0;
}
