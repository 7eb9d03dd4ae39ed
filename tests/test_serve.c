/* test_serve.c - `llamac serve` from the outside: the real binary on a loopback port, spoken to over raw sockets here
** and with the official OpenAI npm client and headless Chromium (the scripts in tests/serve, run from here).
**
** References: greedy completions equal the library's own single-sequence greedy run on a fresh context (lc_decode
** one token at a time, no batching); the OpenAI client parses every answer (streamed and not, tools, logprobs);
** 16 concurrent greedy streams each equal the same request sent alone. The bad-input suite (malformed JSON, wrong
** types, huge and negative numbers, unknown fields, a 10 MB body, a slow client, a client leaving mid-stream, bad
** API keys) must give 4xx JSON errors naming the field, and the server must answer normally afterwards. Also: a full
** queue gives 503 with Retry-After; a repeated prompt reuses the cache; SIGTERM lets a running stream finish and the
** process exit 0. Every wait is bounded. Skips (with a message) on builds without the server (the ARM64 cross
** build) and, for the npm parts, without node or its modules, unless LLAMAC_REQUIRE_ORACLE=1.
*/
#include "harness.h"
#include "llamac.h"
#include "lora_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define KEY "test-key-0123456789"

static char g_bin[4096], g_tmp[256], g_model[512], g_root[4096];
static bool g_have_server, g_quick;

/* ---- the server process ---- */

typedef struct server {
    pid_t pid;
    int port;
    char log[512];
} server;

/* Every server started, so that one a failed test left running is killed at the end. */
static pid_t g_pids[32];
static int g_n_pids;

static void kill_leftovers(void) {
    for (int i = 0; i < g_n_pids; i++)
        if (g_pids[i] > 0 && kill(g_pids[i], 0) == 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
        }
}

/* Starts `llamac serve -m model --port 0 args...` and waits (at most 30 s) for its "listening on" line. */
static bool server_start(server *s, const char *model, const char *const *args) {
    static int k;
    memset(s, 0, sizeof *s);
    snprintf(s->log, sizeof s->log, "%s/server%d.log", g_tmp, k++);
    const char *av[40] = {g_bin, "serve", "-m", model, "--port", "0", "-t", "2"};
    int n = 8;
    for (int i = 0; args && args[i] && n < 38; i++) av[n++] = args[i];
    av[n] = NULL;
    fflush(stdout);
    s->pid = fork();
    if (s->pid == 0) {
        int in = open("/dev/null", O_RDONLY), o = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0) _exit(126);
        dup2(in, 0), dup2(o, 1), dup2(o, 2);
        execv(av[0], (char *const *)av);
        _exit(127);
    }
    if (s->pid > 0 && g_n_pids < 32) g_pids[g_n_pids++] = s->pid;
    for (int i = 0; i < 600 && s->pid > 0; i++) {
        char *log = th_slurp(s->log, NULL);
        const char *p = log ? strstr(log, "listening on http://127.0.0.1:") : NULL;
        if (p) s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
        free(log);
        if (s->port) return true;
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return false;
        }
        usleep(50000);
    }
    return false;
}

/* SIGTERM, then waits at most 20 s (then SIGKILL). Returns the exit code, 128 + signal, or -1. */
static int server_stop(server *s) {
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 400; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(50000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

/* ---- a small HTTP/1.1 client (loopback only; every read bounded by timeouts) ---- */

typedef struct resp {
    int status;
    char *head; /* status line and headers */
    char *body; /* de-chunked */
    size_t body_n;
} resp;

static void resp_free(resp *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int connect_port(int port, int timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *s, size_t n) {
    while (n) {
        const ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) return false;
        s += k, n -= (size_t)k;
    }
    return true;
}

/* Reads until the peer closes (or the timeout); parses status, headers and a chunked body. */
static bool read_resp(int fd, resp *r) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 4096 > cap) buf = realloc(buf, cap *= 2);
        const ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    buf[n] = 0;
    char *eoh = strstr(buf, "\r\n\r\n");
    if (!eoh || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return false;
    }
    r->head = strndup(buf, (size_t)(eoh - buf));
    const char *b = eoh + 4;
    const size_t bn = n - (size_t)(b - buf);
    if (strcasestr(r->head, "transfer-encoding: chunked")) {
        r->body = malloc(bn + 1);
        r->body_n = 0;
        const char *p = b, *end = b + bn;
        while (p < end) {
            char *e;
            const unsigned long len = strtoul(p, &e, 16);
            const char *data = strstr(e, "\r\n");
            if (!data || len == 0) break;
            data += 2;
            if (data + len > end) break;
            memcpy(r->body + r->body_n, data, len);
            r->body_n += len;
            p = data + len + 2;
        }
        r->body[r->body_n] = 0;
    } else {
        r->body = malloc(bn + 1);
        memcpy(r->body, b, bn);
        r->body[bn] = 0;
        r->body_n = bn;
    }
    free(buf);
    return true;
}

/* One request on a fresh connection (Connection: close). auth: NULL sends the test key; "" sends none. */
static bool http(int port, const char *method, const char *path, const char *auth, const char *body, resp *r) {
    memset(r, 0, sizeof *r);
    const int fd = connect_port(port, 60);
    if (fd < 0) return false;
    char head[1024];
    const size_t bn = body ? strlen(body) : 0;
    const char *a = auth ? auth : "Bearer " KEY;
    snprintf(head, sizeof head,
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%sContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             method, path, *a ? "Authorization: " : "", a, *a ? "\r\n" : "", bn);
    const bool ok = send_all(fd, head, strlen(head)) && (!bn || send_all(fd, body, bn)) && read_resp(fd, r);
    close(fd);
    return ok;
}

