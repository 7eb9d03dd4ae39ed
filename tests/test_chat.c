/* test_chat.c - chat sessions (src/chat/session.c) and `llamac chat`, on a model generated here and on stories260K.
**
** KV-cache reuse, checked against independent references: with greedy sampling, each turn's answer equals the
** answer of a fresh context given the whole re-rendered conversation, and the tokens a turn decodes are exactly those
** after the longest common prefix of (the previous prompt's tokens + the tokens generated) and the new prompt's tokens;
** the previous prompt is never processed again. Dropping and changing old messages (a diverging cache tail) still
** gives the fresh-context answers. Tool-call flow: fake model outputs (Meta's Llama 3.1 format) are parsed, added to
** the history with the tools' results, and the conversation renders byte for byte as Python's Jinja2 rendered the
** same conversation (../shared/data/chat/chat.jsonl). The tool over stdin: answers with reuse equal --no-reuse,
** /save and /load continue a conversation, a full context is refused and /drop resends, multi-line input, Ctrl-C
** stops an answer and the chat goes on, usage errors.
*/
#include "harness.h"
#include "llamac.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_bin[1024], g_dir[64], g_synth[128], g_stories[1024];
static const char *g_models[2];
static int g_n_models;
static bool g_quick;

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

/* ---- the references: a fresh context, greedy ---- */

/* The tokens of text as a session must see them: control tokens parsed, BOS when the tokenizer adds one and the text
** does not start with it. */
static int32_t *ref_tokens(const lc_model *m, const char *text, size_t len, int32_t *n) {
    size_t need = 0;
    lc_tokenize(m, text, len, LC_TOK_PARSE_SPECIAL, NULL, 0, &need);
    int32_t *ids = malloc(sizeof *ids * (need + 2));
    if (!ids || lc_tokenize(m, text, len, LC_TOK_PARSE_SPECIAL, ids + 1, need + 1, &need)) {
        free(ids);
        return NULL;
    }
    const bool bos = lc_token_add_bos(m) && lc_token_bos(m) >= 0 && (need == 0 || ids[1] != lc_token_bos(m));
    if (bos) ids[0] = lc_token_bos(m);
    else memmove(ids, ids + 1, sizeof *ids * need);
    *n = (int32_t)need + bos;
    return ids;
}

/* Greedy answer of a fresh context to prompt[0..n): at most max_gen tokens (ids into gen, *n_gen), text into text. */
static int ref_answer(lc_model *m, const int32_t *prompt, int32_t n, int max_gen, int32_t *gen, int *n_gen, char *text,
                      size_t cap) {
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = 512, cp.n_threads = 2;
    lc_context *c;
    int r = lc_context_new(m, &cp, &c);
    if (r) return r;
    for (int32_t i = 0; !r && i < n; i += 512) {
        lc_batch b = {.n_tokens = n - i < 512 ? n - i : 512, .token = prompt + i};
        r = lc_decode(c, &b);
    }
    lc_sampler_params sp = lc_sampler_default_params();
    sp.temp = 0;
    lc_sampler *s = NULL;
    if (!r) r = lc_sampler_new(&sp, (int32_t)lc_model_hparams(m)->n_vocab, &s);
    lc_detok d;
    lc_detok_init(&d, false);
    size_t tn = 0;
    int32_t row = (n - 1) % 512;
    *n_gen = 0;
    while (!r && *n_gen < max_gen) {
        const int32_t id = lc_sampler_sample(s, lc_get_logits(c, row));
        lc_sampler_accept(s, id);
        if (lc_token_is_eog(m, id)) break;
        gen[(*n_gen)++] = id;
        const int k = lc_detok_push(m, &d, id, text + tn, cap - tn);
        if (k > 0) tn += (size_t)k;
        lc_batch b = {.n_tokens = 1, .token = &id};
        r = lc_decode(c, &b);
        row = 0;
    }
    const int k = lc_detok_flush(&d, text + tn, cap - tn);
    if (k > 0) tn += (size_t)k;
    text[tn] = 0;
    lc_sampler_free(s);
    lc_context_free(c);
    return r;
}

/* One turn of a session (greedy, at most max_gen tokens); the answer's text into text. */
static int session_turn(lc_chat *ch, lc_sampler *s, int max_gen, lc_chat_stats *st, char *text, size_t cap) {
    int r = lc_chat_prompt(ch, st);
    size_t tn = 0;
    int state = LC_CHAT_GOING;
    for (int g = 0; !r && state == LC_CHAT_GOING && g < max_gen; g++) {
        const char *t;
        size_t n;
        r = lc_chat_step(ch, s, &t, &n, &state);
        if (!r && tn + n < cap) memcpy(text + tn, t, n), tn += n;
    }
    const char *t;
    size_t n, nc;
    const lc_tool_call *calls;
    if (!r) r = lc_chat_end(ch, &t, &n, &calls, &nc);
    if (!r && tn + n < cap) memcpy(text + tn, t, n), tn += n;
    text[tn] = 0;
    lc_chat_get_stats(ch, st);
    return r;
}

