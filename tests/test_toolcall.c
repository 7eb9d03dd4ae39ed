/* test_toolcall.c - Llama 3.1 tool-call parsing of streamed text (src/chat/toolcall.c).
**
** Every case is fed whole, cut in two at every byte, cut in three at every pair of bytes (shorter cases), and byte
** by byte. Each time: what is shown while streaming is a prefix of the text the user must see (no byte of a call
** ever shows), the text shown in the end is exactly that text, and the calls (kind, name, JSON arguments) are the
** expected ones. Text that cannot be a call must be shown before the answer ends (streaming is not delayed). The
** expected values are written by hand from Meta's Llama 3.1 prompt format and Python's json.dumps formatting.
*/
#include "harness.h"
#include "llamac.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

typedef struct tc_case {
    const char *gen;    /* generated text */
    const char *shown;  /* what the user sees in the end */
    const char *early;  /* what must have been shown once all of gen was fed (before finish); NULL: nothing */
    int n_calls;        /* 0: no call */
    int kind;
    const char *name, *args;
    const char *name2, *args2; /* a second call */
    int end;            /* LC_TOOL_END_* */
} tc_case;

static const tc_case k_cases[] = {
    /* plain text, shown as it streams */
    {"Hello, world!", "Hello, world!", "Hello, world!", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"  The answer is 42.\n", "  The answer is 42.\n", "  The answer is 42.\n", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"Grüße, 世界 🌍", "Grüße, 世界 🌍", "Grüße, 世界 🌍", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"{curly} braces are fine", "{curly} braces are fine", "{curly} braces are fine", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"{\"a\": 1} is JSON but no call", "{\"a\": 1} is JSON but no call", "{\"a\": 1} is JSON but no call", 0, 0, NULL,
     NULL, NULL, NULL, 0},
    {"a <|py is not a tag", "a <|py is not a tag", "a <|py is not a tag", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"ends with <|pyth", "ends with <|pyth", "ends with ", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"<function is not a call", "<function is not a call", "<function is not a call", 0, 0, NULL, NULL, NULL, NULL, 0},
    /* custom calls: JSON */
    {"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}", "", NULL, 1, LC_TOOL_CUSTOM,
     "get_weather", "{\"city\": \"Paris\", \"days\": 3}", NULL, NULL, 0},
    {"\n{\"name\": \"f\", \"arguments\": {\"s\": \"a } b \\\" c\"}}\n", "", NULL, 1, LC_TOOL_CUSTOM, "f",
     "{\"s\": \"a } b \\\" c\"}", NULL, NULL, 0},
    {"{\"name\":\"f\",\"parameters\":{\"nested\":{\"x\":[1,{\"y\":\"}}{{\"}],\"z\":null},\"t\":true,\"e\":-1.5e3}}", "",
     NULL, 1, LC_TOOL_CUSTOM, "f", "{\"nested\": {\"x\": [1, {\"y\": \"}}{{\"}], \"z\": null}, \"t\": true, \"e\": -1500.0}",
     NULL, NULL, 0},
    {"{\"name\": \"translate\", \"parameters\": {\"text\": \"Grüße 世界 🌍\", \"esc\": \"\\u00e9\\n\\\\\"}}", "", NULL, 1,
     LC_TOOL_CUSTOM, "translate", "{\"text\": \"Grüße 世界 🌍\", \"esc\": \"é\\n\\\\\"}", NULL, NULL, 0},
    {"{\"parameters\": {}, \"name\": \"no_args\"}", "", NULL, 1, LC_TOOL_CUSTOM, "no_args", "{}", NULL, NULL, 0},
    {"{\"name\": \"s\", \"arguments\": \"{\\\"q\\\": 1}\"}", "", NULL, 1, LC_TOOL_CUSTOM, "s", "{\"q\": 1}", NULL, NULL,
     0},
    {"<|python_tag|>{\"name\": \"g\", \"parameters\": {}}", "", NULL, 1, LC_TOOL_CUSTOM, "g", "{}", NULL, NULL, 0},
    {"{\"name\": \"a\", \"parameters\": {\"i\": 1}}; {\"name\": \"b\", \"parameters\": {\"j\": \"x;y\"}}", "", NULL, 2,
     LC_TOOL_CUSTOM, "a", "{\"i\": 1}", "b", "{\"j\": \"x;y\"}", 0},
    {"<function=spotify_trending_songs>{\"n\": \"5\"}</function>", "", NULL, 1, LC_TOOL_CUSTOM,
     "spotify_trending_songs", "{\"n\": \"5\"}", NULL, NULL, 0},
    {"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}<|eot_id|>ignored", "", NULL, 1, LC_TOOL_CUSTOM,
     "get_weather", "{\"city\": \"Oslo\"}", NULL, NULL, LC_TOOL_END_EOT},
    /* built-in calls and code */
    {"<|python_tag|>brave_search.call(query=\"weather in \\\"Paris\\\"\")", "", NULL, 1, LC_TOOL_BUILTIN,
     "brave_search", "{\"query\": \"weather in \\\"Paris\\\"\"}", NULL, NULL, 0},
    {"<|python_tag|>wolfram_alpha.call(query='2+2', n=3, exact=True, x=None)<|eom_id|>", "", NULL, 1,
     LC_TOOL_BUILTIN, "wolfram_alpha", "{\"query\": \"2+2\", \"n\": 3, \"exact\": true, \"x\": null}", NULL, NULL,
     LC_TOOL_END_EOM},
    {"<|python_tag|>brave_search.call(query=\"caf\\u00e9 \\x41 (b) \\\\d 東京\")", "", NULL, 1, LC_TOOL_BUILTIN,
     "brave_search", "{\"query\": \"café A (b) \\\\d 東京\"}", NULL, NULL, 0},
    {"<|python_tag|>import math\nprint(math.pi)", "", NULL, 1, LC_TOOL_CODE, "code_interpreter",
     "{\"code\": \"import math\\nprint(math.pi)\"}", NULL, NULL, 0},
    {"<|python_tag|>brave_search.call(query=\"x\"", "", NULL, 1, LC_TOOL_CODE, "code_interpreter",
     "{\"code\": \"brave_search.call(query=\\\"x\\\"\"}", NULL, NULL, 0},
    {"Let me look. <|python_tag|>brave_search.call(query=\"x\")", "Let me look. ", "Let me look. ", 1,
     LC_TOOL_BUILTIN, "brave_search", "{\"query\": \"x\"}", NULL, NULL, 0},
    /* malformed: shown as text in the end */
    {"{\"name\": \"broken\", \"parameters\": ", "{\"name\": \"broken\", \"parameters\": ", NULL, 0, 0, NULL, NULL,
     NULL, NULL, 0},
    {"{\"name\": 5, \"parameters\": {}}", "{\"name\": 5, \"parameters\": {}}", "{\"name\": 5, \"parameters\": {}}", 0,
     0, NULL, NULL, NULL, NULL, 0},
    {"{\"name\": \"f\"}", "{\"name\": \"f\"}", "{\"name\": \"f\"}", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"{\"name\": \"f\", \"parameters\": {}} and then text", "{\"name\": \"f\", \"parameters\": {}} and then text",
     "{\"name\": \"f\", \"parameters\": {}} and then text", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"{\"name\": \"f\", \"parameters\": {\"s\": \"bad \\q escape\"}}", "{\"name\": \"f\", \"parameters\": {\"s\": \"bad \\q escape\"}}",
     "{\"name\": \"f\", \"parameters\": {\"s\": \"bad \\q escape\"}}", 0, 0, NULL, NULL, NULL, NULL, 0},
    {"<function=f>{\"a\": 1}", "<function=f>{\"a\": 1}", NULL, 0, 0, NULL, NULL, NULL, NULL, 0},
    {"<|python_tag|>", "<|python_tag|>", NULL, 0, 0, NULL, NULL, NULL, NULL, 0},
    /* end markers */
    {"Done.<|eot_id|>more", "Done.", "Done.", 0, 0, NULL, NULL, NULL, NULL, LC_TOOL_END_EOT},
    {"Wait<|eom_id|>", "Wait", "Wait", 0, 0, NULL, NULL, NULL, NULL, LC_TOOL_END_EOM},
    {"almost <|eo", "almost <|eo", "almost ", 0, 0, NULL, NULL, NULL, NULL, 0},
};

