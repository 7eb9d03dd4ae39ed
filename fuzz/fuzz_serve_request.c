/* fuzz_serve_request.c - libFuzzer target for the server's request parsing (server/schema.c): a JSON body into a
** checked srv_params, as `llamac serve` does for POST /v1/chat/completions and /v1/completions.
**
** The first byte picks the endpoint; the rest is the body. Checks (each violation traps): an accepted request holds
** only values in their ranges, its normalized messages are a JSON list of objects with a string "role" and a string
** "content" (what the chat template is given), its tools a JSON list; a refused one has a 4xx status (500 only for
** out of memory), a message, and an error body that is JSON in OpenAI's shape.
*/
#include "../server/server.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) {
    fprintf(stderr, "%s\n", what);
    __builtin_trap();
}

static void check_accepted(const srv_params *p, const srv_limits *lim) {
    if (p->max_tokens != -1 && !(p->max_tokens >= 1 && p->max_tokens <= lim->max_tokens)) die("max_tokens out of range");
    if (!(p->temperature >= 0 && p->temperature <= 2) || !(p->top_p >= 0 && p->top_p <= 1)) die("sampling out of range");
    if (p->n_stop > SRV_MAX_STOP) die("too many stop strings");
    for (size_t i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !*p->stop[i] || strlen(p->stop[i]) > lim->max_stop_len) die("bad stop string");
    if (p->top_logprobs < 0 || p->top_logprobs > SRV_MAX_TOP_LOGPROBS) die("top_logprobs out of range");
    if (p->n_bias > SRV_MAX_LOGIT_BIAS) die("too many logit_bias entries");
    for (size_t i = 0; i < p->n_bias; i++)
        if (p->bias_ids[i] < 0 || !(p->bias[i] >= -100 && p->bias[i] <= 100)) die("logit_bias out of range");
    if (p->kind == SRV_CHAT) {
        json_t *m = p->messages_json ? json_loads(p->messages_json, 0, NULL) : NULL;
        if (!json_is_array(m) || json_array_size(m) == 0 || json_array_size(m) > lim->max_messages) die("bad messages");
        for (size_t i = 0; i < json_array_size(m); i++) {
            const json_t *x = json_array_get(m, i);
            if (!json_is_string(json_object_get(x, "role")) || !json_is_string(json_object_get(x, "content")))
                die("a normalized message without a string role and content");
        }
        json_decref(m);
        if (p->tools_json) {
            json_t *t = json_loads(p->tools_json, 0, NULL);
            if (!json_is_array(t) || !json_array_size(t)) die("bad tools");
            json_decref(t);
        }
    } else if (!p->prompt && !p->n_prompt_ids) {
        die("a completion without a prompt");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int kind = data[0] & 1 ? SRV_COMPLETION : SRV_CHAT;
    const srv_limits lim = {.max_messages = 64, .max_tokens = 4096, .max_stop_len = 32};
    srv_params p;
    srv_error e;
    memset(&e, 0, sizeof e);
    if (srv_parse_request(kind, (const char *)data + 1, size - 1, &lim, &p, &e) == 0) {
        check_accepted(&p, &lim);
        srv_params_free(&p);
        return 0;
    }
    if (!((e.status >= 400 && e.status < 500) || e.status == 500) || !e.message[0]) die("a refusal without a 4xx and a message");
    char *body = srv_error_json(&e);
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    if (!j || !json_is_string(json_object_get(json_object_get(j, "error"), "message"))) die("the error body is not OpenAI's shape");
    json_decref(j);
    free(body);
    return 0;
}