TEST(turns_reuse_the_cache_and_answer_as_a_fresh_context) {
    if (!g_n_models) SKIP("no model");
    for (int mi = 0; mi < g_n_models; mi++) {
        lc_model *m;
        CHECK_OK(lc_model_load(g_models[mi], NULL, &m));
        lc_context_params cp = lc_context_default_params();
        cp.n_ctx = 512, cp.n_threads = 2;
        lc_context *c;
        CHECK_OK(lc_context_new(m, &cp, &c));
        lc_chat *ch;
        lc_chat_params p = lc_chat_default_params();
        p.vars_json = "{\"date_string\": \"26 Jul 2024\"}";
        CHECK_OK(lc_chat_new(m, c, &p, &ch));
        lc_sampler_params sp = lc_sampler_default_params();
        sp.temp = 0;
        lc_sampler *s;
        CHECK_OK(lc_sampler_new(&sp, (int32_t)lc_model_hparams(m)->n_vocab, &s));
        CHECK_OK(lc_chat_set_system(ch, "You are a storyteller."));
        const char *user[] = {"Once upon a time", "What happened next?", "Tell me about the sea", "And the moon?"};
        static int32_t kv[1024], gen[256];
        int32_t n_kv = 0;
        int prev_prompt = 0;
        for (int turn = 0; turn < 4; turn++) {
            if (turn == 2) CHECK_OK(lc_chat_drop_oldest(ch, NULL));                 /* the cache tail diverges */
            if (turn == 3) CHECK_OK(lc_chat_set_system(ch, "You are a poet.")); /* it diverges at the start */
            CHECK_OK(lc_chat_add(ch, "user", user[turn]));
            char *prompt;
            size_t plen;
            CHECK_OK(lc_chat_render(ch, true, &prompt, &plen));
            int32_t n;
            int32_t *ids = ref_tokens(m, prompt, plen, &n);
            lc_free(prompt);
            CHECK(ids && n < 400);
            static char want[8192], got[8192];
            int n_gen = 0;
            const int max_gen = 24;
            const int rr = ref_answer(m, ids, n, max_gen, gen, &n_gen, want, sizeof want);
            /* what the session must decode: after the common prefix of its cache and the new prompt */
            int32_t common = 0;
            while (common < n_kv && common < n && kv[common] == ids[common]) common++;
            if (common == n) common = n - 1;
            lc_chat_stats st;
            const int rs = session_turn(ch, s, max_gen, &st, got, sizeof got);
            const bool same = !strcmp(want, got);
            printf("        %s turn %d: prompt %d tokens, %d reused, %d decoded (expected %d), %d generated: %s\n",
                   mi ? "stories260K" : "synth", turn + 1, (int)st.n_prompt, (int)st.n_reused, (int)st.n_decoded,
                   (int)(n - common), (int)st.n_generated, same ? "same answer as a fresh context" : "DIFFERENT");
            CHECK_OK(rr);
            CHECK_OK(rs);
            CHECKF(same, "turn %d: the session answered \"%.200s\", a fresh context \"%.200s\"", turn + 1, got, want);
            CHECK_EQ_INT(st.n_prompt, n);
            CHECK_EQ_INT(st.n_reused, common);
            CHECK_EQ_INT(st.n_decoded, n - common);
            CHECK_EQ_INT(st.n_generated, n_gen);
            if (turn == 1) CHECKF(st.n_reused >= prev_prompt, "turn 2 processed the first prompt again (%d reused of %d)",
                                  (int)st.n_reused, prev_prompt);
            CHECK_EQ_INT(lc_chat_n_cached(ch), n + n_gen);
            memcpy(kv, ids, sizeof *ids * (size_t)n);
            memcpy(kv + n, gen, sizeof *gen * (size_t)n_gen);
            n_kv = n + n_gen;
            prev_prompt = n;
            free(ids);
        }
        lc_sampler_free(s);
        lc_chat_free(ch);
        lc_context_free(c);
        lc_model_free(m);
    }
}