static char g_why[2048];

/* Feeds c->gen in pieces cut at the offsets cuts[0..nc); false (reason in g_why) on any deviation. */
static bool run_case(lc_toolcall_parser *p, const tc_case *c, const size_t *cuts, int nc) {
    lc_toolcall_reset(p);
    char seen[1024] = "";
    size_t seen_n = 0, prev = 0;
    const size_t len = strlen(c->gen), want_n = strlen(c->shown);
    for (int k = 0; k <= nc; k++) {
        const size_t end = k < nc ? cuts[k] : len;
        const char *show;
        size_t sn;
        if (lc_toolcall_feed(p, c->gen + prev, end - prev, &show, &sn)) return snprintf(g_why, sizeof g_why, "feed failed"), false;
        if (seen_n + sn > want_n || memcmp(c->shown + seen_n, show, sn)) {
            snprintf(g_why, sizeof g_why, "while streaming it showed \"%.*s%.*s\", not a prefix of \"%s\"", (int)seen_n,
                     seen, (int)sn, show, c->shown);
            return false;
        }
        memcpy(seen + seen_n, show, sn);
        seen_n += sn;
        prev = end;
    }
    const size_t early_n = c->early ? strlen(c->early) : 0;
    if (seen_n != early_n) {
        snprintf(g_why, sizeof g_why, "after all was fed it had shown \"%.*s\", want \"%s\"", (int)seen_n, seen,
                 c->early ? c->early : "");
        return false;
    }
    const char *show;
    size_t sn, ncalls;
    const lc_tool_call *calls;
    if (lc_toolcall_finish(p, &show, &sn, &calls, &ncalls)) return snprintf(g_why, sizeof g_why, "finish failed"), false;
    memcpy(seen + seen_n, show, sn);
    seen_n += sn;
    seen[seen_n] = 0;
    if (strcmp(seen, c->shown)) return snprintf(g_why, sizeof g_why, "showed \"%s\", want \"%s\"", seen, c->shown), false;
    if ((int)ncalls != c->n_calls)
        return snprintf(g_why, sizeof g_why, "%zu calls (first: %s %s), want %d", ncalls, ncalls ? calls[0].name : "-",
                        ncalls ? calls[0].arguments : "-", c->n_calls),
               false;
    for (size_t i = 0; i < ncalls; i++) {
        const char *name = i ? c->name2 : c->name, *args = i ? c->args2 : c->args;
        if (calls[i].kind != c->kind || strcmp(calls[i].name, name) || strcmp(calls[i].arguments, args))
            return snprintf(g_why, sizeof g_why, "call %zu: got (%d %s %s), want (%d %s %s)", i, calls[i].kind,
                            calls[i].name, calls[i].arguments, c->kind, name, args),
                   false;
        if ((calls[i].kind == LC_TOOL_CODE) != (calls[i].code != NULL))
            return snprintf(g_why, sizeof g_why, "code field wrong for kind %d", calls[i].kind), false;
    }
    if (lc_toolcall_end_marker(p) != c->end)
        return snprintf(g_why, sizeof g_why, "end marker %d, want %d", lc_toolcall_end_marker(p), c->end), false;
    if (!ncalls && strcmp(c->shown, c->gen) && !c->end && !lc_toolcall_note(p))
        return snprintf(g_why, sizeof g_why, "held text shown without a note why"), false;
    return true;
}