/* The JSON string value after the n-th occurrence of "key": (escapes decoded); malloc'd, or NULL. */
static char *json_str(const char *s, const char *key, int nth) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = s;
    for (int i = 0; p && i <= nth; i++) {
        p = strstr(p, pat);
        if (p && i < nth) p += strlen(pat);
    }
    if (!p) return NULL;
    p += strlen(pat);
    char *out = malloc(strlen(p) + 1);
    size_t k = 0;
    while (*p && *p != '"') {
        if (*p != '\\') {
            out[k++] = *p++;
            continue;
        }
        p++;
        const char c = *p++;
        if (c == 'n') out[k++] = '\n';
        else if (c == 't') out[k++] = '\t';
        else if (c == 'r') out[k++] = '\r';
        else if (c == 'b') out[k++] = '\b';
        else if (c == 'f') out[k++] = '\f';
        else if (c == 'u') {
            unsigned u = 0;
            sscanf(p, "%4x", &u);
            p += 4;
            if (u >= 0xD800 && u < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = 0;
                sscanf(p + 2, "%4x", &lo);
                p += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (u < 0x80) out[k++] = (char)u;
            else if (u < 0x800) out[k++] = (char)(0xC0 | u >> 6), out[k++] = (char)(0x80 | (u & 63));
            else if (u < 0x10000)
                out[k++] = (char)(0xE0 | u >> 12), out[k++] = (char)(0x80 | ((u >> 6) & 63)), out[k++] = (char)(0x80 | (u & 63));
            else
                out[k++] = (char)(0xF0 | u >> 18), out[k++] = (char)(0x80 | ((u >> 12) & 63)),
                out[k++] = (char)(0x80 | ((u >> 6) & 63)), out[k++] = (char)(0x80 | (u & 63));
        } else out[k++] = c;
    }
    out[k] = 0;
    return out;
}

/* The text of a streamed answer: every "content" (chat) or "text" (completions) of its data: events, joined. */
static char *sse_text(const char *body, const char *key, bool *done) {
    size_t cap = strlen(body) + 1, k = 0;
    char *out = calloc(1, cap);
    *done = strstr(body, "data: [DONE]\n\n") != NULL;
    for (const char *p = strstr(body, "data: {"); p; p = strstr(p + 1, "data: {")) {
        const char *e = strstr(p, "\n\n");
        char *ev = strndup(p, e ? (size_t)(e - p) : strlen(p));
        char *t = json_str(ev, key, 0);
        if (t) memcpy(out + k, t, strlen(t)), k += strlen(t);
        free(t);
        free(ev);
    }
    out[k] = 0;
    return out;
}

/* ---- the reference: the library, greedy, one sequence, one token per decode ---- */

/* lora (may be NULL): an adapter applied with scale lora_scale */
static char *ref_greedy_lora(const int32_t *prompt, int n, int max_tokens, const char *lora, float lora_scale) {
    lc_model *m;
    if (lc_model_load(g_model, NULL, &m)) return NULL;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = 1024, cp.n_threads = 2;
    lc_context *c;
    lc_lora *ad = NULL;
    if (lc_context_new(m, &cp, &c)) {
        lc_model_free(m);
        return NULL;
    }
    if (lora && (lc_lora_load(m, lora, &ad) || lc_context_set_lora(c, &ad, &lora_scale, 1))) {
        lc_context_free(c);
        lc_lora_free(ad);
        lc_model_free(m);
        return NULL;
    }
    lc_batch b = {.n_tokens = n, .token = prompt};
    int r = lc_decode(c, &b), row = n - 1;
    char *text = calloc(1, 65536);
    size_t tn = 0;
    lc_detok d;
    memset(&d, 0, sizeof d); /* a completion continues the prompt's text */
    for (int g = 0; !r && g < max_tokens; g++) {
        const float *l = lc_get_logits(c, row);
        int32_t best = 0;
        for (uint32_t i = 1; i < lc_model_hparams(m)->n_vocab; i++)
            if (l[i] > l[best]) best = (int32_t)i;
        if (lc_token_is_eog(m, best)) break;
        const int k = lc_detok_push(m, &d, best, text + tn, 65536 - tn);
        if (k > 0) tn += (size_t)k;
        lc_batch one = {.n_tokens = 1, .token = &best};
        r = lc_decode(c, &one);
        row = 0;
    }
    const int k = lc_detok_flush(&d, text + tn, 65536 - tn);
    if (k > 0) tn += (size_t)k;
    text[tn] = 0;
    lc_context_free(c);
    lc_lora_free(ad);
    lc_model_free(m);
    return text;
}

static char *ref_greedy(const int32_t *prompt, int n, int max_tokens) {
    return ref_greedy_lora(prompt, n, max_tokens, NULL, 0);
}

static server g_srv; /* the main server: --parallel 16, API key */

/* Starts a server or fails the test with its log. */
#define START(s, model, args)                                                                                      \
    do {                                                                                                           \
        if (!server_start((s), (model), (args))) {                                                                 \
            char *log_ = th_slurp((s)->log, NULL);                                                                    \
            if ((s)->pid > 0) server_stop(s);                                                                      \
            FAILF("the server did not start: %.1500s", log_ ? log_ : "");                                          \
        }                                                                                                          \
    } while (0)

static bool require_tools(void);

/* No server in this build: a skip where that is expected (the ARM64 cross build under qemu), a failure on x86-64 under
** LLAMAC_REQUIRE_ORACLE=1 (make test), where setup installed libmicrohttpd and Jansson. */
#if defined(__x86_64__)
#define SERVER_EXPECTED 1
#else
#define SERVER_EXPECTED 0
#endif
#define NEED_SERVER_BUILD()                                                                                        \
    do {                                                                                                           \
        if (!g_have_server) {                                                                                      \
            if (SERVER_EXPECTED && require_tools()) FAILF("%s has no server (LLAMAC_REQUIRE_ORACLE=1)", g_bin);   \
            SKIP("this build of llamac has no server (or the binary does not run here)");                          \
        }                                                                                                          \
    } while (0)
#define NEED_SERVER()                                                                                              \
    do {                                                                                                           \
        NEED_SERVER_BUILD();                                                                                       \
        if (!g_srv.port) FAILF("the server did not start");                                                        \
    } while (0)

TEST(usage_and_help) {
    NEED_SERVER_BUILD();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' serve >/dev/null 2>&1", g_bin);
    CHECK_EQ_INT(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "'%s' serve --help | grep -q chat/completions", g_bin);
    CHECK_EQ_INT(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "'%s' serve -m %s --port 70000 >/dev/null 2>&1", g_bin, g_model);
    CHECK_EQ_INT(WEXITSTATUS(system(cmd)), 2);
}

