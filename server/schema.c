/* schema.c - OpenAI request bodies (chat completions, completions) into a checked srv_params, and error bodies.
**
** Every field is type- and range-checked; a bad one gives a 400 whose message and "param" name it (messages[2].role,
** max_tokens, ...), as OpenAI's API does; unknown fields are refused the same way (OpenAI: "Unrecognized request
** argument"), known ones llamac does not use are accepted when they hold their neutral value. Messages are
** normalized for the chat template: text content parts joined, a tool call's "arguments" string turned into the
** object it holds (the Llama 3.1 template writes it with tojson). No model is needed here (the fuzz target runs it).
*/
#include "server.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation" /* a long field path in a message may be cut */
#endif

void srv_error_set(srv_error *e, int status, const char *type, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type ? type : "invalid_request_error";
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

bool srv_buf_append(char **buf, size_t *n, size_t *cap, const char *s, size_t k) {
    if (*n + k + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *n + k + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return false;
        *buf = b, *cap = c;
    }
    if (k) memcpy(*buf + *n, s, k);
    *n += k;
    (*buf)[*n] = 0;
    return true;
}

char *srv_utf8_clean(const char *s, size_t n, size_t *out_n) {
    char *o = malloc(3 * n + 1);
    if (!o) return NULL;
    size_t k = 0, i = 0;
    while (i < n) {
        const unsigned char c = (unsigned char)s[i];
        int len = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        bool ok = len > 0 && i + (size_t)len <= n && (c != 0 || true);
        for (int j = 1; ok && j < len; j++) ok = ((unsigned char)s[i + (size_t)j] & 0xC0) == 0x80;
        if (ok && len == 3) {
            const unsigned c1 = (unsigned char)s[i + 1];
            ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
        }
        if (ok && len == 4) {
            const unsigned c1 = (unsigned char)s[i + 1];
            ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
        }
        if (ok) {
            memcpy(o + k, s + i, (size_t)len);
            k += (size_t)len, i += (size_t)len;
        } else {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3, i++;
        }
    }
    o[k] = 0;
    if (out_n) *out_n = k;
    return o;
}

char *srv_error_json(const srv_error *e) {
    json_t *err = json_object();
    char *msg = srv_utf8_clean(e->message, strlen(e->message), NULL);
    char *param = srv_utf8_clean(e->param, strlen(e->param), NULL);
    json_object_set_new(err, "message", json_string(msg ? msg : "error"));
    json_object_set_new(err, "type", json_string(e->type ? e->type : "invalid_request_error"));
    json_object_set_new(err, "param", param && *param ? json_string(param) : json_null());
    json_object_set_new(err, "code", e->code ? json_string(e->code) : json_null());
    free(msg);
    free(param);
    json_t *root = json_pack("{so}", "error", err);
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

/* ---- field checks ---- */

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int bad(srv_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(srv_error *e, const char *param, const char *fmt, ...) {
    char msg[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv_error_set(e, 400, "invalid_request_error", param, "%s: %s", param, msg);
    return -1;
}

/* A number (integer or real) in [lo, hi]. */
static int get_number(const json_t *v, const char *param, double lo, double hi, double *out, srv_error *e) {
    if (!json_is_number(v)) return bad(e, param, "expected a number, got %s", type_name(v));
    const double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi) return bad(e, param, "%g is out of range [%g, %g]", x, lo, hi);
    *out = x;
    return 0;
}

/* An integer in [lo, hi] (a real with an integral value is accepted, as JSON does not tell them apart). */
static int get_int(const json_t *v, const char *param, int64_t lo, int64_t hi, int64_t *out, srv_error *e) {
    if (json_is_real(v)) {
        const double x = json_real_value(v);
        if (!isfinite(x) || x != floor(x)) return bad(e, param, "expected an integer, got %g", x);
        if (x < (double)lo || x > (double)hi)
            return bad(e, param, "%g is out of range [%lld, %lld]", x, (long long)lo, (long long)hi);
        *out = (int64_t)x;
        return 0;
    }
    if (!json_is_integer(v)) return bad(e, param, "expected an integer, got %s", type_name(v));
    const json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return bad(e, param, "%lld is out of range [%lld, %lld]", (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

static int get_bool(const json_t *v, const char *param, bool *out, srv_error *e) {
    if (!json_is_boolean(v)) return bad(e, param, "expected a boolean, got %s", type_name(v));
    *out = json_is_true(v);
    return 0;
}

static char *dup_str(const json_t *v, size_t *len) {
    const size_t n = json_string_length(v);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, json_string_value(v), n);
    s[n] = 0;
    if (len) *len = n;
    return s;
}

static int oom(srv_error *e) {
    srv_error_set(e, 500, "server_error", NULL, "out of memory");
    return -1;
}

/* stop: a string or a list of at most 4 non-empty strings. */
static int get_stop(const json_t *v, const srv_limits *lim, srv_params *p, srv_error *e) {
    if (json_is_null(v)) return 0;
    const json_t *one = json_is_string(v) ? v : NULL;
    if (!one && !json_is_array(v)) return bad(e, "stop", "expected a string or an array of strings, got %s", type_name(v));
    const size_t n = one ? 1 : json_array_size(v);
    if (n > SRV_MAX_STOP) return bad(e, "stop", "at most %d stop sequences, got %zu", SRV_MAX_STOP, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = one ? one : json_array_get(v, i);
        char param[32];
        snprintf(param, sizeof param, one ? "stop" : "stop[%zu]", i);
        if (!json_is_string(s)) return bad(e, param, "expected a string, got %s", type_name(s));
        const size_t len = json_string_length(s);
        if (len == 0) return bad(e, param, "a stop sequence must not be empty");
        if (len > lim->max_stop_len) return bad(e, param, "%zu bytes is longer than the %zu allowed", len, lim->max_stop_len);
        if (!(p->stop[p->n_stop++] = dup_str(s, NULL))) return oom(e);
    }
    return 0;
}

/* ---- messages ---- */

/* content: a string, null, or a list of {"type": "text", "text": ...} parts (joined). New reference, or NULL. */
static json_t *norm_content(const json_t *c, const char *param, srv_error *e) {
    if (json_is_string(c)) return json_incref((json_t *)c);
    if (json_is_null(c)) return json_string("");
    if (!json_is_array(c)) {
        bad(e, param, "expected a string or an array of content parts, got %s", type_name(c));
        return NULL;
    }
    size_t total = 0;
    for (size_t j = 0; j < json_array_size(c); j++) {
        const json_t *part = json_array_get(c, j), *t = json_object_get(part, "type"), *x = json_object_get(part, "text");
        char pp[160];
        snprintf(pp, sizeof pp, "%s[%zu]", param, j);
        if (!json_is_object(part)) return bad(e, pp, "expected a content part object, got %s", type_name(part)), NULL;
        if (!json_is_string(t)) return bad(e, pp, "a content part needs a \"type\" string"), NULL;
        if (strcmp(json_string_value(t), "text"))
            return bad(e, pp, "content parts of type \"%s\" are not supported (only \"text\")", json_string_value(t)), NULL;
        if (!json_is_string(x)) return bad(e, pp, "a text part needs a \"text\" string"), NULL;
        total += json_string_length(x);
    }
    char *buf = malloc(total + 1);
    if (!buf) return oom(e), NULL;
    size_t k = 0;
    for (size_t j = 0; j < json_array_size(c); j++) {
        const json_t *x = json_object_get(json_array_get(c, j), "text");
        memcpy(buf + k, json_string_value(x), json_string_length(x));
        k += json_string_length(x);
    }
    json_t *s = json_stringn(buf, k);
    free(buf);
    if (!s) oom(e);
    return s;
}

/* An assistant's tool_calls: [{id?, type: "function", function: {name, arguments}}]; arguments that hold a JSON
** object become that object. New reference, or NULL. */
static json_t *norm_tool_calls(const json_t *tc, const char *param, srv_error *e) {
    if (!json_is_array(tc)) return bad(e, param, "expected an array, got %s", type_name(tc)), NULL;
    json_t *out = json_array();
    for (size_t j = 0; j < json_array_size(tc); j++) {
        const json_t *call = json_array_get(tc, j), *fn = json_object_get(call, "function");
        char pp[160];
        snprintf(pp, sizeof pp, "%s[%zu]", param, j);
        const json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments"),
                     *id = json_object_get(call, "id");
        const char *why = !json_is_object(call) ? "expected a tool call object"
                          : !json_is_object(fn) ? "a tool call needs a \"function\" object"
                          : !json_is_string(name) ? "function.name must be a string"
                          : args && !json_is_string(args) && !json_is_object(args) ? "function.arguments must be a string"
                          : id && !json_is_string(id) ? "id must be a string" : NULL;
        if (why) {
            json_decref(out);
            return bad(e, pp, "%s", why), NULL;
        }
        json_t *a = NULL;
        if (json_is_string(args)) {
            a = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, NULL);
            if (a && !json_is_object(a)) json_decref(a), a = NULL;
            if (!a) a = json_incref((json_t *)args);
        } else {
            a = args ? json_incref((json_t *)args) : json_object();
        }
        json_t *f = json_pack("{sOso}", "name", name, "arguments", a);
        json_t *c = json_pack("{ssso}", "type", "function", "function", f);
        if (id) json_object_set(c, "id", (json_t *)id);
        json_array_append_new(out, c);
    }
    return out;
}

static int norm_messages(const json_t *msgs, const srv_limits *lim, srv_params *p, srv_error *e) {
    if (!json_is_array(msgs)) return bad(e, "messages", "expected an array of messages, got %s", type_name(msgs));
    const size_t n = json_array_size(msgs);
    if (n == 0) return bad(e, "messages", "at least one message is required");
    if (n > lim->max_messages) return bad(e, "messages", "%zu messages is more than the %zu allowed", n, lim->max_messages);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        char param[64], pp[160];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) {
            json_decref(out);
            return bad(e, param, "expected a message object, got %s", type_name(m));
        }
        const json_t *role = json_object_get(m, "role");
        snprintf(pp, sizeof pp, "%s.role", param);
        if (!json_is_string(role)) {
            json_decref(out);
            return bad(e, pp, "expected a string (system, user, assistant, tool), got %s", role ? type_name(role) : "nothing");
        }
        const char *r = json_string_value(role);
        if (!strcmp(r, "developer")) r = "system";
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool") && strcmp(r, "ipython")) {
            json_decref(out);
            return bad(e, pp, "unknown role \"%.40s\" (system, developer, user, assistant, tool)", r);
        }
        json_t *nm = json_pack("{ss}", "role", r);
        const char *key;
        json_t *v;
        int st = 0;
        json_object_foreach((json_t *)m, key, v) {
            snprintf(pp, sizeof pp, "%s.%.40s", param, key);
            if (!strcmp(key, "role")) continue;
            if (!strcmp(key, "content")) {
                json_t *c = norm_content(v, pp, e);
                if (!c) st = -1;
                else json_object_set_new(nm, "content", c);
            } else if (!strcmp(key, "tool_calls")) {
                if (strcmp(r, "assistant")) st = bad(e, pp, "only assistant messages have tool_calls");
                else if (!json_is_null(v)) {
                    json_t *tc = norm_tool_calls(v, pp, e);
                    if (!tc) st = -1;
                    else json_object_set_new(nm, "tool_calls", tc);
                }
            } else if (!strcmp(key, "name") || !strcmp(key, "tool_call_id")) {
                if (!json_is_string(v)) st = bad(e, pp, "expected a string, got %s", type_name(v));
                else json_object_set(nm, key, v);
            } else if (!strcmp(key, "refusal") || !strcmp(key, "audio") || !strcmp(key, "function_call")) {
                if (!json_is_null(v)) st = bad(e, pp, "not supported");
            } else {
                st = bad(e, pp, "unknown field");
            }
            if (st) break;
        }
        if (!st && !json_object_get(nm, "content") && !json_object_get(nm, "tool_calls"))
            st = bad(e, param, "a message needs \"content\"");
        if (!st && !json_object_get(nm, "content")) json_object_set_new(nm, "content", json_string(""));
        if (st) {
            json_decref(nm);
            json_decref(out);
            return -1;
        }
        json_array_append_new(out, nm);
    }
    p->messages_json = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(out);
    return p->messages_json ? 0 : oom(e);
}

/* tools: [{type: "function", function: {name, description?, parameters?}}]; tool_choice picks. */
static int norm_tools(const json_t *tools, const json_t *choice, srv_params *p, srv_error *e) {
    const char *want = NULL; /* a function tool_choice names */
    bool none = false;
    if (choice && !json_is_null(choice)) {
        if (json_is_string(choice)) {
            const char *c = json_string_value(choice);
            if (!strcmp(c, "none")) none = true;
            else if (strcmp(c, "auto") && strcmp(c, "required"))
                return bad(e, "tool_choice", "expected \"none\", \"auto\", \"required\" or a function, got \"%.40s\"", c);
        } else if (json_is_object(choice)) {
            const json_t *name = json_object_get(json_object_get(choice, "function"), "name");
            if (!json_is_string(name)) return bad(e, "tool_choice", "expected {\"type\": \"function\", \"function\": {\"name\": ...}}");
            want = json_string_value(name);
        } else {
            return bad(e, "tool_choice", "expected a string or an object, got %s", type_name(choice));
        }
    }
    if (!tools || json_is_null(tools)) {
        if (want) return bad(e, "tool_choice", "names a function but no tools are given");
        return 0;
    }
    if (!json_is_array(tools)) return bad(e, "tools", "expected an array of tools, got %s", type_name(tools));
    if (json_array_size(tools) > 128) return bad(e, "tools", "at most 128 tools");
    json_t *out = json_array();
    bool found = false;
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *t = json_array_get(tools, i), *type = json_object_get(t, "type"), *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name"), *params = json_object_get(fn, "parameters");
        char param[48];
        snprintf(param, sizeof param, "tools[%zu]", i);
        const char *why = !json_is_object(t) ? "expected a tool object"
                          : !json_is_string(type) || strcmp(json_string_value(type), "function") ? "type must be \"function\""
                          : !json_is_object(fn) ? "a tool needs a \"function\" object"
                          : !json_is_string(name) || !json_string_length(name) ? "function.name must be a non-empty string"
                          : params && !json_is_object(params) ? "function.parameters must be an object" : NULL;
        if (why) {
            json_decref(out);
            return bad(e, param, "%s", why);
        }
        if (want && strcmp(want, json_string_value(name))) continue;
        found = true;
        json_array_append(out, (json_t *)t);
    }
    if (want && !found) {
        json_decref(out);
        return bad(e, "tool_choice", "names the function \"%.60s\", which is not in tools", want);
    }
    if (!none && json_array_size(out)) {
        p->tools_json = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!p->tools_json) {
            json_decref(out);
            return oom(e);
        }
    }
    json_decref(out);
    return 0;
}