TEST(a_conversation_too_long_is_refused_not_cut) {
    if (!g_n_models) SKIP("no model");
    lc_model *m;
    CHECK_OK(lc_model_load(g_models[0], NULL, &m));
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = 96, cp.n_threads = 2;
    lc_context *c;
    CHECK_OK(lc_context_new(m, &cp, &c));
    lc_chat *ch;
    CHECK_OK(lc_chat_new(m, c, NULL, &ch));
    lc_sampler_params sp = lc_sampler_default_params();
    sp.temp = 0;
    lc_sampler *s;
    CHECK_OK(lc_sampler_new(&sp, (int32_t)lc_model_hparams(m)->n_vocab, &s));
    char text[4096];
    lc_chat_stats st;
    CHECK_OK(lc_chat_add(ch, "user", "Hi"));
    CHECK_OK(session_turn(ch, s, 8, &st, text, sizeof text));
    CHECK_EQ_INT(lc_chat_n_messages(ch), 2);
    char big[600] = "";
    for (int i = 0; i < 100; i++) strcat(big, "word ");
    CHECK_OK(lc_chat_add(ch, "user", big));
    const int r = lc_chat_prompt(ch, &st);
    CHECKF(r == LC_E_RANGE && strstr(lc_last_error(), "tokens but the context holds 96"), "got %d: %s", r,
           lc_last_error());
    CHECK_EQ_INT(lc_chat_n_messages(ch), 3); /* nothing was cut or dropped behind the caller's back */
    size_t dropped;
    CHECK_OK(lc_chat_drop_oldest(ch, &dropped));
    CHECK_EQ_INT(dropped, 2);
    CHECK(lc_chat_drop_oldest(ch, &dropped) == 0 && dropped == 1);
    CHECK_EQ_INT(lc_chat_drop_oldest(ch, &dropped), LC_E_RANGE);
    lc_sampler_free(s);
    lc_chat_free(ch);
    lc_context_free(c);
    lc_model_free(m);
}

/* ---- tool-call flow against Jinja2's renders ---- */

/* A field of the chat.jsonl row with this id, through a template ("{{ rendered }}", "{{ messages | tojson }}"). */
static char *row_field(const char *jsonl, int id, const char *expr) {
    char key[32];
    snprintf(key, sizeof key, "{\"id\": %d,", id);
    const char *line = strstr(jsonl, key);
    if (!line) return NULL;
    const char *end = strchr(line, '\n');
    lc_template *t;
    if (lc_template_parse(expr, strlen(expr), "field", &t)) return NULL;
    char *out = NULL;
    if (lc_template_render(t, line, end ? (size_t)(end - line) : strlen(line), &out, NULL)) out = NULL;
    lc_template_free(t);
    return out;
}

typedef struct flow_step {
    const char *role;    /* "system", "user", "answer" (raw model output), "result" (a tool's result as typed) */
    const char *text;
    int kind;            /* for an answer: the call expected (-1: text) */
    const char *name, *args;
} flow_step;

typedef struct flow_case {
    int id;              /* chat.jsonl row */
    const char *vars;    /* the row's extra variables, plus date_string and bos/eos as the reference had them */
    flow_step steps[6];
} flow_case;

static const flow_case k_flows[] = {
    {24, "{\"date_string\": \"26 Jul 2024\", \"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\"}",
     {{"system", "You are a bot.", 0, NULL, NULL},
      {"user", "What's the weather in Paris?", 0, NULL, NULL},
      {"answer", "{\"name\": \"get_current_weather\", \"parameters\": {\"location\": \"Paris, France\"}}<|eot_id|>",
       LC_TOOL_CUSTOM, "get_current_weather", "{\"location\": \"Paris, France\"}"},
      {"result", "{\"temperature\": 22, \"unit\": \"celsius\", \"condition\": \"sunny\"}", 0, NULL, NULL},
      {"answer", "It is 22°C and sunny in Paris.", -1, NULL, NULL},
      {NULL, NULL, 0, NULL, NULL}}},
    {33, "{\"builtin_tools\": [\"brave_search\", \"wolfram_alpha\"], \"date_string\": \"26 Jul 2024\", "
         "\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\"}",
     {{"user", "Search for Llama 3.1", 0, NULL, NULL},
      {"answer", "<|python_tag|>brave_search.call(query=\"Llama 3.1 release\")<|eom_id|>", LC_TOOL_BUILTIN,
       "brave_search", "{\"query\": \"Llama 3.1 release\"}"},
      {"result", "Llama 3.1 was released on July 23, 2024.", 0, NULL, NULL},
      {NULL, NULL, 0, NULL, NULL}}},
    {34, "{\"builtin_tools\": [\"brave_search\", \"wolfram_alpha\"], \"date_string\": \"26 Jul 2024\", "
         "\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\"}",
     {{"user", "Integrate x^2", 0, NULL, NULL},
      {"answer", "<|python_tag|>wolfram_alpha.call(query='integrate x^2')", LC_TOOL_BUILTIN, "wolfram_alpha",
       "{\"query\": \"integrate x^2\"}"},
      {"result", "  {\"result\": \"x^3/3\"}\n", 0, NULL, NULL},
      {"answer", "x³/3 + C", -1, NULL, NULL},
      {NULL, NULL, 0, NULL, NULL}}},
    {36, "{\"date_string\": \"26 Jul 2024\", \"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\"}",
     {{"system", "Environment: ipython", 0, NULL, NULL},
      {"user", "Write code to print hello", 0, NULL, NULL},
      {"answer", "<|python_tag|>print('hello')", LC_TOOL_CODE, "code_interpreter", "{\"code\": \"print('hello')\"}"},
      {NULL, NULL, 0, NULL, NULL}}},
};