TEST(health_models_metrics_and_auth) {
    NEED_SERVER();
    resp r;
    CHECK(http(g_srv.port, "GET", "/health", "", NULL, &r));
    CHECKF(r.status == 200 && strstr(r.body, "\"ok\""), "health: %d %s", r.status, r.body);
    resp_free(&r);
    CHECK(http(g_srv.port, "GET", "/v1/models", NULL, NULL, &r));
    CHECKF(r.status == 200 && strstr(r.body, "\"object\":\"list\"") && strstr(r.body, "serve-test"), "models: %s", r.body);
    resp_free(&r);
    const char *bad_auth[] = {"", "Bearer wrong-key", "Bearer " KEY "x", "Bearer test-key-012345678", "Basic Zm9vOmJhcg=="};
    for (size_t i = 0; i < sizeof bad_auth / sizeof *bad_auth; i++) {
        CHECK(http(g_srv.port, "GET", "/v1/models", bad_auth[i], NULL, &r));
        CHECKF(r.status == 401 && strstr(r.body, "\"type\":\"authentication_error\""), "auth '%s': %d %s", bad_auth[i],
               r.status, r.body);
        resp_free(&r);
    }
    /* the browser's Basic login: any user, the key as password (base64 of "web:test-key-0123456789") */
    CHECK(http(g_srv.port, "GET", "/", "Basic d2ViOnRlc3Qta2V5LTAxMjM0NTY3ODk=", NULL, &r));
    CHECKF(r.status == 200 && strstr(r.body, "<title>llamac chat</title>"), "page: %d", r.status);
    CHECKF(!strstr(r.body, "http://") && !strstr(r.body, "https://"), "the page must not load external assets");
    resp_free(&r);
    CHECK(http(g_srv.port, "GET", "/metrics", NULL, NULL, &r));
    CHECKF(r.status == 200 && strstr(r.body, "# TYPE llamac_generated_tokens_total counter") &&
               strstr(r.body, "llamac_queue_depth ") && strstr(r.body, "llamac_tokens_per_second "),
           "metrics: %.400s", r.body);
    resp_free(&r);
    CHECK(http(g_srv.port, "GET", "/nope", NULL, NULL, &r));
    CHECK_EQ_INT(r.status, 404);
    resp_free(&r);
    CHECK(http(g_srv.port, "GET", "/v1/chat/completions", NULL, NULL, &r));
    CHECK_EQ_INT(r.status, 405);
    resp_free(&r);
}

/* Greedy completions, streamed and not, equal the library's single-sequence greedy run. */
TEST(greedy_completion_equals_the_library) {
    NEED_SERVER();
    const int32_t prompt[] = {1, 300, 301, 72, 101, 108, 108, 111, 44, 32, 119};
    const int n = (int)(sizeof prompt / sizeof *prompt), max_tokens = 24;
    char *want = ref_greedy(prompt, n, max_tokens);
    CHECK(want != NULL);
    char body[1024];
    size_t k = (size_t)snprintf(body, sizeof body, "{\"prompt\": [");
    for (int i = 0; i < n; i++) k += (size_t)snprintf(body + k, sizeof body - k, i ? ",%d" : "%d", (int)prompt[i]);
    snprintf(body + k, sizeof body - k, "], \"max_tokens\": %d, \"temperature\": 0}", max_tokens);
    resp r;
    CHECK(http(g_srv.port, "POST", "/v1/completions", NULL, body, &r));
    char *got = json_str(r.body, "text", 0);
    CHECKF(r.status == 200 && got, "completion: %d %s", r.status, r.body);
    CHECKF(!strcmp(got, want), "server '%s' vs library '%s'", got, want);
    CHECKF(strstr(r.body, "\"prompt_tokens\":11"), "usage: %s", r.body);
    free(got);
    resp_free(&r);
    /* streamed */
    snprintf(body + k, sizeof body - k, "], \"max_tokens\": %d, \"temperature\": 0, \"stream\": true}", max_tokens);
    CHECK(http(g_srv.port, "POST", "/v1/completions", NULL, body, &r));
    bool done;
    got = sse_text(r.body, "text", &done);
    CHECKF(r.status == 200 && done && strstr(r.head, "text/event-stream"), "stream: %d %.300s", r.status, r.body);
    CHECKF(!strcmp(got, want), "streamed '%s' vs library '%s'", got, want);
    free(got);
    free(want);
    resp_free(&r);
    /* logit_bias +100 on one token: the answer is that token again and again */
    CHECK(http(g_srv.port, "POST", "/v1/completions", NULL,
               "{\"prompt\": \"x\", \"max_tokens\": 5, \"temperature\": 0.7, \"logit_bias\": {\"300\": 100}}", &r));
    got = json_str(r.body, "text", 0);
    lc_model *m;
    CHECK_OK(lc_model_load(g_model, NULL, &m));
    char piece[64] = "";
    lc_detok d;
    memset(&d, 0, sizeof d);
    size_t pn = 0;
    for (int i = 0; i < 5; i++) {
        const int k2 = lc_detok_push(m, &d, 300, piece + pn, sizeof piece - pn);
        if (k2 > 0) pn += (size_t)k2;
    }
    lc_model_free(m);
    CHECKF(r.status == 200 && got && !strcmp(got, piece), "logit_bias: '%s', want '%s' (%s)", got ? got : "", piece, r.body);
    free(got);
    resp_free(&r);
}