TEST(calls_and_text_at_every_split) {
    lc_toolcall_parser *p;
    CHECK_OK(lc_toolcall_parser_new(&p));
    long runs = 0;
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) {
        const tc_case *c = &k_cases[i];
        const size_t len = strlen(c->gen);
        size_t cuts[512];
        bool ok = run_case(p, c, NULL, 0);
        runs++;
        for (size_t k = 1; ok && k < len; k++, runs++) { /* two pieces */
            cuts[0] = k;
            ok = run_case(p, c, cuts, 1);
        }
        const size_t max3 = getenv("LLAMAC_QUICK") ? 24 : 90;
        for (size_t a = 1; ok && len <= max3 && a < len; a++) /* three pieces */
            for (size_t b = a + 1; ok && b < len; b++, runs++) {
                cuts[0] = a, cuts[1] = b;
                ok = run_case(p, c, cuts, 2);
            }
        for (size_t k = 0; k + 1 < len && k < 512; k++) cuts[k] = k + 1; /* byte by byte */
        if (ok) ok = run_case(p, c, cuts, (int)(len - 1 < 512 ? len - 1 : 512)), runs++;
        if (!ok) {
            lc_toolcall_parser_free(p);
            FAILF("case %zu (%s): %s (cuts %zu %zu)", i, c->gen, g_why, cuts[0], cuts[1]);
        }
    }
    lc_toolcall_parser_free(p);
    printf("        %zu cases, %ld streamed runs\n", sizeof k_cases / sizeof *k_cases, runs);
}