TEST(tool_call_flow_renders_as_jinja2) {
    const char *sd = th_shared_dir();
    if (!sd || !g_n_models) SKIP("needs ../shared/data/chat and a model");
    char path[1200];
    snprintf(path, sizeof path, "%s/chat/chat.jsonl", sd);
    char *jsonl = slurp(path, NULL);
    snprintf(path, sizeof path, "%s/chat/llama3_1.chat_template.jinja", sd);
    size_t tlen;
    char *tpl = slurp(path, &tlen);
    if (!jsonl || !tpl) {
        free(jsonl), free(tpl);
        SKIP("chat.jsonl or the Llama 3.1 template is missing");
    }
    lc_model *m;
    CHECK_OK(lc_model_load(g_models[0], NULL, &m));
    int n_ok = 0;
    for (size_t fi = 0; fi < sizeof k_flows / sizeof *k_flows; fi++) {
        const flow_case *fc = &k_flows[fi];
        char *want = row_field(jsonl, fc->id, "{{ rendered }}");
        char *tools = row_field(jsonl, fc->id, "{{ tools | tojson }}");
        char *agp = row_field(jsonl, fc->id, "{{ add_generation_prompt }}");
        lc_chat_params p = lc_chat_default_params();
        p.template_src = tpl, p.template_len = tlen, p.template_name = "llama3_1.chat_template.jinja";
        p.tools_json = tools && strcmp(tools, "null") ? tools : NULL;
        p.vars_json = fc->vars;
        p.parse_tool_calls = true;
        lc_chat *ch = NULL;
        int r = want && agp ? lc_chat_new(m, NULL, &p, &ch) : -1;
        for (int k = 0; !r && fc->steps[k].role; k++) {
            const flow_step *s = &fc->steps[k];
            if (!strcmp(s->role, "system")) r = lc_chat_set_system(ch, s->text);
            else if (!strcmp(s->role, "user")) r = lc_chat_add(ch, "user", s->text);
            else if (!strcmp(s->role, "result")) r = lc_chat_add_tool_result(ch, s->text, strlen(s->text));
            else {
                const lc_tool_call *calls;
                size_t nc;
                r = lc_chat_add_answer(ch, s->text, strlen(s->text), &calls, &nc);
                if (!r && s->kind < 0 && nc) {
                    free(want), free(tools), free(agp), free(jsonl), free(tpl), lc_chat_free(ch), lc_model_free(m);
                    FAILF("row %d: a call found in plain text", fc->id);
                }
                if (!r && s->kind >= 0 && (nc != 1 || calls[0].kind != s->kind || strcmp(calls[0].name, s->name) ||
                                           strcmp(calls[0].arguments, s->args))) {
                    char msg[600];
                    snprintf(msg, sizeof msg, "row %d: call %s %s, want %s %s", fc->id, nc ? calls[0].name : "-",
                             nc ? calls[0].arguments : "-", s->name, s->args);
                    free(want), free(tools), free(agp), free(jsonl), free(tpl), lc_chat_free(ch), lc_model_free(m);
                    FAILF("%s", msg);
                }
            }
        }
        char *got = NULL;
        if (!r) r = lc_chat_render(ch, !strcmp(agp, "True"), &got, NULL);
        const bool same = !r && !strcmp(got, want);
        char msg[1500];
        if (!same) {
            size_t d = 0;
            while (got && got[d] && got[d] == want[d]) d++;
            snprintf(msg, sizeof msg, "row %d: %s; differs at byte %zu:\n got  ...%.200s\n want ...%.200s", fc->id,
                     r ? lc_last_error() : "render differs", d, got ? got + d : "", want ? want + d : "");
        }
        lc_free(got);
        free(want), free(tools), free(agp);
        lc_chat_free(ch);
        if (!same) {
            free(jsonl), free(tpl), lc_model_free(m);
            FAILF("%s", msg);
        }
        n_ok++;
    }
    printf("        %d conversations with tool calls render as Jinja2 did\n", n_ok);
    free(jsonl), free(tpl);
    lc_model_free(m);
}