/* Sends a POST (the key as a bearer token unless NULL) without waiting for the answer. Returns the socket or -1. */
static int open_stream(int port, const char *path, const char *key, const char *body) {
    const int fd = connect_port(port, 30);
    if (fd < 0) return -1;
    char req[4096], auth[256] = "";
    if (key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", key);
    snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
             path, auth, strlen(body), body);
    if (!send_all(fd, req, strlen(req))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads from fd until min bytes came, it closes, or 50 reads (each bounded by the socket's timeout); the count. */
static ssize_t read_at_least(int fd, ssize_t min) {
    char buf[4096];
    ssize_t got = 0;
    for (int i = 0; i < 50 && got < min; i++) {
        const ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) break;
        got += k;
    }
    return got;
}

/* A repeated chat prompt is served from the prompt cache, with the same greedy answer. */
TEST(prompt_cache_reuses_a_repeated_prefix) {
    NEED_SERVER();
    const char *body = "{\"messages\": [{\"role\": \"system\", \"content\": \"You are a test.\"}, {\"role\": \"user\", "
                       "\"content\": \"Say something about caches.\"}], \"max_tokens\": 12, \"temperature\": 0}";
    resp a, b;
    CHECK(http(g_srv.port, "POST", "/v1/chat/completions", NULL, body, &a));
    CHECK(http(g_srv.port, "POST", "/v1/chat/completions", NULL, body, &b));
    CHECKF(a.status == 200 && b.status == 200, "%d %d %s", a.status, b.status, a.body);
    char *ta = json_str(a.body, "content", 0), *tb = json_str(b.body, "content", 0);
    CHECKF(ta && tb && !strcmp(ta, tb), "answers differ: '%s' vs '%s'", ta, tb);
    const char *pt = strstr(b.body, "\"prompt_tokens\":"), *ct = strstr(b.body, "\"cached_tokens\":");
    CHECK(pt && ct);
    const int np = atoi(pt + 16), nc = atoi(ct + 16);
    CHECKF(nc == np - 1, "the second request reused %d of %d prompt tokens (want all but the last)", nc, np);
    free(ta);
    free(tb);
    resp_free(&a);
    resp_free(&b);
}

/* A request whose prompt shares a long prefix (a system prompt) with a request still running copies that prefix's KV
** cells from its slot (lc_kv_copy) instead of decoding them again: its usage reports them as cached. */
TEST(prompt_cache_copies_a_prefix_from_a_busy_slot) {
    NEED_SERVER();
    char sys[1200] = "";
    for (int i = 0; i < 40; i++) /* unique words: no idle slot holds this system prompt */
        snprintf(sys + strlen(sys), sizeof sys - strlen(sys), "copy%d rule%d ", i * 7 + 3, i * 13 + 1);
    char body_a[2048], body_b[2048];
    snprintf(body_a, sizeof body_a,
             "{\"messages\": [{\"role\": \"system\", \"content\": \"%s\"}, {\"role\": \"user\", \"content\": "
             "\"first\"}], \"max_tokens\": 2000, \"stream\": true, \"logit_bias\": {\"2\": -100}}", sys);
    snprintf(body_b, sizeof body_b,
             "{\"messages\": [{\"role\": \"system\", \"content\": \"%s\"}, {\"role\": \"user\", \"content\": "
             "\"second\"}], \"max_tokens\": 3, \"temperature\": 0}", sys);
    const int fd = open_stream(g_srv.port, "/v1/chat/completions", KEY, body_a);
    CHECK(fd >= 0);
    const ssize_t got = read_at_least(fd, 300); /* A is generating: its prompt is in its slot's cache */
    CHECKF(got >= 300, "no stream data (%zd bytes)", got);
    resp b;
    const bool ok = http(g_srv.port, "POST", "/v1/chat/completions", NULL, body_b, &b);
    close(fd);
    CHECK(ok);
    CHECKF(b.status == 200, "%d %s", b.status, b.body);
    const char *pt = strstr(b.body, "\"prompt_tokens\":"), *ct = strstr(b.body, "\"cached_tokens\":");
    CHECK(pt && ct);
    const int np = atoi(pt + 16), nc = atoi(ct + 16);
    CHECKF(np > 40 && nc > np / 2 && nc < np, "the second request reused %d of %d prompt tokens (want the system "
           "prompt's, copied from the running request)", nc, np);
    resp_free(&b);
}

/* ---- bad input ---- */

typedef struct bad_case {
    const char *path, *body;
    int status;
    const char *param; /* the field the error must name ("" : none) */
} bad_case;

TEST(bad_requests_get_4xx_naming_the_field) {
    NEED_SERVER();
    const bad_case cases[] = {
        {"/v1/chat/completions", "{\"messages\": [", 400, ""},
        {"/v1/chat/completions", "not json at all", 400, ""},
        {"/v1/chat/completions", "[1, 2, 3]", 400, "body"},
        {"/v1/chat/completions", "{}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\": \"hi\"}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\": []}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\": [42]}", 400, "messages[0]"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", 400, "messages[0].role"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 7}]}", 400, "messages[0].content"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", 400,
         "messages[0].content[0]"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"mood\": 1}]}", 400,
         "messages[0].mood"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": -5}", 400,
         "max_tokens"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 0}", 400,
         "max_tokens"},
        {"/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 99999999999999999999999}", 400, ""},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 1e300}", 400,
         "max_tokens"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": \"10\"}", 400,
         "max_tokens"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": -1}", 400,
         "temperature"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": 1e308}", 400,
         "temperature"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_p\": 2}", 400, "top_p"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 3}", 400, "n"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 50, "
                                 "\"logprobs\": true}", 400, "top_logprobs"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": [\"a\", \"b\", "
                                 "\"c\", \"d\", \"e\"]}", 400, "stop"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": \"yes\"}", 400,
         "stream"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"frobnicate\": true}", 400,
         "frobnicate"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": "
                                 "\"function\"}]}", 400, "tools[0]"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"seed\": 1.5}", 400, "seed"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"messages\": []}", 400, ""},
        {"/v1/completions", "{\"prompt\": [1, -4]}", 400, "prompt[1]"},
        {"/v1/completions", "{\"prompt\": [1, 999999]}", 400, "prompt[1]"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"logprobs\": 9}", 400, "logprobs"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"echo\": true}", 400, "echo"},
        {"/v1/completions", "{}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"logit_bias\": {\"7\": 500}}", 400, "logit_bias.7"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"logit_bias\": {\"x\": 1}}", 400, "logit_bias.x"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"logit_bias\": {\"100000\": 1}}", 400, "logit_bias.100000"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"logit_bias\": [1]}", 400, "logit_bias"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_case *c = &cases[i];
        resp r;
        CHECKF(http(g_srv.port, "POST", c->path, NULL, c->body, &r), "case %zu: no answer", i);
        CHECKF(r.status == c->status, "case %zu (%s): status %d, want %d: %s", i, c->body, r.status, c->status, r.body);
        CHECKF(strstr(r.head, "application/json") && strstr(r.body, "{\"error\":{\"message\":"),
               "case %zu: not an OpenAI error body: %s", i, r.body);
        if (*c->param) {
            char want[160];
            snprintf(want, sizeof want, "\"param\":\"%s\"", c->param);
            CHECKF(strstr(r.body, want), "case %zu (%s): the error does not name %s: %s", i, c->body, c->param, r.body);
        }
        resp_free(&r);
    }
    /* a prompt longer than the context */
    char *big = malloc(200000);
    size_t k = (size_t)sprintf(big, "{\"prompt\": \"");
    for (int i = 0; i < 6000; i++) k += (size_t)sprintf(big + k, "ab ");
    sprintf(big + k, "\"}");
    resp r;
    CHECK(http(g_srv.port, "POST", "/v1/completions", NULL, big, &r));
    free(big);
    CHECKF(r.status == 400 && strstr(r.body, "context_length_exceeded"), "long prompt: %d %s", r.status, r.body);
    resp_free(&r);
    /* still healthy and serving */
    CHECK(http(g_srv.port, "POST", "/v1/completions", NULL, "{\"prompt\": \"hello\", \"max_tokens\": 3}", &r));
    CHECKF(r.status == 200, "after the bad requests: %d %s", r.status, r.body);
    resp_free(&r);
}

