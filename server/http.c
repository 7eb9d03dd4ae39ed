/* http.c - the HTTP side of `llamac serve` (libmicrohttpd, a thread per connection): routes, authentication, body
** and field limits, request preparation (template, tokens) and queueing, streaming out of the request's buffer,
** /metrics, and the process's life: SIGTERM or SIGINT closes the listening socket, lets running and queued requests
** finish, then exits.
**
** The connection threads never touch the context: they parse, render, tokenize, queue, then wait for the scheduler
** to fill the request's out buffer. A client that goes away (its socket hangs up) cancels its request, which frees
** its slot at the next step. Every error is a JSON body in OpenAI's shape.
*/
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DISCARD_MAX (64u << 20) /* a body larger than the limit is read and dropped up to this, then refused */

typedef struct server {
    srv_options o;
    lc_model *m;
    srv_sched *sched;
    struct MHD_Daemon *d;
    char model_name[128];
    int64_t started;
    srv_limits lim;
    pthread_mutex_t mu; /* counters below */
    uint64_t n_http, n_4xx, n_5xx, n_503, id_counter;
    volatile int draining;
} server;

typedef struct conn_state {
    char *body;
    size_t n, cap;
    bool too_big, authed_checked;
    size_t content_length;
} conn_state;

typedef struct stream_ctx {
    srv_req *r;
    int fd;
} stream_ctx;

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *c, int status, const char *type, const char *body, size_t n,
                                 bool copy) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)body, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_MUST_FREE);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"llamac\", charset=\"UTF-8\"");
    const enum MHD_Result r = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_error(server *sv, struct MHD_Connection *c, const srv_error *e) {
    pthread_mutex_lock(&sv->mu);
    if (e->status >= 500) sv->n_5xx++;
    else sv->n_4xx++;
    if (e->status == 503) sv->n_503++;
    pthread_mutex_unlock(&sv->mu);
    char *j = srv_error_json(e);
    if (!j) return MHD_NO;
    return send_body(c, e->status, "application/json", j, strlen(j), false);
}

static enum MHD_Result fail(server *sv, struct MHD_Connection *c, int status, const char *type, const char *param,
                            const char *code, const char *msg) {
    srv_error e;
    srv_error_set(&e, status, type, param, "%s", msg);
    e.code = code;
    return send_error(sv, c, &e);
}

static enum MHD_Result send_json(struct MHD_Connection *c, json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!s) return MHD_NO;
    return send_body(c, 200, "application/json", s, strlen(s), false);
}

/* ---- authentication ---- */

static bool const_eq(const char *a, size_t an, const char *b, size_t bn) {
    unsigned char d = an != bn;
    for (size_t i = 0; i < an; i++) d |= (unsigned char)(a[i] ^ (bn ? b[i % bn] : 0));
    return d == 0;
}

static int b64v(int ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Authorization: "Bearer KEY", or "Basic base64(any-user:KEY)" (what a browser sends for the page). */
static bool authorized(const server *sv, struct MHD_Connection *c) {
    const char *key = sv->o.api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h) return false;
    if (!strncasecmp(h, "Bearer ", 7)) {
        const char *t = h + 7;
        while (*t == ' ') t++;
        return const_eq(t, strlen(t), key, strlen(key));
    }
    if (!strncasecmp(h, "Basic ", 6)) {
        const char *t = h + 6;
        char dec[512];
        size_t n = 0;
        unsigned acc = 0;
        int bits = 0;
        for (; *t && *t != '=' && n < sizeof dec - 1; t++) {
            const int v = b64v((unsigned char)*t);
            if (v < 0) return false;
            acc = (acc << 6) | (unsigned)v, bits += 6;
            if (bits >= 8) bits -= 8, dec[n++] = (char)((acc >> bits) & 0xFF);
        }
        dec[n] = 0;
        const char *colon = memchr(dec, ':', n);
        if (!colon) return false;
        const char *pw = colon + 1;
        return const_eq(pw, n - (size_t)(pw - dec), key, strlen(key));
    }
    return false;
}

