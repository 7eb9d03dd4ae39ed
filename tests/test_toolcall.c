/* test_toolcall.c - Llama 3.1 tool-call parsing of streamed text (src/chat/toolcall.c).
**
** Every case is fed whole, cut in two at every byte, and byte by byte. Each time: what is shown while streaming is a
** prefix of the text the user must see (no part of a call ever shows), the text shown in the end is exactly that text,
** and the call (kind, name, JSON arguments) is the expected one. Expected values are written by hand from Meta's
** Llama 3.1 prompt format.
*/
#include "harness.h"
#include "llamac.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

typedef struct tc_case {
    const char *gen;   /* generated text */
    const char *shown; /* what the user sees */
    int kind;          /* -1: no call */
    const char *name, *args;
} tc_case;

static const tc_case k_cases[] = {
    {"Hello, world!", "Hello, world!", -1, NULL, NULL},
    {"  The answer is 42.\n", "  The answer is 42.\n", -1, NULL, NULL},
    {"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}", "", LC_TOOL_CUSTOM,
     "get_weather", "{\"city\": \"Paris\", \"days\": 3}"},
    {"\n{\"name\": \"f\", \"arguments\": {\"s\": \"a } b \\\" c\"}}\n", "", LC_TOOL_CUSTOM, "f",
     "{\"s\": \"a } b \\\" c\"}"},
    {"<|python_tag|>{\"name\": \"g\", \"parameters\": {}}", "", LC_TOOL_CUSTOM, "g", "{}"},
    {"<|python_tag|>brave_search.call(query=\"weather in \\\"Paris\\\"\")", "", LC_TOOL_BUILTIN, "brave_search",
     "{\"query\": \"weather in \\\"Paris\\\"\"}"},
    {"<|python_tag|>wolfram_alpha.call(query='2+2', n=3, exact=True)", "", LC_TOOL_BUILTIN, "wolfram_alpha",
     "{\"query\": \"2+2\", \"n\": 3, \"exact\": true}"},
    {"<|python_tag|>import math\nprint(math.pi)", "", LC_TOOL_CODE, "code_interpreter",
     "{\"code\": \"import math\\nprint(math.pi)\"}"},
    {"Let me look. <|python_tag|>brave_search.call(query=\"x\")", "Let me look. ", LC_TOOL_BUILTIN, "brave_search",
     "{\"query\": \"x\"}"},
    {"{curly} braces are fine", "{curly} braces are fine", -1, NULL, NULL},
    {"{\"name\": \"broken\", \"parameters\": ", "{\"name\": \"broken\", \"parameters\": ", -1, NULL, NULL},
    {"{\"name\": 5, \"parameters\": {}}", "{\"name\": 5, \"parameters\": {}}", -1, NULL, NULL},
    {"a <|py is not a tag", "a <|py is not a tag", -1, NULL, NULL},
    {"Grüße, 世界 🌍", "Grüße, 世界 🌍", -1, NULL, NULL},
};

static char g_why[1024];

/* Feeds c->gen in pieces cut at the offsets cuts[0..nc); false (reason in g_why) on any deviation. */
static bool run_case(lc_toolcall_parser *p, const tc_case *c, const size_t *cuts, int nc) {
    lc_toolcall_reset(p);
    char seen[1024] = "";
    size_t seen_n = 0, prev = 0;
    const size_t len = strlen(c->gen);
    for (int k = 0; k <= nc; k++) {
        const size_t end = k < nc ? cuts[k] : len;
        const char *show;
        size_t sn;
        if (lc_toolcall_feed(p, c->gen + prev, end - prev, &show, &sn)) return snprintf(g_why, sizeof g_why, "feed failed"), false;
        memcpy(seen + seen_n, show, sn);
        seen_n += sn;
        seen[seen_n] = 0;
        if (seen_n > strlen(c->shown) || memcmp(seen, c->shown, seen_n)) {
            snprintf(g_why, sizeof g_why, "while streaming it showed \"%s\", not a prefix of \"%s\"", seen, c->shown);
            return false;
        }
        prev = end;
    }
    const char *show;
    size_t sn, ncalls;
    const lc_tool_call *calls;
    if (lc_toolcall_finish(p, &show, &sn, &calls, &ncalls)) return snprintf(g_why, sizeof g_why, "finish failed"), false;
    memcpy(seen + seen_n, show, sn);
    seen_n += sn;
    seen[seen_n] = 0;
    if (strcmp(seen, c->shown)) return snprintf(g_why, sizeof g_why, "showed \"%s\", want \"%s\"", seen, c->shown), false;
    if (c->kind < 0 && ncalls) return snprintf(g_why, sizeof g_why, "found a call '%s' in plain text", calls[0].name), false;
    if (c->kind >= 0 && (ncalls != 1 || calls[0].kind != c->kind || strcmp(calls[0].name, c->name) ||
                         strcmp(calls[0].arguments, c->args)))
        return snprintf(g_why, sizeof g_why, "call: got %zu (%d %s %s), want (%d %s %s)", ncalls,
                        ncalls ? calls[0].kind : -1, ncalls ? calls[0].name : "-", ncalls ? calls[0].arguments : "-",
                        c->kind, c->name, c->args),
               false;
    return true;
}

TEST(calls_and_text_at_every_split) {
    lc_toolcall_parser *p;
    CHECK_OK(lc_toolcall_parser_new(&p));
    int runs = 0;
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) {
        const tc_case *c = &k_cases[i];
        const size_t len = strlen(c->gen);
        size_t cuts[512];
        bool ok = run_case(p, c, NULL, 0);
        for (size_t k = 1; ok && k < len; k++) { /* two pieces */
            cuts[0] = k;
            ok = run_case(p, c, cuts, 1);
        }
        for (size_t k = 0; k + 1 < len && k < 512; k++) cuts[k] = k + 1; /* byte by byte */
        if (ok) ok = run_case(p, c, cuts, (int)(len - 1 < 512 ? len - 1 : 512));
        runs += 2 + (int)len;
        if (!ok) {
            lc_toolcall_parser_free(p);
            FAILF("case %zu (%s): %s", i, c->gen, g_why);
        }
    }
    lc_toolcall_parser_free(p);
    printf("        %zu cases, %d streamed runs\n", sizeof k_cases / sizeof *k_cases, runs);
}

int main(void) {
    printf("test_toolcall\n");
    RUN(calls_and_text_at_every_split);
    return TEST_SUMMARY();
}