/* A long plain answer that starts like JSON is shown as soon as it stops being JSON, not held to the end. */
TEST(text_starting_like_json_streams) {
    lc_toolcall_parser *p;
    CHECK_OK(lc_toolcall_parser_new(&p));
    const char *show;
    size_t sn, total = 0;
    const char *pieces[] = {"{", "\"", "name", "\":", " \"x\"", "}", " is", " how", " you", " write", " it."};
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        CHECK_OK(lc_toolcall_feed(p, pieces[i], strlen(pieces[i]), &show, &sn));
        total += sn;
        if (i < 5) CHECK_EQ_INT(sn, 0); /* still a possible call */
    }
    CHECK_EQ_INT(total, strlen("{\"name\": \"x\"} is how you write it."));
    CHECK(lc_toolcall_note(p) != NULL);
    lc_toolcall_parser_free(p);
}

/* Calls with an id of the Llama 3 vocabulary's control token: the tag arrives as one piece, then text pieces. */
TEST(token_pieces_of_a_builtin_call) {
    lc_toolcall_parser *p;
    CHECK_OK(lc_toolcall_parser_new(&p));
    const char *pieces[] = {"<|python_tag|>", "br", "ave", "_search", ".call", "(query", "=\"", "L", "lama",
                            " ", "3", ".", "1", " release", "\")"};
    const char *show;
    size_t sn, nc;
    const lc_tool_call *calls;
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        CHECK_OK(lc_toolcall_feed(p, pieces[i], strlen(pieces[i]), &show, &sn));
        CHECK_EQ_INT(sn, 0);
    }
    CHECK_OK(lc_toolcall_finish(p, &show, &sn, &calls, &nc));
    CHECK_EQ_INT(sn, 0);
    CHECK_EQ_INT(nc, 1);
    CHECK(!strcmp(calls[0].name, "brave_search") && !strcmp(calls[0].arguments, "{\"query\": \"Llama 3.1 release\"}"));
    /* the parser is reusable: reset forgets everything */
    lc_toolcall_reset(p);
    CHECK_OK(lc_toolcall_feed(p, "plain", 5, &show, &sn));
    CHECK(sn == 5 && !memcmp(show, "plain", 5));
    CHECK_OK(lc_toolcall_finish(p, &show, &sn, &calls, &nc));
    CHECK_EQ_INT(nc, 0);
    lc_toolcall_parser_free(p);
}