/* ---- waiting for the scheduler ---- */

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void timed_wait(srv_req *r, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    srv_req *r = sc->r;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->out_off < r->out_n) {
            size_t n = r->out_n - r->out_off;
            if (n > max) n = max;
            memcpy(buf, r->out + r->out_off, n);
            r->out_off += n;
            pthread_mutex_unlock(&r->mu);
            return (ssize_t)n;
        }
        if (r->done) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (r->cancelled) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        timed_wait(r, 50);
        if (client_gone(sc->fd)) r->cancelled = true;
    }
}

static void stream_free(void *cls) {
    stream_ctx *sc = cls;
    srv_req_cancel(sc->r); /* no-op when it is done; else the client left */
    srv_req_release(sc->r);
    free(sc);
}

/* ---- preparing a request ---- */

static int render_chat(server *sv, const srv_params *p, char **text, size_t *len, srv_error *e) {
    lc_chat_params cp = lc_chat_default_params();
    cp.tools_json = p->tools_json;
    cp.template_src = sv->o.template_src, cp.template_len = sv->o.template_len, cp.template_name = sv->o.template_name;
    lc_chat *ch = NULL;
    int r = lc_chat_new(sv->m, NULL, &cp, &ch);
    if (!r) r = lc_chat_set_messages(ch, p->messages_json, strlen(p->messages_json));
    if (!r) r = lc_chat_render(ch, true, text, len);
    if (r) srv_error_set(e, r == LC_E_NOMEM ? 500 : 400, r == LC_E_NOMEM ? "server_error" : "invalid_request_error",
                         "messages", "the chat template refused the conversation: %s", lc_last_error());
    lc_chat_free(ch);
    return r ? -1 : 0;
}

/* text -> tokens with control tokens parsed; BOS when the tokenizer adds one and the text does not start with it. */
static int tokenize(server *sv, const char *text, size_t len, int32_t **ids, int32_t *n, srv_error *e) {
    size_t need = 0;
    lc_tokenize(sv->m, text, len, LC_TOK_PARSE_SPECIAL, NULL, 0, &need);
    if (need > (size_t)srv_sched_n_ctx(sv->sched) * 4 + 16) { /* sure not to fit: do not allocate for it */
        *n = (int32_t)(need > INT32_MAX ? INT32_MAX : need);
        *ids = NULL;
        return 0;
    }
    int32_t *t = malloc(sizeof *t * (need + 2));
    if (!t) return srv_error_set(e, 500, "server_error", NULL, "out of memory"), -1;
    if (lc_tokenize(sv->m, text, len, LC_TOK_PARSE_SPECIAL, t + 1, need + 1, &need)) {
        free(t);
        srv_error_set(e, 400, NULL, "prompt", "cannot tokenize: %s", lc_last_error());
        return -1;
    }
    const int32_t bos = lc_token_bos(sv->m);
    const bool add = bos >= 0 && lc_token_add_bos(sv->m) && (need == 0 || t[1] != bos);
    if (add) t[0] = bos;
    else memmove(t, t + 1, sizeof *t * need);
    *ids = t;
    *n = (int32_t)need + add;
    return 0;
}