/* 10 MB body: 413 naming the body; the server goes on. */
TEST(huge_body_is_refused) {
    NEED_SERVER();
    const size_t n = 10u << 20;
    char *body = malloc(n + 64);
    memcpy(body, "{\"prompt\": \"", 12);
    memset(body + 12, 'a', n - 14);
    memcpy(body + n - 2, "\"}", 3);
    resp r;
    const bool ok = http(g_srv.port, "POST", "/v1/completions", NULL, body, &r);
    free(body);
    CHECK(ok);
    CHECKF(r.status == 413 && strstr(r.body, "\"param\":\"body\""), "10 MB body: %d %s", r.status, r.body);
    resp_free(&r);
    CHECK(http(g_srv.port, "GET", "/health", "", NULL, &r));
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
}

/* A client that sends half a request and waits does not block others. */
TEST(slow_client_does_not_block_others) {
    NEED_SERVER();
    const int fd = connect_port(g_srv.port, 10);
    CHECK(fd >= 0);
    const char *part = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\nAuthorization: Bea";
    CHECK(send_all(fd, part, strlen(part)));
    const double t0 = lc_time_s();
    resp r;
    CHECK(http(g_srv.port, "POST", "/v1/completions", NULL, "{\"prompt\": \"slow\", \"max_tokens\": 4}", &r));
    CHECKF(r.status == 200, "while a client is slow: %d %s", r.status, r.body);
    CHECKF(lc_time_s() - t0 < 20, "took %.1f s", lc_time_s() - t0);
    resp_free(&r);
    close(fd);
}

static long metric(int port, const char *name) {
    resp r;
    if (!http(port, "GET", "/metrics", "", NULL, &r) || r.status != 200) {
        resp_free(&r);
        if (!http(port, "GET", "/metrics", NULL, NULL, &r)) return -1;
    }
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = strstr(r.body, pat);
    const long v = p ? atol(p + strlen(pat)) : -1;
    resp_free(&r);
    return v;
}

/* A client that leaves mid-stream frees its slot at once (the answer would take far longer). */
TEST(disconnect_mid_stream_frees_the_slot) {
    NEED_SERVER();
    const long before = metric(g_srv.port, "llamac_requests_cancelled_total");
    const char *body = "{\"prompt\": \"Tell me a very long story\", \"max_tokens\": 2000, \"stream\": true, \"logit_bias\": {\"2\": -100}}";
    const int fd = open_stream(g_srv.port, "/v1/completions", KEY, body);
    CHECK(fd >= 0);
    const ssize_t got = read_at_least(fd, 200);
    CHECKF(got >= 200, "no stream data (%zd bytes)", got);
    close(fd);
    long active = -1, cancelled = -1;
    for (int i = 0; i < 100; i++) {
        active = metric(g_srv.port, "llamac_slots_active");
        cancelled = metric(g_srv.port, "llamac_requests_cancelled_total");
        if (active == 0 && cancelled == before + 1) break;
        usleep(50000);
    }
    CHECKF(active == 0 && cancelled == before + 1, "after the disconnect: %ld active, %ld cancelled (was %ld)", active,
           cancelled, before);
}

/* ---- the npm clients ---- */

static bool require_tools(void) {
    const char *e = getenv("LLAMAC_REQUIRE_ORACLE");
    return e && !strcmp(e, "1");
}

