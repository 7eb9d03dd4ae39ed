/* test_jinja.c - the chat-template engine (src/chat) against Python's Jinja2.
**
** Conformance: every conversation of ../shared/data/chat/chat.jsonl (the official Llama 2, 3, 3.1, 3.2, 3.2 Vision
** and Llama Guard 3 templates; renders and refusals by Jinja2 3.1.2 with Hugging Face's settings) must render byte
** for byte, or be refused. Unit tests: each construct against the output Jinja2 gives for it (written next to each
** case, from the Jinja2 documentation's semantics), whitespace control, scoping, Python printing, errors with
** line:column, and limits on hostile templates.
*/
#include "harness.h"
#include "llamac.h"

#include "../src/chat/chat.h"
#include "../src/gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static bool quick(void) {
    const char *q = getenv("LLAMAC_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static char *slurp_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[len] = 0;
    if (n) *n = (size_t)len;
    return b;
}

/* Renders src with vars; returns the output (malloc'd) or NULL with the error in err. */
static char *render(const char *src, const char *vars, char *err, size_t err_cap) {
    lc_template *t;
    if (lc_template_parse(src, strlen(src), "t", &t)) {
        snprintf(err, err_cap, "%s", lc_last_error());
        return NULL;
    }
    char *out = NULL;
    if (lc_template_render(t, vars, vars ? strlen(vars) : 0, &out, NULL)) {
        snprintf(err, err_cap, "%s", lc_last_error());
        out = NULL;
    }
    lc_template_free(t);
    return out;
}

static const char *g_fail;
static char g_failbuf[2048];

/* One case: the render of src with vars must be want (or an error containing want_err when want is NULL). */
static bool case_ok(const char *src, const char *vars, const char *want, const char *want_err) {
    char err[512] = "";
    char *got = render(src, vars, err, sizeof err);
    bool ok;
    if (want) ok = got && !strcmp(got, want);
    else ok = !got && (!want_err || strstr(err, want_err));
    if (!ok)
        snprintf(g_failbuf, sizeof g_failbuf, "template %s\n          vars %s\n          want %s%s%s\n          got  %s%s",
                 src, vars ? vars : "{}", want ? "" : "error: ", want ? want : want_err ? want_err : "(any)",
                 "", got ? got : "error: ", got ? "" : err);
    free(got);
    if (!ok) g_fail = g_failbuf;
    return ok;
}

#define CASE(src, vars, want)                                                                                      \
    do {                                                                                                           \
        if (!case_ok(src, vars, want, NULL)) FAILF("%s", g_fail);                                                 \
    } while (0)
#define CASE_ERR(src, vars, err)                                                                                   \
    do {                                                                                                           \
        if (!case_ok(src, vars, NULL, err)) FAILF("%s", g_fail);                                                  \
    } while (0)

TEST(expressions_and_printing) {
    CASE("{{ 1 + 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 * 3.0 }}", NULL,
         "3 3 -4 1 2 3.5 6.0");
    CASE("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1, 'x', none, true, 1.5] }}", NULL,
         "a1None ababab [1, 'x', None, True, 1.5]");
    CASE("{{ {'a': 1, \"b\": [2, {'c': \"it's\"}]} }}", NULL, "{'a': 1, 'b': [2, {'c': \"it's\"}]}");
    CASE("{{ 1e16 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 123456789.0 }} {{ 2.5e-3 }}", NULL,
         "1e+16 0.30000000000000004 1e-05 123456789.0 0.0025");
    CASE("{{ x }}|{{ x is defined }}|{{ x is not defined }}|{{ not x }}", "{}", "|False|True|True");
    CASE("{{ 'yes' if a else 'no' }} {{ a or 'b' }} {{ a and 'c' }} {{ 3 if 1 }}", "{\"a\": 0}", "no b 0 3");
    CASE("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' in 'abc' }} {{ 'x' not in ['x'] }} {{ 'k' in {'k': 1} }}", NULL,
         "True False True False True");
    CASE("{{ m.role }}/{{ m['role'] }}/{{ m.missing }}/{{ l[1] }}/{{ l[-1] }}/{{ l[5] }}/{{ l[1:] }}/{{ l[::-1] }}",
         "{\"m\": {\"role\": \"user\"}, \"l\": [1, 2, 3]}", "user/user//2/3//[2, 3]/[3, 2, 1]");
    CASE("{{ 'héllo'[1] }}{{ 'héllo'|length }}{{ 'héllo'[1:3] }}", NULL, "é5él");
    /* repr escapes what str.isprintable() rejects: NBSP, zero-width space, line separator, controls */
    CASE("{{ [s] }}", "{\"s\": \"a\\u00a0b\\u200bc\\u2028d\\u0007e\\u00e9\\ud83c\\udf0d\\\\\"}",
         "['a\\xa0b\\u200bc\\u2028d\\x07e\u00e9\U0001F30D\\\\']");
    CASE("{{ (1, 2) }}{{ 1 == 1.0 }}{{ true == 1 }}{{ [1, 2] == [1, 2] }}", NULL, "[1, 2]TrueTrueTrue");
}