/* Body -> a queued request. 0, or -1 with *e. */
static int prepare(server *sv, int kind, const conn_state *cs, srv_req *r, srv_error *e) {
    if (srv_parse_request(kind, cs->body ? cs->body : "", cs->n, &sv->lim, &r->p, e)) return -1;
    const int32_t n_ctx = srv_sched_n_ctx(sv->sched);
    const uint32_t n_vocab = lc_model_hparams(sv->m)->n_vocab;
    if (kind == SRV_CHAT) {
        char *text = NULL;
        size_t len = 0;
        if (render_chat(sv, &r->p, &text, &len, e)) return -1;
        const int st = tokenize(sv, text, len, &r->prompt, &r->n_prompt, e);
        lc_free(text);
        if (st) return -1;
    } else if (r->p.prompt) {
        if (tokenize(sv, r->p.prompt, r->p.prompt_len, &r->prompt, &r->n_prompt, e)) return -1;
    } else {
        for (size_t i = 0; i < r->p.n_prompt_ids; i++)
            if ((uint32_t)r->p.prompt_ids[i] >= n_vocab) {
                char param[48];
                snprintf(param, sizeof param, "prompt[%zu]", i);
                srv_error_set(e, 400, NULL, param, "%s: token id %d is outside the vocabulary [0, %u)", param,
                              (int)r->p.prompt_ids[i], n_vocab);
                return -1;
            }
        r->n_prompt = (int32_t)r->p.n_prompt_ids;
        r->prompt = malloc(sizeof *r->prompt * r->p.n_prompt_ids);
        if (!r->prompt) return srv_error_set(e, 500, "server_error", NULL, "out of memory"), -1;
        memcpy(r->prompt, r->p.prompt_ids, sizeof *r->prompt * r->p.n_prompt_ids);
    }
    for (size_t i = 0; i < r->p.n_bias; i++)
        if ((uint32_t)r->p.bias_ids[i] >= n_vocab) {
            char param[48];
            snprintf(param, sizeof param, "logit_bias.%d", (int)r->p.bias_ids[i]);
            srv_error_set(e, 400, NULL, param, "%s: token id %d is outside the vocabulary [0, %u)", param,
                          (int)r->p.bias_ids[i], n_vocab);
            return -1;
        }
    const char *what = kind == SRV_CHAT ? "messages" : "prompt";
    if (r->n_prompt == 0) {
        srv_error_set(e, 400, NULL, what, "%s: the prompt is empty", what);
        return -1;
    }
    if (r->n_prompt >= n_ctx) {
        srv_error_set(e, 400, NULL, what,
                      "this model's context holds %d tokens, but the %s make %d tokens (and the answer needs room too)",
                      (int)n_ctx, kind == SRV_CHAT ? "messages" : "prompt", (int)r->n_prompt);
        e->code = "context_length_exceeded";
        return -1;
    }
    pthread_mutex_lock(&sv->mu);
    const uint64_t k = ++sv->id_counter;
    pthread_mutex_unlock(&sv->mu);
    snprintf(r->id, sizeof r->id, "%s%llx%06llx", kind == SRV_CHAT ? "chatcmpl-" : "cmpl-",
             (unsigned long long)sv->started, (unsigned long long)k);
    r->created = (int64_t)time(NULL);
    snprintf(r->model_name, sizeof r->model_name, "%s", sv->model_name);
    return 0;
}

/* ---- routes ---- */