/* completions' prompt: a string, [string], [ids], or [[ids]]. */
static int get_prompt(const json_t *v, srv_params *p, srv_error *e) {
    if (!v) return bad(e, "prompt", "required");
    if (json_is_array(v) && json_array_size(v) == 1 && (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0))))
        v = json_array_get(v, 0);
    if (json_is_string(v)) {
        if (!(p->prompt = dup_str(v, &p->prompt_len))) return oom(e);
        return 0;
    }
    if (!json_is_array(v)) return bad(e, "prompt", "expected a string or an array of token ids, got %s", type_name(v));
    const size_t n = json_array_size(v);
    if (n == 0) return bad(e, "prompt", "the prompt is empty");
    if (n > (1u << 24)) return bad(e, "prompt", "too many tokens");
    if (!(p->prompt_ids = malloc(n * sizeof *p->prompt_ids))) return oom(e);
    p->n_prompt_ids = n;
    for (size_t i = 0; i < n; i++) {
        char param[48];
        int64_t id;
        snprintf(param, sizeof param, "prompt[%zu]", i);
        const json_t *x = json_array_get(v, i);
        if (json_is_string(x)) return bad(e, param, "several prompts in one request are not supported (n = 1)");
        if (get_int(x, param, 0, INT32_MAX, &id, e)) return -1;
        p->prompt_ids[i] = (int32_t)id;
    }
    return 0;
}