TEST(filters_tests_methods) {
    CASE("{{ '  a b \\n'|trim }}|{{ ' x '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'Ab'|upper }}{{ 'Ab'|lower }}", NULL,
         "a b|x|a|ABab");
    CASE("{{ [3, 1, 2]|length }} {{ 'abc'|count }} {{ {'a': 1}|length }} {{ u|length }}", "{}", "3 3 1 0");
    CASE("{{ ['a', 'b', 'c']|join(', ') }} {{ [1, 2]|join }} {{ ['a', 'code', 'b']|reject('equalto', 'code')|join('-') }}",
         NULL, "a, b, c 12 a-b");
    CASE("{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}{{ d|tojson }}",
         "{\"d\": {\"z\": 1, \"a\": [true, null, 1.5, \"é\\n\\\"\"]}}",
         "z=1;a=[True, None, 1.5, 'é\\n\"'];{\"z\": 1, \"a\": [true, null, 1.5, \"é\\n\\\"\"]}");
    CASE("{{ d|tojson(indent=2) }}", "{\"d\": {\"a\": [1, {}], \"b\": []}}",
         "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}");
    CASE("{{ l|selectattr('type', 'equalto', 'image')|list|length }} {{ l|rejectattr('type')|list }} "
         "{{ l|map(attribute='type')|list }}",
         "{\"l\": [{\"type\": \"image\"}, {\"type\": \"text\"}, {\"x\": 1}]}",
         "1 [{'x': 1}] ['image', 'text', Undefined]");
    CASE("{{ x|default('d') }} {{ ''|default('e', true) }} {{ [1,2]|first }}{{ [1,2]|last }} {{ '5'|int + 1 }}", "{}",
         "d e 12 6");
    CASE("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} "
         "{{ 'hello world'.title() }} {{ 'aXa'.replace('a', 'b') }}",
         NULL, "['a', 'b', '', 'c'] ['a', 'b'] True True Hello World bXb");
    CASE("{{ d.get('a') }} {{ d.get('b', 2) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}",
         "{\"d\": {\"a\": 1}}", "1 2 ['a'] [1] [['a', 1]]");
    CASE("{{ 'x' is string }}{{ 1 is number }}{{ 1.0 is integer }}{{ none is none }}{{ {} is mapping }}"
         "{{ 'x' is iterable }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ 1 is equalto 1 }}",
         NULL, "TrueTrueFalseTrueTrueTrueTrueTrueTrue");
}

TEST(statements_and_scoping) {
    CASE("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};"
         "{% endfor %}",
         NULL, "10TrueFalse3;21FalseFalse3;32FalseTrue3;");
    CASE("{% for x in [] %}a{% else %}empty{% endfor %}{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.last }}"
         "{% endfor %}",
         NULL, "empty2False4True");
    CASE("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}"
         "{{ x }}{% endfor %}",
         NULL, "13");
    /* a set inside a loop does not leak out; a namespace does */
    CASE("{% set a = 1 %}{% set ns = namespace(b=1) %}{% for x in [5] %}{% set a = x %}{% set ns.b = x %}{{ a }}"
         "{% endfor %}{{ a }}{{ ns.b }}",
         NULL, "515");
    CASE("{% if a %}A{% elif b %}B{% else %}C{% endif %}{% if not a %}{% set c = 3 %}{% endif %}{{ c }}",
         "{\"a\": false, \"b\": 1}", "B3");
    CASE("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bo') }} {{ greet('Al', "
         "punct='?') }}",
         NULL, "Hi Bo! Hi Al?");
    CASE("{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]", NULL, "[inner 2]");
    CASE("{% set messages = messages[1:] %}{{ messages|length }}", "{\"messages\": [1, 2, 3]}", "2");
    CASE("{% for c in 'ab' %}{{ c }}.{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", NULL, "a.b.xy");
}