static enum MHD_Result serve_metrics(server *sv, struct MHD_Connection *c) {
    srv_stats st;
    srv_sched_stats(sv->sched, &st);
    pthread_mutex_lock(&sv->mu);
    const uint64_t n_http = sv->n_http, n4 = sv->n_4xx, n5 = sv->n_5xx, n503 = sv->n_503;
    pthread_mutex_unlock(&sv->mu);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return MHD_NO;
#define METRIC(name, type, help, fmt, val)                                                                         \
    fprintf(f, "# HELP llamac_" name " " help "\n# TYPE llamac_" name " " type "\nllamac_" name " " fmt "\n", val)
    METRIC("http_requests_total", "counter", "HTTP requests received.", "%llu", (unsigned long long)n_http);
    METRIC("http_client_errors_total", "counter", "Requests answered with a 4xx status.", "%llu", (unsigned long long)n4);
    METRIC("http_server_errors_total", "counter", "Requests answered with a 5xx status (503 included).", "%llu",
           (unsigned long long)n5);
    METRIC("requests_rejected_total", "counter", "Requests refused with 503 (queue full or draining).", "%llu",
           (unsigned long long)n503);
    METRIC("requests_completed_total", "counter", "Completions finished.", "%llu", (unsigned long long)st.requests);
    METRIC("requests_cancelled_total", "counter", "Completions dropped because the client went away.", "%llu",
           (unsigned long long)st.cancelled);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", "%llu",
           (unsigned long long)st.prompt_tokens);
    METRIC("prompt_tokens_cached_total", "counter", "Prompt tokens reused from the prompt cache.", "%llu",
           (unsigned long long)st.cached_tokens);
    METRIC("generated_tokens_total", "counter", "Tokens generated.", "%llu", (unsigned long long)st.generated_tokens);
    METRIC("decode_steps_total", "counter", "Batched decode steps.", "%llu", (unsigned long long)st.steps);
    METRIC("decode_seconds_total", "counter", "Time spent in decode steps.", "%.6f", st.busy_s);
    METRIC("queue_depth", "gauge", "Requests waiting for a slot.", "%d", st.queue_depth);
    METRIC("slots_active", "gauge", "Slots serving a request.", "%d", st.active);
    METRIC("slots_total", "gauge", "Slots (sequences decoded together).", "%d", st.n_slots);
    METRIC("kv_cells_used", "gauge", "KV cache cells holding tokens.", "%d", st.kv_used);
    METRIC("kv_cells_total", "gauge", "KV cache cells.", "%d", st.n_ctx);
    METRIC("tokens_per_second", "gauge", "Generated tokens per second over the last 5 seconds.", "%.3f",
           st.tokens_per_s);
#undef METRIC
    fclose(f);
    return send_body(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, n, false);
}