/* logit_bias: {"token id": bias in [-100, 100], ...}, as OpenAI's API. */
static int get_logit_bias(const json_t *v, srv_params *p, srv_error *e) {
    if (json_is_null(v)) return 0;
    if (!json_is_object(v)) return bad(e, "logit_bias", "expected an object of token ids, got %s", type_name(v));
    const size_t n = json_object_size(v);
    if (n > SRV_MAX_LOGIT_BIAS) return bad(e, "logit_bias", "at most %d entries, got %zu", SRV_MAX_LOGIT_BIAS, n);
    if (!n) return 0;
    p->bias_ids = malloc(n * sizeof *p->bias_ids);
    p->bias = malloc(n * sizeof *p->bias);
    if (!p->bias_ids || !p->bias) return oom(e);
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        char param[64];
        snprintf(param, sizeof param, "logit_bias.%.40s", key);
        char *end = NULL;
        const long id = strtol(key, &end, 10);
        if (!*key || *end || key[0] == '-' || key[0] == '+' || key[0] == ' ' || id < 0 || id > INT32_MAX)
            return bad(e, param, "keys must be token ids (non-negative integers)");
        double b;
        if (get_number(x, param, -100, 100, &b, e)) return -1;
        p->bias_ids[p->n_bias] = (int32_t)id;
        p->bias[p->n_bias++] = (float)b;
    }
    return 0;
}