TEST(whitespace_control) {
    /* trim_blocks drops the newline after a block tag; lstrip_blocks drops indentation before one */
    CASE("a\n  {% if true %}\n  b\n  {% endif %}\nc\n", NULL, "a\n  b\nc");
    CASE("a  {%- if true -%}  b  {%- endif %}  c", NULL, "ab  c");
    CASE("{{- ' x ' -}}\n  {{ 'y' }}", NULL, " x y");
    CASE("a\n{# comment #}\nb", NULL, "a\nb");
    CASE("  {%+ if true %}x{% endif %}", NULL, "  x");
    CASE("{% if true %}a{% endif %} {% if true %}b{% endif %}\n", NULL, "a b");
    CASE("x\n\n", NULL, "x\n"); /* only the last newline goes */
}

TEST(errors_name_the_place) {
    CASE_ERR("line1\n{{ raise_exception('boom') }}", NULL, "t:2:4: raise_exception: boom");
    CASE_ERR("{% if x %}", NULL, "'if' without 'endif'");
    CASE_ERR("{{ x | nosuchfilter }}", NULL, "unsupported filter 'nosuchfilter'");
    CASE_ERR("{% include 'x' %}", NULL, "unsupported statement 'include'");
    CASE_ERR("{{ messages[0]['role'] }}", "{\"messages\": []}", "undefined");
    CASE_ERR("{{ 'a' + 1 }}", NULL, "unsupported operand");
    CASE_ERR("{{ x.y.z }}", "{}", "undefined");
    CASE_ERR("{{ 1 }", NULL, "unclosed");
    CASE_ERR("{{ 1 + }}", NULL, "expected an expression");
    CASE_ERR("{% for x in range(100000000) %}{% endfor %}", NULL, "range()");
    CASE_ERR("{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(100) %}{% endfor %}{% endfor %}"
             "{% endfor %}",
             NULL, "too long");
    /* a namespace that holds itself prints as Python's repr does, and tojson refuses it */
    CASE("{% set ns = namespace(c=0) %}{% set ns.a = ns %}{% set ns.b = ns %}{{ ns }} {{ [ns.a] }}", NULL,
         "<Namespace {'c': 0, 'a': <Namespace {...}>, 'b': <Namespace {...}>}> "
         "[<Namespace {'c': 0, 'a': <Namespace {...}>, 'b': <Namespace {...}>}>]");
    CASE_ERR("{% set ns = namespace(c=0) %}{% set ns.a = ns %}{{ ns|tojson }}", NULL, "inside itself");
    /* values that share parts: printing 2^40 items or comparing them stops at a limit, quickly */
    static const char doubling[] = "{% set ns = namespace(v=[1]) %}{% for i in range(40) %}{% set ns.v = [ns.v, ns.v] %}"
                                   "{% endfor %}";
    char t[512];
    snprintf(t, sizeof t, "%s{{ ns.v }}", doubling);
    CASE_ERR(t, NULL, "exceeds");
    snprintf(t, sizeof t, "%s{{ ns.v|string|length }}", doubling);
    CASE_ERR(t, NULL, "longer than");
    snprintf(t, sizeof t, "%s{{ ns.v|tojson|length }}", doubling);
    CASE_ERR(t, NULL, "too large");
    snprintf(t, sizeof t, "%s{{ ns.v == ns.v }}", doubling);
    CASE_ERR(t, NULL, "too long");
    /* a large string gone through again and again; a huge indent */
    CASE_ERR("{% set s = 'ab' * 4000000 %}{% for i in range(100000) %}{% if s == s ~ '' %}{% endif %}{% endfor %}",
             NULL, "too long");
    CASE_ERR("{% set s = 'ab' * 4000000 %}{% for i in range(100000) %}{% if 'abc' in s %}{% endif %}{% endfor %}",
             NULL, "too long");
    CASE_ERR("{{ [[[[1]]]]|tojson(indent=2000000000) }}", NULL, "too large");
    char deep[4096] = "{{ ";
    for (int i = 0; i < 500; i++) strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 500; i++) strcat(deep, ")");
    strcat(deep, " }}");
    CASE_ERR(deep, NULL, "nested too deeply");
    char err[256];
    CHECK(!render("{{ x }}", "{\"x\": ", err, sizeof err) && strstr(err, "byte"));
    CHECK(!render("{{ x }}", "[1]", err, sizeof err) && strstr(err, "JSON object"));
}