static enum MHD_Result serve_completion(server *sv, struct MHD_Connection *c, int kind, conn_state *cs) {
    srv_error e;
    if (sv->draining) return fail(sv, c, 503, "server_error", NULL, NULL, "the server is shutting down");
    srv_req *r = srv_req_new();
    if (!r) return fail(sv, c, 500, "server_error", NULL, NULL, "out of memory");
    if (prepare(sv, kind, cs, r, &e)) {
        srv_req_release(r);
        return send_error(sv, c, &e);
    }
    const int q = srv_sched_submit(sv->sched, r);
    if (q) {
        srv_req_release(r);
        return fail(sv, c, 503, "server_error", NULL, q == -1 ? "queue_full" : NULL,
                    q == -1 ? "the server is busy (request queue full); retry later" : "the server is shutting down");
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const int fd = ci ? ci->connect_fd : -1;
    if (r->p.stream) {
        stream_ctx *sc = malloc(sizeof *sc);
        struct MHD_Response *resp = sc ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, sc,
                                                                             stream_free)
                                       : NULL;
        if (!resp) {
            free(sc);
            srv_req_cancel(r);
            srv_req_release(r);
            return MHD_NO;
        }
        sc->r = r, sc->fd = fd;
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        const enum MHD_Result res = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return res;
    }
    /* not streaming: the whole answer, then one response */
    pthread_mutex_lock(&r->mu);
    while (!r->done && !r->cancelled) {
        timed_wait(r, 50);
        if (client_gone(fd)) r->cancelled = true;
    }
    const bool ok = r->done && !r->cancelled;
    char *body = ok ? malloc(r->out_n - r->out_off + 1) : NULL;
    const size_t n = ok ? r->out_n - r->out_off : 0;
    if (body) memcpy(body, r->out + r->out_off, n);
    pthread_mutex_unlock(&r->mu);
    srv_req_cancel(r);
    srv_req_release(r);
    if (!body) return MHD_NO; /* the client left */
    return send_body(c, 200, "application/json", body, n, false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_n, void **con_cls) {
    (void)version;
    server *sv = cls;
    conn_state *cs = *con_cls;
    const bool post = !strcmp(method, "POST");
    if (!cs) { /* the first call: headers only */
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        pthread_mutex_lock(&sv->mu);
        sv->n_http++;
        pthread_mutex_unlock(&sv->mu);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) { /* streamed events are small: send each at once (no Nagle delay) */
            const int one = 1;
            setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) cs->content_length = (size_t)strtoull(cl, NULL, 10);
        if (strcmp(url, "/health") && !authorized(sv, c))
            return fail(sv, c, 401, "authentication_error", NULL, "invalid_api_key",
                        "a valid API key is required: send the header 'Authorization: Bearer KEY'");
        if (post && cs->content_length > DISCARD_MAX) {
            srv_error e;
            srv_error_set(&e, 413, NULL, "body", "the body of %zu bytes is larger than the %zu allowed", cs->content_length,
                          sv->o.max_body);
            return send_error(sv, c, &e);
        }
        return MHD_YES;
    }
    if (*upload_n) { /* a piece of the body */
        const size_t k = *upload_n;
        *upload_n = 0;
        if (cs->too_big || cs->n + k > sv->o.max_body) {
            cs->too_big = true;
            cs->n += k;
            free(cs->body);
            cs->body = NULL;
            cs->cap = 0;
            if (cs->n > DISCARD_MAX) return MHD_NO;
            return MHD_YES;
        }
        return srv_buf_append(&cs->body, &cs->n, &cs->cap, upload, k) ? MHD_YES : MHD_NO;
    }
    /* the request is complete */
    if (cs->too_big) {
        srv_error e;
        srv_error_set(&e, 413, NULL, "body", "the body of %zu bytes is larger than the %zu allowed (--max-body)", cs->n,
                      sv->o.max_body);
        return send_error(sv, c, &e);
    }
    const bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const struct { const char *path; bool post; } routes[] = {
        {"/", false}, {"/index.html", false}, {"/health", false}, {"/v1/models", false}, {"/metrics", false},
        {"/v1/chat/completions", true}, {"/v1/completions", true}, {"/chat/completions", true}, {"/completions", true},
    };
    int route = -1;
    for (size_t i = 0; i < sizeof routes / sizeof *routes && route < 0; i++)
        if (!strcmp(url, routes[i].path)) route = (int)i;
    if (route < 0) return fail(sv, c, 404, "invalid_request_error", NULL, "not_found", "no such endpoint");
    if (routes[route].post ? !post : !get)
        return fail(sv, c, 405, "invalid_request_error", NULL, "method_not_allowed",
                    routes[route].post ? "this endpoint takes POST" : "this endpoint takes GET");
    switch (route) {
    case 0:
    case 1:
        return send_body(c, 200, "text/html; charset=utf-8", srv_page_html, srv_page_len(), true);
    case 2:
        if (sv->draining) return fail(sv, c, 503, "server_error", NULL, NULL, "the server is shutting down");
        return send_json(c, json_pack("{ss}", "status", "ok"));
    case 3:
        return send_json(c, json_pack("{sss[{sssssIss}]}", "object", "list", "data", "id", sv->model_name, "object",
                                      "model", "created", (json_int_t)sv->started, "owned_by", "llamac"));
    case 4:
        return serve_metrics(sv, c);
    case 5:
    case 7:
        return serve_completion(sv, c, SRV_CHAT, cs);
    default:
        return serve_completion(sv, c, SRV_COMPLETION, cs);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code) {
    (void)cls, (void)c, (void)code;
    conn_state *cs = *con_cls;
    if (!cs) return;
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ---- the process ---- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const int r = getaddrinfo(host, ps, &hints, &res);
    if (r || !res) {
        fprintf(stderr, "llamac serve: --host %s: %s\n", host, gai_strerror(r));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int srv_run(const srv_options *o) {
    server sv;
    memset(&sv, 0, sizeof sv);
    sv.o = *o;
    pthread_mutex_init(&sv.mu, NULL);
    sv.started = (int64_t)time(NULL);
    const char *base = strrchr(o->model_path, '/');
    base = base ? base + 1 : o->model_path;
    snprintf(sv.model_name, sizeof sv.model_name, "%s", o->model_name ? o->model_name : base);
    /* signals: the connection and scheduler threads never see them; this thread waits for them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    struct sockaddr_storage addr;
    socklen_t alen;
    if (resolve(o->host, o->port, &addr, &alen)) return 2;
    lc_model_params mp = lc_model_default_params();
    mp.use_mmap = o->use_mmap;
    if (lc_model_load(o->model_path, &mp, &sv.m)) {
        const char *msg = lc_last_error(); /* it names the file, or the file is named here */
        if (strstr(msg, o->model_path)) fprintf(stderr, "llamac: %s\n", msg);
        else fprintf(stderr, "llamac: %s: %s\n", o->model_path, msg);
        return 1;
    }
    lc_chat_params chp = lc_chat_default_params(); /* the chat template must parse before anything is served */
    chp.template_src = o->template_src, chp.template_len = o->template_len, chp.template_name = o->template_name;
    lc_chat *probe = NULL;
    if (lc_chat_new(sv.m, NULL, &chp, &probe)) {
        fprintf(stderr, "llamac: chat template: %s\n", lc_last_error());
        lc_model_free(sv.m);
        return 1;
    }
    lc_chat_free(probe);
    if (srv_sched_new(sv.m, o, &sv.sched)) {
        fprintf(stderr, "llamac: %s\n", lc_last_error());
        lc_model_free(sv.m);
        return 1;
    }
    const int32_t n_ctx = srv_sched_n_ctx(sv.sched);
    sv.lim.max_messages = o->max_messages;
    sv.lim.max_tokens = o->max_tokens > 0 && o->max_tokens < n_ctx ? o->max_tokens : n_ctx;
    sv.lim.max_stop_len = 256;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    sv.d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, &sv, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, &sv, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (!sv.d) {
        fprintf(stderr, "llamac serve: cannot listen on %s port %d: %s\n", o->host, o->port, strerror(errno));
        srv_sched_free(sv.sched);
        lc_model_free(sv.m);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(sv.d, MHD_DAEMON_INFO_BIND_PORT);
    const int port = di ? di->port : o->port;
    char desc[128];
    lc_model_desc(sv.m, desc, sizeof desc);
    fprintf(stderr, "llamac serve: %s (%s), %d slots, %d KV cells, %s\n", sv.model_name, desc, o->n_parallel,
            (int)n_ctx, o->api_key ? "API key required" : "no API key");
    for (int i = 0; i < o->n_lora; i++)
        fprintf(stderr, "llamac serve: LoRA adapter %s, scale %g\n", o->lora_files[i], (double)o->lora_scales[i]);
    fprintf(stderr, "llamac serve: listening on http://%s%s%s:%d/\n", addr.ss_family == AF_INET6 ? "[" : "", o->host,
            addr.ss_family == AF_INET6 ? "]" : "", port);
    fflush(stderr);

    int sig = 0;
    sigset_t wait_for;
    sigemptyset(&wait_for);
    sigaddset(&wait_for, SIGTERM);
    sigaddset(&wait_for, SIGINT);
    sigwait(&wait_for, &sig);
    fprintf(stderr, "llamac serve: %s: finishing the requests under way, then exiting\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sv.draining = 1;
    const MHD_socket ls = MHD_quiesce_daemon(sv.d); /* no new connections */
    if (ls != MHD_INVALID_SOCKET) close(ls);
    srv_sched_drain(sv.sched, 60.0);
    /* the last bytes of the streams go out; the connection threads end */
    for (int i = 0; i < 100; i++) {
        const union MHD_DaemonInfo *ni = MHD_get_daemon_info(sv.d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!ni || ni->num_connections == 0) break;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(sv.d);
    srv_sched_free(sv.sched);
    lc_model_free(sv.m);
    pthread_mutex_destroy(&sv.mu);
    fprintf(stderr, "llamac serve: stopped\n");
    return 0;
}