/* Fields accepted and not used: each must hold its neutral value (or null). */
static int neutral(const char *key, const json_t *v, srv_error *e) {
    if (json_is_null(v)) return 0;
    if (!strcmp(key, "presence_penalty") || !strcmp(key, "frequency_penalty")) {
        double x;
        if (get_number(v, key, -2, 2, &x, e)) return -1;
        return 0; /* accepted, not applied */
    }
    if (!strcmp(key, "user") || !strcmp(key, "service_tier"))
        return json_is_string(v) ? 0 : bad(e, key, "expected a string, got %s", type_name(v));
    if (!strcmp(key, "metadata")) return json_is_object(v) ? 0 : bad(e, key, "expected an object, got %s", type_name(v));
    if (!strcmp(key, "parallel_tool_calls") || !strcmp(key, "store")) {
        bool b;
        return get_bool(v, key, &b, e);
    }
    if (!strcmp(key, "response_format")) {
        const json_t *t = json_object_get(v, "type");
        if (!json_is_object(v) || !json_is_string(t)) return bad(e, key, "expected {\"type\": \"text\"}");
        return strcmp(json_string_value(t), "text") ? bad(e, key, "only {\"type\": \"text\"} is supported") : 0;
    }
    if (!strcmp(key, "echo")) {
        bool b;
        if (get_bool(v, key, &b, e)) return -1;
        return b ? bad(e, key, "echo is not supported") : 0;
    }
    if (!strcmp(key, "best_of")) {
        int64_t x;
        if (get_int(v, key, 1, 1, &x, e)) return -1;
        return 0;
    }
    if (!strcmp(key, "suffix")) return bad(e, key, "not supported");
    return 1; /* not a known field */
}