/* ---- conformance with ../shared/data/chat ---- */

/* mode 0: each row with its official template; mode 1: llamac's built-in templates on the plain conversations
** (no tools, images or extra variables) of the llama2 and llama3 rows, which must equal the official renders. */
static int g_builtin_mode;

TEST(official_templates_render_as_jinja2) {
    const char *sd = th_shared_dir();
    if (!sd) SKIP("../shared/data is absent");
    char path[1024];
    snprintf(path, sizeof path, "%s/chat/chat.jsonl", sd);
    size_t n;
    char *all = slurp_file(path, &n);
    if (!all) SKIP("%s is absent", path);
    int rows = 0, rendered = 0, refused = 0, bad = 0;
    char first_bad[1536] = "";
    for (char *line = all, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        const size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (!len) continue;
        jv_arena a = {0};
        jv row;
        if (jv_parse_json(&a, line, len, "chat.jsonl", &row) || row.k != JV_DICT) {
            jv_arena_free(&a);
            free(all);
            FAILF("chat.jsonl: a line is not a JSON object: %s", lc_last_error());
        }
        rows++;
        const jv *id = jv_dict_get(row.u.d, "id", 2), *tn = jv_dict_get(row.u.d, "template", 8);
        const jv *msgs = jv_dict_get(row.u.d, "messages", 8), *tools = jv_dict_get(row.u.d, "tools", 5);
        const jv *agp = jv_dict_get(row.u.d, "add_generation_prompt", 21), *extra = jv_dict_get(row.u.d, "extra", 5);
        const jv *want = jv_dict_get(row.u.d, "rendered", 8);
        if (g_builtin_mode) {
            bool plain = (!strcmp(tn->u.s.p, "llama2") || !strcmp(tn->u.s.p, "llama3")) && tools->k == JV_NONE &&
                         (!extra || extra->k != JV_DICT || !extra->u.d->n);
            for (size_t i = 0; plain && msgs->k == JV_LIST && i < msgs->u.l->n; i++) {
                const jv *c = msgs->u.l->a[i].k == JV_DICT ? jv_dict_get(msgs->u.l->a[i].u.d, "content", 7) : NULL;
                plain = c && c->k == JV_STR;
            }
            if (!plain) {
                rows--;
                jv_arena_free(&a);
                continue;
            }
        }
        /* the variables, as the reference passed them */
        jv vars = jv_new_dict(&a, JV_DICT);
        const bool l2 = !strcmp(tn->u.s.p, "llama2");
        jv_dict_set(&a, vars.u.d, "messages", 8, *msgs);
        jv_dict_set(&a, vars.u.d, "tools", 5, *tools);
        jv_dict_set(&a, vars.u.d, "add_generation_prompt", 21, *agp);
        jv_dict_set(&a, vars.u.d, "bos_token", 9, jv_str(&a, l2 ? "<s>" : "<|begin_of_text|>", l2 ? 3 : 17));
        jv_dict_set(&a, vars.u.d, "eos_token", 9, jv_str(&a, l2 ? "</s>" : "<|eot_id|>", l2 ? 4 : 10));
        for (size_t i = 0; extra && extra->k == JV_DICT && i < extra->u.d->n; i++)
            jv_dict_set(&a, vars.u.d, extra->u.d->keys[i].u.s.p, extra->u.d->keys[i].u.s.n, extra->u.d->vals[i]);
        jbuf vb = {0};
        const char *why = NULL;
        jv_to_json(&vb, vars, -1, &why);
        char tp[1024];
        snprintf(tp, sizeof tp, "%s/chat/%s.chat_template.jinja", sd, tn->u.s.p);
        size_t tl;
        char *src = NULL;
        if (g_builtin_mode) {
            const char *b = lc__builtin_template(strcmp(tn->u.s.p, "llama2") != 0, &tl);
            src = malloc(tl + 1);
            if (src) memcpy(src, b, tl + 1);
        } else {
            src = slurp_file(tp, &tl);
        }
        lc_template *t = NULL;
        char *out = NULL;
        int r = src ? lc_template_parse(src, tl, tn->u.s.p, &t) : -1;
        if (!r) r = lc_template_render(t, vb.p, vb.n, &out, NULL);
        const bool ok = want ? (!r && out && !strcmp(out, want->u.s.p)) : r != 0;
        if (ok) want ? rendered++ : refused++;
        else {
            bad++;
            if (!first_bad[0])
                snprintf(first_bad, sizeof first_bad, "row %lld (%s): %s\n          want %.600s\n          got  %.600s",
                         (long long)id->u.i, tn->u.s.p, want ? "render differs" : "should be refused",
                         want ? want->u.s.p : "an error", r ? lc_last_error() : out);
        }
        lc_free(out);
        lc_template_free(t);
        free(src);
        lc__free(vb.p);
        jv_arena_free(&a);
    }
    free(all);
    printf("        chat.jsonl%s: %d rows, %d rendered byte-exact, %d refused as Jinja2 does, %d wrong\n",
           g_builtin_mode ? " (built-in templates, plain conversations)" : "", rows, rendered,
           refused, bad);
    CHECKF(rows > 0, "no rows read");
    CHECKF(!bad, "%d of %d rows differ from Jinja2; first: %s", bad, rows, first_bad);
}