TEST(messages_save_and_load) {
    if (!g_n_models) SKIP("no model");
    lc_model *m;
    CHECK_OK(lc_model_load(g_models[0], NULL, &m));
    lc_chat *a, *b;
    CHECK_OK(lc_chat_new(m, NULL, NULL, &a));
    CHECK_OK(lc_chat_new(m, NULL, NULL, &b));
    CHECK_OK(lc_chat_set_system(a, "Be \"brief\".\n"));
    CHECK_OK(lc_chat_add(a, "user", "Grüße \x01 and a bad byte \xff"));
    CHECK_OK(lc_chat_add_answer(a, "Hello!", 6, NULL, NULL));
    char *json, *ra, *rb;
    size_t n;
    CHECK_OK(lc_chat_get_messages(a, &json, &n));
    CHECK(strstr(json, "\"Be \\\"brief\\\".\\n\"") && strstr(json, "\\u0001") && strstr(json, "\xEF\xBF\xBD"));
    CHECK_OK(lc_chat_set_messages(b, json, n));
    CHECK_EQ_INT(lc_chat_n_messages(b), 3);
    CHECK_OK(lc_chat_render(a, true, &ra, NULL));
    CHECK_OK(lc_chat_render(b, true, &rb, NULL));
    CHECK(!strcmp(ra, rb));
    lc_free(json), lc_free(ra), lc_free(rb);
    /* refused: not JSON, not a list of messages, or not what the template accepts (Llama 2: roles alternate) */
    const char *bad[] = {"[{\"role\": \"user\", \"content\": ", "{\"role\": \"user\"}", "[{\"content\": \"x\"}]",
                         "[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const int r = lc_chat_set_messages(b, bad[i], strlen(bad[i]));
        CHECKF(r != 0, "accepted %s", bad[i]);
        CHECK_EQ_INT(lc_chat_n_messages(b), 3);
    }
    lc_chat_free(a);
    lc_chat_free(b);
    lc_model_free(m);
}

void lc__alloc_fail_after(long n); /* src/base: the n-th allocation from now fails */

/* Every allocation of a session's history work failing in turn: an error each time, never a crash or a leak (ASan). */
TEST(out_of_memory_is_an_error_not_a_crash) {
    if (!g_n_models) SKIP("no model");
    lc_model *m;
    CHECK_OK(lc_model_load(g_models[0], NULL, &m));
    const char *call = "<|python_tag|>brave_search.call(query=\"x\")";
    int k, failures = 0;
    for (k = 1; k < 5000; k++) {
        lc_chat_params p = lc_chat_default_params();
        p.parse_tool_calls = true;
        p.template_src = "{% for m in messages %}{{ m | tojson }}\n{% endfor %}{{ tools | tojson }}{{ builtin_tools }}";
        p.template_len = strlen(p.template_src);
        p.vars_json = "{\"builtin_tools\": [\"brave_search\"]}";
        p.tools_json = "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]";
        lc_chat *ch = NULL;
        char *out = NULL, *json = NULL;
        size_t n = 0;
        lc__alloc_fail_after(k);
        int r = lc_chat_new(m, NULL, &p, &ch);
        if (!r) r = lc_chat_set_system(ch, "sys");
        if (!r) r = lc_chat_add(ch, "user", "hello");
        if (!r) r = lc_chat_add_answer(ch, call, strlen(call), NULL, NULL);
        if (!r) r = lc_chat_add_tool_result(ch, "{\"a\": [1, 2]}", 14);
        if (!r) r = lc_chat_add_answer(ch, "fine", 4, NULL, NULL);
        if (!r) r = lc_chat_get_messages(ch, &json, &n);
        if (!r) r = lc_chat_set_messages(ch, json, n);
        if (!r) r = lc_chat_render(ch, true, &out, NULL);
        lc__alloc_fail_after(0);
        lc_free(out);
        lc_free(json);
        lc_chat_free(ch);
        if (!r) break;
        failures++;
        CHECKF(r == LC_E_NOMEM || r == LC_E_FORMAT || r == LC_E_INVALID, "allocation %d: status %d (%s)", k, r, lc_last_error());
    }
    lc_model_free(m);
    printf("        %d allocation failures handled\n", failures);
    CHECK(k < 5000 && failures > 10);
}

/* ---- the tool over stdin ---- */