int srv_parse_request(int kind, const char *body, size_t n, const srv_limits *lim, srv_params *p, srv_error *e) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->temperature = 1.0;
    p->top_p = 1.0;
    p->max_tokens = kind == SRV_COMPLETION ? 16 : -1; /* OpenAI's defaults */
    json_error_t je;
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        srv_error_set(e, 400, "invalid_request_error", NULL,
                      "the body is not valid JSON: %s at line %d, column %d (byte %d)", je.text, je.line, je.column,
                      je.position);
        return -1;
    }
    int st = 0;
    if (!json_is_object(root)) st = bad(e, "body", "expected a JSON object, got %s", type_name(root));
    const json_t *tools = NULL, *tool_choice = NULL, *messages = NULL, *prompt = NULL;
    bool have_max = false;
    const char *key;
    json_t *v;
    if (!st) json_object_foreach(root, key, v) {
        int64_t x;
        double d;
        if (!strcmp(key, "model")) {
            if (!json_is_string(v)) st = bad(e, key, "expected a string, got %s", type_name(v));
            else if (!(p->model = dup_str(v, NULL))) st = oom(e);
        } else if (!strcmp(key, "messages") && kind == SRV_CHAT) {
            messages = v;
        } else if (!strcmp(key, "prompt") && kind == SRV_COMPLETION) {
            prompt = v;
        } else if (!strcmp(key, "tools") && kind == SRV_CHAT) {
            tools = v;
        } else if (!strcmp(key, "tool_choice") && kind == SRV_CHAT) {
            tool_choice = v;
        } else if (!strcmp(key, "stream")) {
            if (!json_is_null(v)) st = get_bool(v, key, &p->stream, e);
        } else if (!strcmp(key, "stream_options")) {
            if (json_is_null(v)) continue;
            const json_t *iu = json_object_get(v, "include_usage");
            if (!json_is_object(v)) st = bad(e, key, "expected an object, got %s", type_name(v));
            else if (iu) st = get_bool(iu, "stream_options.include_usage", &p->include_usage, e);
        } else if (!strcmp(key, "max_tokens") || !strcmp(key, "max_completion_tokens")) {
            if (json_is_null(v)) continue;
            if (!(st = get_int(v, key, 1, lim->max_tokens, &x, e))) {
                if (!have_max || x < p->max_tokens) p->max_tokens = x; /* both given: the smaller */
                have_max = true;
            }
        } else if (!strcmp(key, "temperature")) {
            if (!json_is_null(v) && !(st = get_number(v, key, 0, 2, &d, e))) p->temperature = d;
        } else if (!strcmp(key, "top_p")) {
            if (!json_is_null(v) && !(st = get_number(v, key, 0, 1, &d, e))) p->top_p = d;
        } else if (!strcmp(key, "seed")) {
            if (!json_is_null(v) && !(st = get_int(v, key, INT64_MIN, INT64_MAX, &x, e))) p->has_seed = true, p->seed = (uint64_t)x;
        } else if (!strcmp(key, "n")) {
            if (!json_is_null(v) && !(st = get_int(v, key, 1, 128, &x, e)) && x != 1)
                st = bad(e, key, "only n = 1 is supported (send several requests)");
        } else if (!strcmp(key, "stop")) {
            st = get_stop(v, lim, p, e);
        } else if (!strcmp(key, "logit_bias")) {
            st = get_logit_bias(v, p, e);
        } else if (!strcmp(key, "logprobs")) {
            if (json_is_null(v)) continue;
            if (kind == SRV_CHAT) st = get_bool(v, key, &p->logprobs, e);
            else if (!(st = get_int(v, key, 0, 5, &x, e))) p->logprobs = true, p->top_logprobs = (int)x;
        } else if (!strcmp(key, "top_logprobs") && kind == SRV_CHAT) {
            if (!json_is_null(v) && !(st = get_int(v, key, 0, SRV_MAX_TOP_LOGPROBS, &x, e))) p->top_logprobs = (int)x;
        } else {
            const int r = neutral(key, v, e);
            if (r > 0) st = bad(e, key, "unrecognized request argument");
            else st = r;
        }
        if (st) break;
    }
    if (!st && kind == SRV_CHAT) {
        if (!messages) st = bad(e, "messages", "required");
        else st = norm_messages(messages, lim, p, e);
        if (!st) st = norm_tools(tools, tool_choice, p, e);
        if (!st && p->top_logprobs && !p->logprobs) st = bad(e, "top_logprobs", "requires logprobs: true");
    }
    if (!st && kind == SRV_COMPLETION) st = get_prompt(prompt, p, e);
    json_decref(root);
    if (st) srv_params_free(p);
    return st;
}

void srv_params_free(srv_params *p) {
    for (size_t i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->model);
    free(p->messages_json);
    free(p->tools_json);
    free(p->prompt);
    free(p->prompt_ids);
    free(p->bias_ids);
    free(p->bias);
    memset(p, 0, sizeof *p);
}