/* `llamac template` prints exactly the render (no newline added) for each chat.jsonl row, with the conversation in
** a file and every other variable as --var KEY=JSON, and exits 1 on the rows Jinja2 refuses. */
static char g_bin[1024];

static void shell_quote(FILE *f, const char *s, size_t n) {
    fputc('\'', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'') fputs("'\\''", f);
        else fputc(s[i], f);
    }
    fputc('\'', f);
}

TEST(cli_template_matches_jinja2) {
    const char *sd = th_shared_dir();
    if (!sd) SKIP("../shared/data is absent");
    if (!g_bin[0]) SKIP("the llamac binary was not found beside the tests");
    char path[1024];
    snprintf(path, sizeof path, "%s/chat/chat.jsonl", sd);
    char *all = slurp_file(path, NULL);
    if (!all) SKIP("%s is absent", path);
    char dir[] = "/tmp/llamac-test-tpl-XXXXXX";
    CHECK(mkdtemp(dir));
    int rows = 0, bad = 0;
    char first_bad[1024] = "";
    for (char *line = all, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        const size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (!len) continue;
        jv_arena a = {0};
        jv row;
        if (jv_parse_json(&a, line, len, "chat.jsonl", &row)) break;
        const jv *tn = jv_dict_get(row.u.d, "template", 8), *msgs = jv_dict_get(row.u.d, "messages", 8);
        const jv *tools = jv_dict_get(row.u.d, "tools", 5), *agp = jv_dict_get(row.u.d, "add_generation_prompt", 21);
        const jv *extra = jv_dict_get(row.u.d, "extra", 5), *want = jv_dict_get(row.u.d, "rendered", 8);
        const bool l2 = !strcmp(tn->u.s.p, "llama2");
        char mp[1100], tp[1100], op[1100];
        snprintf(mp, sizeof mp, "%s/m.json", dir);
        snprintf(tp, sizeof tp, "%s/t.json", dir);
        snprintf(op, sizeof op, "%s/out", dir);
        jbuf b = {0};
        const char *why;
        jv_to_json(&b, *msgs, -1, &why);
        FILE *f = fopen(mp, "w");
        if (f) fwrite(b.p, 1, b.n, f), fclose(f);
        b.n = 0;
        if (tools->k != JV_NONE) {
            jv_to_json(&b, *tools, -1, &why);
            f = fopen(tp, "w");
            if (f) fwrite(b.p, 1, b.n, f), fclose(f);
        }
        char *cmd = NULL;
        size_t cn = 0;
        FILE *c = open_memstream(&cmd, &cn);
        fprintf(c, "%s template --template %s/chat/%s.chat_template.jinja --messages %s%s%s%s", g_bin, sd, tn->u.s.p,
                mp, tools->k != JV_NONE ? " --tools " : "", tools->k != JV_NONE ? tp : "",
                agp->u.b ? " --add-generation-prompt" : "");
        fprintf(c, " --var bos_token='\"%s\"' --var eos_token='\"%s\"'", l2 ? "<s>" : "<|begin_of_text|>",
                l2 ? "</s>" : "<|eot_id|>");
        for (size_t i = 0; extra && extra->k == JV_DICT && i < extra->u.d->n; i++) {
            b.n = 0;
            jv_to_json(&b, extra->u.d->vals[i], -1, &why);
            fprintf(c, " --var %s=", extra->u.d->keys[i].u.s.p);
            shell_quote(c, b.p, b.n);
        }
        fprintf(c, " > %s 2>/dev/null", op);
        fclose(c);
        const int st = system(cmd);
        size_t on = 0;
        char *out = slurp_file(op, &on);
        const bool ok = want ? st == 0 && out && on == want->u.s.n && !memcmp(out, want->u.s.p, on)
                             : WIFEXITED(st) && WEXITSTATUS(st) == 1;
        rows++;
        if (!ok && !bad++) snprintf(first_bad, sizeof first_bad, "%.900s (status %d)", cmd, st);
        free(out);
        free(cmd);
        lc__free(b.p);
        jv_arena_free(&a);
        if (quick() && rows >= 12) break;
    }
    free(all);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm)) printf("note: could not remove %s\n", dir);
    printf("        llamac template: %d rows, %d wrong\n", rows, bad);
    CHECKF(!bad, "%d rows differ; first: %s", bad, first_bad);
}