/* Runs `llamac chat -m model ARGS` with input on stdin; stdout and stderr into *out / *err; returns the exit code. */
static int chat(const char *model, const char *args, const char *input, char **out, char **err) {
    char in[128], o[128], e[128], cmd[4096];
    snprintf(in, sizeof in, "%s/in", g_dir);
    snprintf(o, sizeof o, "%s/out", g_dir);
    snprintf(e, sizeof e, "%s/err", g_dir);
    FILE *f = fopen(in, "w");
    if (!f) return -1;
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s chat -m %s -t 2 --temp 0 %s < %s > %s 2> %s", g_bin, model, args, in, o, e);
    const int st = system(cmd);
    *out = slurp(o, NULL);
    *err = slurp(e, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(cli_reuse_gives_the_answers_of_full_reprocessing) {
    if (!g_bin[0]) SKIP("the llamac binary does not run here");
    const char *script = "Hello there\nWhat is your name?\nTell me about the sea\n";
    /* the models with their own (built-in) template, and the synthetic one with Llama 3.1's and a tool */
    char extra[1500] = "";
    const char *sd = th_shared_dir();
    if (sd && g_n_models) {
        char tools[200];
        snprintf(tools, sizeof tools, "%s/tools.json", g_dir);
        FILE *f = fopen(tools, "w");
        if (f) {
            fputs("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\", "
                  "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]",
                  f);
            fclose(f);
            snprintf(extra, sizeof extra, "--template %s/chat/llama3_1.chat_template.jinja --tools %s", sd, tools);
        }
    }
    for (int i = 0; i < g_n_models + (extra[0] != 0); i++) {
        const char *model = g_models[i < g_n_models ? i : 0], *more = i < g_n_models ? "" : extra;
        char a1[1600], a2[1600];
        snprintf(a1, sizeof a1, "-n 12 --verbose %s", more);
        snprintf(a2, sizeof a2, "-n 12 --no-reuse --verbose %s", more);
        char *o1, *e1, *o2, *e2;
        const int r1 = chat(model, a1, script, &o1, &e1);
        const int r2 = chat(model, a2, script, &o2, &e2);
        const bool same = o1 && o2 && !strcmp(o1, o2);
        int p1 = -1, p2 = -1, reused2 = -1, decoded2 = -1, full2 = -1;
        const char *t1 = e1 ? strstr(e1, "[turn 1: prompt ") : NULL, *t2 = e1 ? strstr(e1, "[turn 2: prompt ") : NULL;
        const char *f2 = e2 ? strstr(e2, "[turn 2: prompt ") : NULL;
        if (t1) sscanf(t1, "[turn 1: prompt %d", &p1);
        if (t2) sscanf(t2, "[turn 2: prompt %d tokens, %d reused, %d decoded", &p2, &reused2, &decoded2);
        if (f2) sscanf(f2, "[turn 2: prompt %*d tokens, %*d reused, %d decoded", &full2);
        printf("        %s%s: turn 2 prompt %d tokens, %d reused, %d decoded (%d without reuse)\n", model,
               *more ? " (Llama 3.1 template, a tool)" : "", p2, reused2, decoded2, full2);
        char msg[900];
        snprintf(msg, sizeof msg, "%s %s: exit %d/%d, answers %s\nreuse: %.200s\nfull:  %.200s\nstderr: %.200s", model,
                 more, r1, r2, same ? "equal" : "DIFFER", o1 ? o1 : "", o2 ? o2 : "", e1 ? e1 : "");
        free(o1), free(e1), free(o2), free(e2);
        CHECKF(r1 == 0 && r2 == 0 && same, "%s", msg);
        CHECKF(p1 > 0 && reused2 >= p1 && decoded2 == p2 - reused2 && full2 == p2,
               "turn 2 should reuse the whole first prompt (%d tokens): %d reused, %d decoded of %d (%d without reuse)",
               p1, reused2, decoded2, p2, full2);
    }
}

TEST(cli_save_and_load_continue_the_conversation) {
    if (!g_bin[0] || !g_n_models) SKIP("the llamac binary does not run here");
    char path[128], script[512];
    snprintf(path, sizeof path, "%s/conv.json", g_dir);
    snprintf(script, sizeof script, "Hi\nHow are you?\n/save %s\nAnd then?\n", path);
    char *o1, *e1, *o2, *e2;
    const int r1 = chat(g_models[0], "-n 10 --system 'Be brief.'", script, &o1, &e1);
    snprintf(script, sizeof script, "/load %s\nAnd then?\n", path);
    const int r2 = chat(g_models[0], "-n 10", script, &o2, &e2);
    char *saved = slurp(path, NULL);
    /* session 2's only answer is session 1's third */
    const size_t n1 = o1 ? strlen(o1) : 0, n2 = o2 ? strlen(o2) : 0;
    const bool ok = r1 == 0 && r2 == 0 && n2 > 1 && n1 > n2 && !strcmp(o1 + n1 - n2, o2) && saved &&
                    strstr(saved, "\"Be brief.\"") && strstr(saved, "\"How are you?\"") && !strstr(saved, "And then");
    char msg[800];
    snprintf(msg, sizeof msg, "exit %d/%d\nsession 1: %.200s\nafter /load: %.200s\nsaved: %.300s", r1, r2, o1 ? o1 : "",
             o2 ? o2 : "", saved ? saved : "(none)");
    free(o1), free(e1), free(o2), free(e2), free(saved);
    CHECKF(ok, "%s", msg);
}

TEST(cli_full_context_is_refused_then_drop_resends) {
    if (!g_bin[0] || !g_n_models) SKIP("the llamac binary does not run here");
    char long_msg[1000] = "";
    for (int i = 0; i < 24; i++) strcat(long_msg, "word ");
    char script[3000];
    /* 128 tokens: the first exchange fits, the second does not until the first is dropped */
    snprintf(script, sizeof script, "Hello\n%s\n/drop\n/save %s/after-drop.json\n", long_msg, g_dir);
    char *o, *e;
    const int r = chat(g_models[0], "-c 128 -n 8", script, &o, &e);
    char path[200];
    snprintf(path, sizeof path, "%s/after-drop.json", g_dir);
    char *saved = slurp(path, NULL);
    const bool said = e && strstr(e, "tokens but the context holds 128") && strstr(e, "/drop");
    const bool resent = saved && strstr(saved, "word word") && !strstr(saved, "\"Hello\"");
    char msg[1200];
    snprintf(msg, sizeof msg, "exit %d\nstderr: %.500s\nsaved: %.300s", r, e ? e : "", saved ? saved : "(none)");
    free(o), free(e), free(saved);
    CHECKF(r == 0 && said && resent, "%s", msg);
}

TEST(cli_multiline_input) {
    if (!g_bin[0] || !g_n_models) SKIP("the llamac binary does not run here");
    char script[512], path[2][200];
    const char *forms[2] = {"first line\\\nsecond line\n", "\"\"\"\nfirst line\nsecond line\n\"\"\"\n"};
    char *o[2], *e[2], *saved[2];
    int r[2];
    for (int k = 0; k < 2; k++) {
        snprintf(path[k], sizeof path[k], "%s/ml%d.json", g_dir, k);
        snprintf(script, sizeof script, "%s/save %s\n", forms[k], path[k]);
        r[k] = chat(g_models[0], "-n 6", script, &o[k], &e[k]);
        saved[k] = slurp(path[k], NULL);
    }
    const bool ok = r[0] == 0 && r[1] == 0 && o[0] && o[1] && !strcmp(o[0], o[1]) && saved[0] && saved[1] &&
                    strstr(saved[0], "\"first line\\nsecond line\"") && !strcmp(saved[0], saved[1]);
    char msg[800];
    snprintf(msg, sizeof msg, "exit %d/%d\nsaved 1: %.200s\nsaved 2: %.200s", r[0], r[1], saved[0] ? saved[0] : "",
             saved[1] ? saved[1] : "");
    for (int k = 0; k < 2; k++) free(o[k]), free(e[k]), free(saved[k]);
    CHECKF(ok, "%s", msg);
}

/* Tool-call parsing never alters plain answers: with the parser on (--builtin-tools, which Llama 2's template
** ignores, so the prompt is the same) the answers are those of the chat without it. */
TEST(cli_tool_parsing_keeps_plain_answers) {
    if (!g_bin[0] || !g_n_models) SKIP("the llamac binary does not run here");
    const char *script = "Hello there\nWhat is your name?\n";
    char *o1, *e1, *o2, *e2;
    const int r1 = chat(g_models[0], "-n 16", script, &o1, &e1);
    const int r2 = chat(g_models[0], "-n 16 --builtin-tools brave_search,wolfram_alpha", script, &o2, &e2);
    const bool ok = r1 == 0 && r2 == 0 && o1 && o2 && !strcmp(o1, o2) && !strstr(o2, "[tool call");
    char msg[600];
    snprintf(msg, sizeof msg, "exit %d/%d\nplain: %.200s\ntools: %.200s", r1, r2, o1 ? o1 : "", o2 ? o2 : "");
    free(o1), free(e1), free(o2), free(e2);
    CHECKF(ok, "%s", msg);
}

/* Ctrl-C (SIGINT) during an answer stops it; the chat goes on with the next message. */
TEST(cli_ctrl_c_stops_the_answer_not_the_chat) {
    if (!g_bin[0]) SKIP("the llamac binary does not run here");
    if (g_quick) SKIP("LLAMAC_QUICK: the slow model is not generated");
    char model[160];
    snprintf(model, sizeof model, "%s/slow.gguf", g_dir);
    lc_synth_params p = lc_synth_default_params();
    p.n_embd = 384, p.n_layer = 6, p.n_head = 6, p.n_head_kv = 2, p.n_ff = 1152, p.w_std = 0.05f;
    p.wtype = LC_TYPE_Q8_0, p.seed = 3;
    CHECK_OK(lc_synth_write(model, &p));
    int in[2], out[2];
    CHECK(pipe(in) == 0 && pipe(out) == 0);
    char errp[160];
    snprintf(errp, sizeof errp, "%s/ctrlc.err", g_dir);
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        const int fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        close(in[1]), close(out[0]);
        execl(g_bin, g_bin, "chat", "-m", model, "-t", "1", "--temp", "0", "-c", "2048", "-n", "2000", "--verbose",
              (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    CHECK(write(in[1], "Hello\n", 6) == 6);
    char buf[65536];
    ssize_t got = read(out[0], buf, sizeof buf); /* the answer has started */
    kill(pid, SIGINT);
    CHECK(write(in[1], "Again\n", 6) == 6);
    close(in[1]);
    size_t total = got > 0 ? (size_t)got : 0;
    while ((got = read(out[0], buf + total, sizeof buf - 1 - total)) > 0) total += (size_t)got;
    buf[total] = 0;
    close(out[0]);
    int st;
    waitpid(pid, &st, 0);
    char *err = slurp(errp, NULL);
    const bool stopped = err && strstr(err, "[stopped (Ctrl-C)]");
    int g1 = -1, g2 = -1;
    const char *t1 = err ? strstr(err, "[turn 1: ") : NULL, *t2 = err ? strstr(err, "[turn 2: ") : NULL;
    if (t1) sscanf(strstr(t1, "decoded; "), "decoded; %d generated", &g1);
    if (t2) sscanf(strstr(t2, "decoded; "), "decoded; %d generated", &g2);
    printf("        turn 1 stopped after %d tokens; turn 2 generated %d\n", g1, g2);
    char msg[800];
    snprintf(msg, sizeof msg, "exit %d, stderr: %.600s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, err ? err : "");
    free(err);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && stopped && g1 > 0 && g1 < 2000 && g2 > 0, "%s", msg);
}

TEST(cli_usage_errors) {
    if (!g_bin[0] || !g_n_models) SKIP("the llamac binary does not run here");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s chat < /dev/null > /dev/null 2>&1", g_bin);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(cmd, sizeof cmd, "%s/bad.jinja", g_dir);
    FILE *f = fopen(cmd, "w");
    CHECK(f);
    fputs("{% if %}", f);
    fclose(f);
    char *o, *e, args[400];
    snprintf(args, sizeof args, "--template %s", cmd);
    int r = chat(g_models[0], args, "Hi\n", &o, &e);
    bool named = e && strstr(e, "bad.jinja:1:");
    free(o), free(e);
    CHECKF(r == 1 && named, "a broken template should exit 1 naming the file and line (exit %d)", r);
    snprintf(cmd, sizeof cmd, "%s/tools.json", g_dir);
    f = fopen(cmd, "w");
    CHECK(f);
    fputs("{\"not\": \"a list\"}", f);
    fclose(f);
    snprintf(args, sizeof args, "--tools %s", cmd);
    r = chat(g_models[0], args, "Hi\n", &o, &e);
    named = e && strstr(e, "tools.json");
    free(o), free(e);
    CHECKF(r == 1 && named, "tools that are not a JSON list should exit 1 naming the file (exit %d)", r);
}

int main(int argc, char **argv) {
    (void)argc;
    g_quick = getenv("LLAMAC_QUICK") != NULL;
    const char *slash = strrchr(argv[0], '/');
    if (slash) snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv[0]), argv[0]);
    snprintf(g_dir, sizeof g_dir, "/tmp/llamac-test-chat-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s --version > /dev/null 2>&1", g_bin);
    if (!g_bin[0] || system(cmd) != 0) g_bin[0] = 0;
    snprintf(g_synth, sizeof g_synth, "%s/synth.gguf", g_dir);
    lc_synth_params p = lc_synth_default_params();
    p.w_std = 0.05f; /* peaked predictions, so greedy answers are not ties */
    if (lc_synth_write(g_synth, &p) == 0) g_models[g_n_models++] = g_synth;
    const char *sd = th_shared_dir();
    if (sd) {
        snprintf(g_stories, sizeof g_stories, "%s/stories260K/stories260K.gguf", sd);
        if (access(g_stories, R_OK) == 0) g_models[g_n_models++] = g_stories;
        else printf("note: %s is absent: stories260K is skipped\n", g_stories);
    } else {
        printf("note: ../shared/data is absent: stories260K and the Jinja2 renders are skipped\n");
    }
    printf("test_chat: tool %s, %d models\n", g_bin[0] ? g_bin : "not runnable here", g_n_models);
    RUN(turns_reuse_the_cache_and_answer_as_a_fresh_context);
    RUN(a_conversation_too_long_is_refused_not_cut);
    RUN(tool_call_flow_renders_as_jinja2);
    RUN(messages_save_and_load);
    RUN(out_of_memory_is_an_error_not_a_crash);
    RUN(cli_reuse_gives_the_answers_of_full_reprocessing);
    RUN(cli_save_and_load_continue_the_conversation);
    RUN(cli_full_context_is_refused_then_drop_resends);
    RUN(cli_multiline_input);
    RUN(cli_tool_parsing_keeps_plain_answers);
    RUN(cli_ctrl_c_stops_the_answer_not_the_chat);
    RUN(cli_usage_errors);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) printf("note: could not remove %s\n", g_dir);
    return TEST_SUMMARY();
}