/* Pathological inputs: deep nesting, invalid UTF-8 and NUL bytes, a huge answer; nothing crashes, the contract
** (shown text is a prefix; all of it when no call) holds. */
TEST(pathological_inputs) {
    lc_toolcall_parser *p;
    CHECK_OK(lc_toolcall_parser_new(&p));
    static char buf[200000];
    size_t n = 0;
    n += (size_t)snprintf(buf, sizeof buf, "{\"name\": \"d\", \"parameters\": ");
    for (int i = 0; i < 100; i++) buf[n++] = '[';
    for (int i = 0; i < 100; i++) buf[n++] = ']';
    buf[n++] = '}';
    static const char bad[] = "{\"name\": \"\xff\xfe\", \"parameters\": {\"\0\": 1}}";
    const char *texts[3] = {buf, bad, NULL};
    const size_t lens[3] = {n, sizeof bad - 1, 150000};
    memset(buf + n + 1, 'x', 150000);
    texts[2] = buf + n + 1;
    for (int t = 0; t < 3; t++) {
        lc_toolcall_reset(p);
        const char *show;
        size_t sn, total = 0, nc;
        const lc_tool_call *calls;
        for (size_t i = 0; i < lens[t]; i += 7) {
            const size_t k = lens[t] - i < 7 ? lens[t] - i : 7;
            CHECK_OK(lc_toolcall_feed(p, texts[t] + i, k, &show, &sn));
            CHECK(!memcmp(show, texts[t] + total, sn));
            total += sn;
        }
        CHECK_OK(lc_toolcall_finish(p, &show, &sn, &calls, &nc));
        total += sn;
        CHECKF(nc == 0 && total == lens[t], "text %d: %zu calls, %zu of %zu bytes shown", t, nc, total, lens[t]);
    }
    lc_toolcall_parser_free(p);
}

void lc__alloc_fail_after(long n); /* src/base: the n-th allocation from now fails */

/* Every allocation failing in turn: LC_E_NOMEM or a correct result, never a crash or a leak (ASan). */
TEST(out_of_memory_is_an_error_not_a_crash) {
    const char *texts[] = {"{\"name\": \"a\", \"parameters\": {\"i\": [1, \"x\"]}}; {\"name\": \"b\", \"parameters\": {}}",
                           "Hi <|python_tag|>brave_search.call(query=\"caf\\u00e9\", n=2)", "<|python_tag|>print(1)",
                           "<function=f>{\"a\": 1}</function>", "plain text"};
    int failures = 0;
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        for (int k = 1;; k++) {
            lc_toolcall_parser *p = NULL;
            lc__alloc_fail_after(k);
            int r = lc_toolcall_parser_new(&p);
            const char *show;
            size_t sn, nc = 0;
            const lc_tool_call *calls;
            for (size_t i = 0; !r && texts[t][i]; i++) r = lc_toolcall_feed(p, texts[t] + i, 1, &show, &sn);
            if (!r) r = lc_toolcall_finish(p, &show, &sn, &calls, &nc);
            lc__alloc_fail_after(0);
            lc_toolcall_parser_free(p);
            if (!r) {
                CHECKF(nc == (t == 0 ? 2u : t == 4 ? 0u : 1u), "text %zu: %zu calls after %d failures", t, nc, k - 1);
                break;
            }
            CHECKF(r == LC_E_NOMEM, "text %zu, allocation %d: status %d", t, k, r);
            failures++;
        }
    }
    printf("        %d allocation failures handled\n", failures);
}

int main(void) {
    printf("test_toolcall\n");
    RUN(calls_and_text_at_every_split);
    RUN(text_starting_like_json_streams);
    RUN(token_pieces_of_a_builtin_call);
    RUN(pathological_inputs);
    RUN(out_of_memory_is_an_error_not_a_crash);
    return TEST_SUMMARY();
}