TEST(builtin_templates_match_the_official_ones) {
    g_builtin_mode = 1;
    official_templates_render_as_jinja2();
    g_builtin_mode = 0;
}

/* A model's own tokenizer.chat_template is used as it is (any length, not truncated); a model without one gets the
** built-in template of its family (a SentencePiece vocabulary: Llama 2), flagged as built-in. */
TEST(model_template_from_gguf_and_fallback) {
    char dir[] = "/tmp/llamac-test-jtpl-XXXXXX", a[128], b[128];
    CHECK(mkdtemp(dir));
    snprintf(a, sizeof a, "%s/plain.gguf", dir);
    snprintf(b, sizeof b, "%s/with-template.gguf", dir);
    lc_synth_params sp = lc_synth_default_params();
    CHECK_OK(lc_synth_write(a, &sp));
    /* the same file plus a 9000-byte template */
    char *tpl = malloc(9001);
    CHECK(tpl);
    for (int i = 0; i < 9000; i++) tpl[i] = "{{ 'x' }}\n"[i % 10];
    tpl[9000] = 0;
    gguf_file *f;
    CHECK_OK(gguf_open(a, &f));
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    for (uint64_t i = 0; i < f->n_kv; i++) CHECK_OK(gguf_writer_set_value(w, f->kv[i].key, &f->kv[i].val));
    CHECK_OK(gguf_writer_set_str(w, "tokenizer.chat_template", tpl));
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        CHECK_OK(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size));
    }
    CHECK_OK(gguf_writer_write(w, b));
    gguf_writer_free(w);
    gguf_close(f);
    lc_model *m;
    const char *src;
    size_t len;
    bool builtin;
    CHECK_OK(lc_model_load(b, NULL, &m));
    CHECK_OK(lc_model_chat_template(m, &src, &len, &builtin));
    const bool same = !builtin && len == 9000 && !memcmp(src, tpl, 9000);
    lc_model_free(m);
    CHECK_OK(lc_model_load(a, NULL, &m));
    CHECK_OK(lc_model_chat_template(m, &src, &len, &builtin));
    size_t l2len;
    const char *l2 = lc__builtin_template(0, &l2len);
    const bool fallback = builtin && len == l2len && !memcmp(src, l2, len);
    lc_model_free(m);
    free(tpl);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm)) printf("note: could not remove %s\n", dir);
    CHECKF(same, "the model's 9000-byte template should come back whole");
    CHECKF(fallback, "a model without a template should get the built-in Llama 2 template (SentencePiece vocabulary)");
}

int main(int argc, char **argv) {
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    if (slash) {
        snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv[0]), argv[0]);
        FILE *probe = fopen(g_bin, "rb");
        if (probe) fclose(probe);
        else g_bin[0] = 0;
        char cmd[1100];
        snprintf(cmd, sizeof cmd, "%s --version >/dev/null 2>&1", g_bin);
        if (g_bin[0] && system(cmd) != 0) g_bin[0] = 0; /* e.g. a cross build under an emulator */
    }
    printf("test_jinja%s: tool %s\n", quick() ? " (quick)" : "", g_bin[0] ? g_bin : "not runnable here");
    RUN(expressions_and_printing);
    RUN(filters_tests_methods);
    RUN(statements_and_scoping);
    RUN(whitespace_control);
    RUN(errors_name_the_place);
    RUN(official_templates_render_as_jinja2);
    RUN(builtin_templates_match_the_official_ones);
    RUN(cli_template_matches_jinja2);
    RUN(model_template_from_gguf_and_fallback);
    return TEST_SUMMARY();
}
