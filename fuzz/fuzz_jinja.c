/* fuzz_jinja.c - libFuzzer target for the chat-template engine (src/chat: segmentation, expression parser,
** evaluator, JSON variables, printing).
**
** The input is a template, optionally followed by a NUL byte and a JSON text of variables. Checks (each violation
** traps): parsing and rendering either succeed or fail with LC_E_FORMAT / LC_E_INVALID / LC_E_NOMEM and a message
** that names the template ("t:") or the variables; a successful render is NUL-terminated at its length and renders
** again to the same bytes (the engine is deterministic and a parsed template immutable).
*/
#include "llamac.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void die(const char *what) {
    fprintf(stderr, "%s (last error: %s)\n", what, lc_last_error());
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data;
    const char *nul = memchr(data, 0, size);
    const size_t tlen = nul ? (size_t)(nul - src) : size;
    const char *vars = nul ? nul + 1 : "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"x\": [1, 2.5, null]}";
    const size_t vlen = nul ? size - tlen - 1 : strlen(vars);
    lc_template *t = NULL;
    int r = lc_template_parse(src, tlen, "t", &t);
    if (r) {
        if (r != LC_E_FORMAT && r != LC_E_NOMEM) die("parse: unexpected status");
        if (r == LC_E_FORMAT && strncmp(lc_last_error(), "t:", 2)) die("parse error without the template's name");
        return 0;
    }
    char *out = NULL, *out2 = NULL;
    size_t n = 0, n2 = 0;
    r = lc_template_render(t, vars, vlen, &out, &n);
    if (r) {
        if (r != LC_E_FORMAT && r != LC_E_INVALID && r != LC_E_NOMEM) die("render: unexpected status");
        if (r == LC_E_FORMAT && strncmp(lc_last_error(), "t:", 2)) die("render error without the template's name");
    } else {
        if (!out || out[n] != 0) die("render output not NUL-terminated at its length");
        if (lc_template_render(t, vars, vlen, &out2, &n2) || n2 != n || memcmp(out, out2, n)) die("render not repeatable");
    }
    lc_free(out);
    lc_free(out2);
    lc_template_free(t);
    return 0;
}