/* Runs node SCRIPT PORT KEY [args]; output into a log. Returns the exit status (or -1: node or modules missing). */
static int run_node(const char *script, const char *extra, char *log, size_t cap) {
    char mods[8192];
    snprintf(mods, sizeof mods, "%s/.oracle/serve-npm/node_modules", g_root);
    struct stat st;
    if (system("node --version >/dev/null 2>&1") != 0 || stat(mods, &st) != 0) return -1;
    char cmd[16384];
    snprintf(log, cap, "%s/node.log", g_tmp);
    snprintf(cmd, sizeof cmd, "cd '%s' && NODE_PATH='%s' timeout 240 node tests/serve/%s %d '%s' %s >'%s' 2>&1", g_root,
             mods, script, g_srv.port, KEY, extra ? extra : "", log);
    const int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

#define RUN_NODE(script, extra, what)                                                                              \
    do {                                                                                                           \
        char log_[512];                                                                                            \
        const int rc_ = run_node(script, extra, log_, sizeof log_);                                                \
        if (rc_ == -1) {                                                                                           \
            if (require_tools()) FAILF("node or .oracle/serve-npm missing (LLAMAC_REQUIRE_ORACLE=1): run scripts/setup.sh"); \
            SKIP("node or .oracle/serve-npm (the openai and playwright-core packages) missing: run scripts/setup.sh"); \
        }                                                                                                          \
        char *out_ = th_slurp(log_, NULL);                                                                            \
        if (rc_ == 3 && !require_tools()) {                                                                        \
            SKIP("%s: %.300s", what, out_ ? out_ : "");                                                            \
        }                                                                                                          \
        CHECKF(rc_ == 0, "%s failed (exit %d):\n%.3000s", what, rc_, out_ ? out_ : "");                            \
        if (out_) printf("%s", out_);                                                                              \
        free(out_);                                                                                                \
    } while (0)

TEST(openai_client_stream_tools_logprobs_and_16_concurrent) {
    NEED_SERVER();
    RUN_NODE("openai.mjs", g_quick ? "quick" : "", "the OpenAI npm client checks");
}

TEST(chat_page_in_headless_chromium) {
    NEED_SERVER();
    if (access("/usr/bin/chromium", X_OK) != 0) {
        if (require_tools()) FAILF("/usr/bin/chromium missing (LLAMAC_REQUIRE_ORACLE=1): run scripts/setup.sh");
        SKIP("/usr/bin/chromium missing: run scripts/setup.sh");
    }
    RUN_NODE("page.mjs", "", "the chat page in Chromium");
}

/* ---- a model that calls a tool ----
** A random model rewritten so that its greedy answer to any prompt is a Llama 3.1 custom tool call: the call's text
** is cut into chunks that replace printable vocabulary pieces of the same byte length (distinct ids c1..ck); every
** other token gets one shared embedding d; the layers' output projections are zeroed, so the last hidden state is
** the current token's embedding; output rows make d -> c1, c_i -> c_i+1 and c_k -> </s> by a wide margin. The
** server's tool-call parsing, its OpenAI shapes and the client's parsing of them are then checked end to end. */
#define CALL_TEXT "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Paris\"}}"

static bool patch_f32(int fd, const lc_model *m, const char *name, uint64_t row, const float *v, uint64_t n) {
    for (size_t i = 0; i < lc_model_tensor_count(m); i++) {
        lc_tensor_info ti;
        if (lc_model_tensor_get(m, i, &ti) || strcmp(ti.name, name)) continue;
        if (ti.type != LC_TYPE_F32 || (row + 1) * n * 4 > ti.n_bytes) return false;
        return pwrite(fd, v, n * 4, (off_t)(ti.offset + row * n * 4)) == (ssize_t)(n * 4);
    }
    return false;
}

static bool make_tool_model(const char *path) {
    lc_synth_params p = lc_synth_default_params();
    p.n_vocab = 2048, p.name = "serve-test";
    if (lc_synth_write(path, &p)) return false;
    lc_model *m;
    if (lc_model_load(path, NULL, &m)) return false;
    const uint32_t n_embd = lc_model_hparams(m)->n_embd, n_vocab = lc_model_hparams(m)->n_vocab;
    /* the chunks: 2 bytes each where that chunk is no piece yet, else 3, 4, 5 or 1 (pieces must stay unique) */
    const char *text = CALL_TEXT;
    int32_t chain[64];
    char chunks[64][8];
    int k = 0;
    bool used[2048] = {0};
    for (size_t i = 0; text[i] && k < 64;) {
        int got = 0;
        const size_t lens[5] = {2, 3, 4, 5, 1};
        for (int li = 0; li < 5 && !got; li++) {
            const size_t L = lens[li];
            if (strlen(text + i) < L) continue;
            bool dup = false;
            for (int j = 0; j < k; j++) dup |= strlen(chunks[j]) == L && !memcmp(chunks[j], text + i, L);
            for (uint32_t id = 0; id < n_vocab && !dup; id++) {
                const char *pc = lc_token_piece(m, id);
                dup = pc && strlen(pc) == L && !memcmp(pc, text + i, L);
            }
            if (dup) continue;
            for (uint32_t id = 300; id < n_vocab && !got; id++) { /* a piece of that length, not yet taken */
                const char *pc = lc_token_piece(m, id);
                if (used[id] || !pc || strlen(pc) != L) continue;
                used[id] = true, chain[k] = (int32_t)id;
                memcpy(chunks[k], text + i, L), chunks[k][L] = 0;
                got = 1, k++, i += L;
            }
        }
        if (!got) return lc_model_free(m), false;
    }
    const int fd = open(path, O_RDWR);
    bool ok = fd >= 0;
    /* the pieces, in the tokenizer.ggml.tokens array (each a u64 length and its bytes) */
    size_t fn = 0;
    char *file = th_slurp(path, &fn);
    const char *key = file ? memmem(file, fn, "tokenizer.ggml.tokens", 21) : NULL;
    for (int j = 0; ok && j < k; j++) {
        const char *pc = lc_token_piece(m, chain[j]);
        char pat[16] = {0};
        pat[0] = (char)strlen(pc);
        memcpy(pat + 8, pc, strlen(pc));
        const char *at = key ? memmem(key, fn - (size_t)(key - file), pat, 8 + strlen(pc)) : NULL;
        ok = at && pwrite(fd, chunks[j], strlen(pc), (off_t)(at + 8 - file)) == (ssize_t)strlen(pc);
    }
    free(file);
    /* the weights */
    float *zero = calloc((size_t)n_embd * 4 * 8, sizeof(float)), *d = malloc(sizeof(float) * n_embd),
          *e = malloc(sizeof(float) * n_embd), *row = malloc(sizeof(float) * n_embd), *ones = malloc(sizeof(float) * n_embd);
    uint64_t rng = 12345;
    for (uint32_t i = 0; i < n_embd; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        d[i] = ((float)(rng >> 40) / (float)(1u << 24)) * 2 - 1;
        ones[i] = 1;
    }
    const float alpha = 30;
    for (uint32_t t = 0; ok && t < n_vocab; t++) {
        bool in_chain = false;
        for (int j = 0; j < k; j++) in_chain |= chain[j] == (int32_t)t;
        if (!in_chain) ok = patch_f32(fd, m, "token_embd.weight", t, d, n_embd);
    }
    const lc_hparams *hp = lc_model_hparams(m);
    for (uint32_t l = 0; ok && l < hp->n_layer; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%u.attn_output.weight", l);
        for (uint32_t r = 0; ok && r < n_embd; r++) ok = patch_f32(fd, m, name, r, zero, (uint64_t)hp->n_head * hp->head_dim);
        snprintf(name, sizeof name, "blk.%u.ffn_down.weight", l);
        for (uint32_t r = 0; ok && r < n_embd; r++) ok = patch_f32(fd, m, name, r, zero, hp->n_ff);
    }
    ok = ok && patch_f32(fd, m, "output_norm.weight", 0, ones, n_embd);
    /* output rows: (alpha / n) * x / rms(x) for the token x that precedes each */
    for (int j = 0; ok && j <= k; j++) {
        const float *src = d;
        if (j > 0) {
            ok = pread(fd, e, sizeof(float) * n_embd, 0) >= 0; /* read c_{j-1}'s embedding from the model */
            lc_tensor_info ti = {0};
            for (size_t i = 0; i < lc_model_tensor_count(m); i++)
                if (!lc_model_tensor_get(m, i, &ti) && !strcmp(ti.name, "token_embd.weight")) break;
            ok = ok && pread(fd, e, sizeof(float) * n_embd, (off_t)(ti.offset + (uint64_t)chain[j - 1] * n_embd * 4)) ==
                           (ssize_t)(sizeof(float) * n_embd);
            src = e;
        }
        double ss = 0;
        for (uint32_t i = 0; i < n_embd; i++) ss += (double)src[i] * src[i];
        const float inv = 1.0f / sqrtf((float)(ss / n_embd));
        for (uint32_t i = 0; i < n_embd; i++) row[i] = alpha / (float)n_embd * src[i] * inv;
        ok = ok && patch_f32(fd, m, "output.weight", j < k ? (uint64_t)chain[j] : 2, row, n_embd);
    }
    if (fd >= 0) close(fd);
    free(zero), free(d), free(e), free(row), free(ones);
    lc_model_free(m);
    return ok;
}

TEST(tool_calls_reach_the_client) {
    NEED_SERVER_BUILD();
    char path[512];
    snprintf(path, sizeof path, "%s/tools.gguf", g_tmp);
    CHECK(make_tool_model(path));
    /* the model does what it was made for: its greedy completion is the call's text */
    server s;
    char tpl[1024];
    const char *sd = th_shared_dir();
    snprintf(tpl, sizeof tpl, "%s/chat/llama3_1.chat_template.jinja", sd ? sd : "/nonexistent");
    const bool llama31 = access(tpl, R_OK) == 0; /* the official template: tool results go back too */
    const char *args[] = {"--api-key", KEY, llama31 ? "--chat-template-file" : NULL, tpl, NULL};
    START(&s, path, args);
    resp r;
    CHECK(http(s.port, "POST", "/v1/completions", NULL, "{\"prompt\": \"x\", \"max_tokens\": 64, \"temperature\": 0}", &r));
    char *t = json_str(r.body, "text", 0);
    CHECKF(t && !strcmp(t, CALL_TEXT) && strstr(r.body, "\"finish_reason\":\"stop\""), "the tool model says: %s", r.body);
    free(t);
    resp_free(&r);
    const int port = g_srv.port;
    g_srv.port = s.port;
    char log[512];
    const int rc = run_node("openai.mjs", llama31 ? "tools llama31" : "tools", log, sizeof log);
    g_srv.port = port;
    char *out = rc >= 0 ? th_slurp(log, NULL) : NULL;
    server_stop(&s);
    if (rc == -1) {
        if (require_tools()) FAILF("node or .oracle/serve-npm missing (LLAMAC_REQUIRE_ORACLE=1): run scripts/setup.sh");
        SKIP("node or .oracle/serve-npm missing: run scripts/setup.sh");
    }
    CHECKF(rc == 0, "tool checks failed (exit %d):\n%.3000s", rc, out ? out : "");
    if (out) printf("%s", out);
    free(out);
}

/* The 16 concurrent streams on a trained model (stories260K from the shared data). */
TEST(concurrent_streams_on_a_trained_model) {
    NEED_SERVER_BUILD();
    char paths[1][1024];
    const char *sd = th_shared_dir();
    int n = 0;
    if (sd) snprintf(paths[n++], sizeof paths[0], "%s/stories260K/stories260K.gguf", sd);
    if (!n) SKIP("../shared/data/stories260K is not here");
    for (int i = 0; i < n; i++) {
        server s;
        const char *args[] = {"--parallel", "16", "-c", "4096", "--api-key", KEY, "--alias", "serve-test", "-q", NULL};
        START(&s, paths[i], args);
        const int port = g_srv.port;
        g_srv.port = s.port;
        char log[512];
        const int rc = run_node("openai.mjs", g_quick ? "concurrent quick" : "concurrent", log, sizeof log);
        g_srv.port = port;
        char *out = rc >= 0 ? th_slurp(log, NULL) : NULL;
        const int st = server_stop(&s);
        if (rc == -1) {
            if (require_tools()) FAILF("node or .oracle/serve-npm missing (LLAMAC_REQUIRE_ORACLE=1): run scripts/setup.sh");
            SKIP("node or .oracle/serve-npm missing: run scripts/setup.sh");
        }
        CHECKF(rc == 0, "%s: %.3000s", paths[i], out ? out : "");
        printf("    %s:\n%s", strrchr(paths[i], '/') + 1, out ? out : "");
        free(out);
        CHECK_EQ_INT(st, 0);
    }
}

/* ---- queue and shutdown (their own servers) ---- */

TEST(full_queue_answers_503_with_retry_after) {
    NEED_SERVER_BUILD();
    server s;
    const char *args[] = {"--parallel", "1", "--queue", "1", "-c", "16384", NULL};
    START(&s, g_model, args);
    const char *body = "{\"prompt\": \"long\", \"max_tokens\": 16000, \"stream\": true, \"logit_bias\": {\"2\": -100}}";
    const int a = open_stream(s.port, "/v1/completions", NULL, body);
    usleep(100000);
    const int b = open_stream(s.port, "/v1/completions", NULL, body);
    bool ready = false; /* one request in the slot, one queued (a busy machine may take a while) */
    for (int i = 0; i < 400 && !ready; i++)
        if (!(ready = metric(s.port, "llamac_queue_depth") == 1 && metric(s.port, "llamac_slots_active") == 1)) usleep(50000);
    resp r;
    const bool ok = http(s.port, "POST", "/v1/completions", "", body, &r);
    close(a);
    close(b);
    const int st = server_stop(&s);
    CHECKF(ready, "the first request did not start or the second was not queued within 20 s");
    CHECKF(ok && r.status == 503 && strcasestr(r.head, "Retry-After:"), "third request: %d %s", r.status, r.head);
    CHECKF(strstr(r.body, "queue_full"), "%s", r.body);
    resp_free(&r);
    CHECK_EQ_INT(st, 0);
}

TEST(sigterm_lets_a_running_stream_finish) {
    NEED_SERVER_BUILD();
    server s;
    START(&s, g_model, NULL);
    const int fd = open_stream(s.port, "/v1/completions", NULL, "{\"prompt\": \"drain\", \"max_tokens\": 60, \"stream\": true, \"temperature\": 0, "
                                       "\"logit_bias\": {\"2\": -100}}");
    CHECK(fd >= 0);
    char buf[256];
    const ssize_t k = recv(fd, buf, sizeof buf, MSG_PEEK); /* the stream has begun */
    CHECKF(k > 0, "no answer");
    kill(s.pid, SIGTERM);
    resp r;
    CHECK(read_resp(fd, &r));
    close(fd);
    bool done;
    char *t = sse_text(r.body, "text", &done);
    free(t);
    CHECKF(r.status == 200 && done && strstr(r.body, "\"finish_reason\":\"length\""), "drained stream: %.500s", r.body);
    resp_free(&r);
    int st = 0;
    for (int i = 0; i < 200 && waitpid(s.pid, &st, WNOHANG) != s.pid; i++) usleep(50000);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    s.pid = 0;
    CHECKF(connect_port(s.port, 2) < 0, "the port still accepts connections");
}

/* ---- main ---- */

/* --lora FILE --lora-scale S: every request decodes through the adapter, as the library does with it; a missing
** adapter or one for another model stops the server at start with a message naming the file. */
static char *serve_greedy(int port, const int32_t *prompt, int n, int max_tokens) {
    char body[1024];
    size_t k = (size_t)snprintf(body, sizeof body, "{\"prompt\": [");
    for (int i = 0; i < n; i++) k += (size_t)snprintf(body + k, sizeof body - k, i ? ",%d" : "%d", (int)prompt[i]);
    snprintf(body + k, sizeof body - k, "], \"max_tokens\": %d, \"temperature\": 0}", max_tokens);
    resp r;
    if (!http(port, "POST", "/v1/completions", NULL, body, &r)) return NULL;
    char *got = r.status == 200 ? json_str(r.body, "text", 0) : NULL;
    resp_free(&r);
    return got;
}

TEST(lora_adapter_applies_to_every_request) {
    NEED_SERVER_BUILD();
    char ad[600], other[600], other_ad[600];
    snprintf(ad, sizeof ad, "%s/serve-lora.gguf", g_tmp);
    CHECKF(write_adapter(ad, g_model, "qkvogudx", 4, 8.0f, 0.2f, 0) == 0, "write the adapter: %s", lc_last_error());
    const int32_t prompt[] = {1, 300, 301, 72, 101, 108, 108, 111, 44, 32, 119};
    const int n = (int)(sizeof prompt / sizeof *prompt), max_tokens = 16;
    char *base = ref_greedy(prompt, n, max_tokens);
    const float scales[] = {1.0f, 0.5f, 0.0f};
    for (int si = 0; si < 3; si++) {
        char *want = ref_greedy_lora(prompt, n, max_tokens, ad, scales[si]);
        CHECK(base && want);
        if (scales[si] == 0) CHECKF(!strcmp(want, base), "scale 0 must be the base model");
        if (scales[si] == 1) CHECKF(strcmp(want, base), "the adapter does not change the greedy text; make it larger");
        char sc[32];
        snprintf(sc, sizeof sc, "%g", (double)scales[si]);
        const char *args[] = {"--parallel", "2", "-c", "1024", "--lora", ad, "--lora-scale", sc, NULL};
        server s;
        START(&s, g_model, args);
        char *log = th_slurp(s.log, NULL);
        CHECKF(log && strstr(log, "LoRA adapter"), "the start-up log names the adapter: %.600s", log ? log : "");
        free(log);
        /* two requests at once: both through the adapter */
        char *got = serve_greedy(s.port, prompt, n, max_tokens);
        CHECKF(got && !strcmp(got, want), "scale %s: server '%s' vs library '%s'", sc, got ? got : "(none)", want);
        free(got);
        CHECK_EQ_INT(server_stop(&s), 0);
        free(want);
    }
    free(base);
    /* errors at start: a missing file; an adapter written for another model's shapes */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' serve -m %s --port 0 --lora %s/nope.gguf 2>&1 | grep -q 'nope.gguf'", g_bin, g_model, g_tmp);
    CHECKF(system(cmd) == 0, "a missing adapter is named");
    snprintf(other, sizeof other, "%s/serve-other.gguf", g_tmp);
    lc_synth_params p = lc_synth_default_params();
    p.n_embd *= 2, p.n_ff *= 2; /* other shapes */
    CHECKF(lc_synth_write(other, &p) == 0, "%s", lc_last_error());
    snprintf(other_ad, sizeof other_ad, "%s/serve-other-lora.gguf", g_tmp);
    CHECK(write_adapter(other_ad, other, "qv", 2, 0, 0.1f, 0) == 0);
    snprintf(cmd, sizeof cmd, "'%s' serve -m %s --port 0 --lora %s 2>&1; echo \"exit $?\"", g_bin, g_model, other_ad);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    char out[4096] = "";
    size_t on = fread(out, 1, sizeof out - 1, f);
    out[on] = 0;
    pclose(f);
    CHECKF(strstr(out, "serve-other-lora.gguf") && strstr(out, "exit 1"), "an adapter of another shape: %s", out);
    snprintf(cmd, sizeof cmd, "'%s' serve -m %s --lora-scale 2 2>&1 | grep -q 'comes after'", g_bin, g_model);
    CHECKF(system(cmd) == 0, "--lora-scale before any --lora is a usage error");
}

int main(int argc, char **argv) {
    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    g_quick = getenv("LLAMAC_QUICK") && !strcmp(getenv("LLAMAC_QUICK"), "1");
    th_find_bin(g_bin, sizeof g_bin, argv[0]);
    if (!getcwd(g_root, sizeof g_root)) snprintf(g_root, sizeof g_root, ".");
    snprintf(g_tmp, sizeof g_tmp, "/tmp/llamac-serve-XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    /* a server build: `serve --help` runs and does not say it has none */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' serve --help 2>&1 | grep -q 'chat/completions' && ! '%s' serve -m x 2>&1 | grep -q 'no server'",
             g_bin, g_bin);
    g_have_server = access(g_bin, X_OK) == 0 && system(cmd) == 0;
    snprintf(g_model, sizeof g_model, "%s/serve.gguf", g_tmp);
    lc_synth_params p = lc_synth_default_params();
    p.name = "serve-test";
    if (lc_synth_write(g_model, &p)) {
        printf("  FAIL  cannot write a model: %s\n", lc_last_error());
        return 1;
    }
    if (g_have_server) {
        const char *args[] = {"--parallel", "16", "-c", "4096", "--api-key", KEY, "--alias", "serve-test", NULL};
        if (!server_start(&g_srv, g_model, args)) {
            char *log = th_slurp(g_srv.log, NULL);
            printf("  (the server did not start: %.1000s)\n", log ? log : "");
            free(log);
        }
    }
    RUN(usage_and_help);
    RUN(health_models_metrics_and_auth);
    RUN(greedy_completion_equals_the_library);
    RUN(prompt_cache_reuses_a_repeated_prefix);
    RUN(prompt_cache_copies_a_prefix_from_a_busy_slot);
    RUN(bad_requests_get_4xx_naming_the_field);
    RUN(huge_body_is_refused);
    RUN(slow_client_does_not_block_others);
    RUN(disconnect_mid_stream_frees_the_slot);
    RUN(openai_client_stream_tools_logprobs_and_16_concurrent);
    RUN(chat_page_in_headless_chromium);
    RUN(tool_calls_reach_the_client);
    RUN(concurrent_streams_on_a_trained_model);
    RUN(lora_adapter_applies_to_every_request);
    /* the main server must still be healthy after everything, then stop cleanly */
    if (g_srv.pid > 0) {
        resp r;
        const bool ok = http(g_srv.port, "GET", "/health", "", NULL, &r);
        if (!ok || r.status != 200) printf("  FAIL  server unhealthy at the end\n"), th_failed++;
        resp_free(&r);
        const int st = server_stop(&g_srv);
        if (st != 0) printf("  FAIL  the server exited %d after SIGTERM\n", st), th_failed++;
    }
    RUN(full_queue_answers_503_with_retry_after);
    RUN(sigterm_lets_a_running_stream_finish);
    kill_leftovers();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd)) {}
    return TEST_SUMMARY();
}
