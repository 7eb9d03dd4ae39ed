/* server.h - `llamac serve`: an OpenAI-compatible HTTP server (libmicrohttpd, Jansson) over libllamac.
**
** Three parts: schema.c turns a JSON request body into a checked srv_params (every field range-checked; a bad field
** gives a 4xx error in OpenAI's shape naming it) and builds the JSON answers; sched.c is the one thread that owns the
** model's context and runs continuous batching over N slots (one KV-cache sequence each); http.c holds the routes,
** authentication, limits, the metrics and the process's life (SIGTERM drains). HTTP threads only parse, render the
** chat template, tokenize and queue; they never touch the context. Front end code: only include/llamac.h.
*/
#ifndef LLAMAC_SERVER_H
#define LLAMAC_SERVER_H

#include "llamac.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- options (cmd_serve.c fills them) ---- */
typedef struct srv_options {
    const char *model_path;
    bool use_mmap;         /* map the weights (lc_model_params.use_mmap) */
    const char *host;      /* "127.0.0.1" */
    int port;              /* 0: any free port (printed) */
    int n_parallel;        /* slots: sequences decoded together */
    int n_ctx;             /* KV cache cells shared by the slots (0: the model's, at most 4096) */
    int n_threads;         /* <= 0: all cores */
    int n_batch;           /* tokens per decode step at most */
    int n_chunk;           /* prompt tokens per step while other slots generate */
    int queue_max;         /* requests waiting for a slot before 503 */
    int kv_type;           /* LC_TYPE_F16 / LC_TYPE_F32 */
    const char *api_key;   /* NULL: no authentication */
    size_t max_body;       /* bytes of a request body */
    size_t max_messages;   /* messages of a chat request */
    int max_tokens;        /* cap on max_tokens (0: the context size) */
    int timeout_s;         /* idle connection timeout */
    int max_connections;
    const char *model_name;/* the id /v1/models shows (NULL: the file's base name) */
    const char *template_src; /* a Jinja chat template instead of the model's (NULL: the model's) */
    size_t template_len;
    const char *template_name;
    bool quiet;            /* no request log on stderr */
    const char *const *lora_files; /* LoRA adapters applied to every request (n_lora of them) */
    const float *lora_scales;
    int n_lora;
} srv_options;

/* Runs the server until SIGTERM/SIGINT, then drains. Returns an exit code (0, 1). */
int srv_run(const srv_options *o);

/* ---- requests (schema.c) ---- */
enum { SRV_CHAT = 0, SRV_COMPLETION = 1 };
#define SRV_MAX_STOP 4
#define SRV_MAX_TOP_LOGPROBS 20
#define SRV_MAX_LOGIT_BIAS 1024

/* A 4xx/5xx answer: status, message, the offending field (param, "" when none), OpenAI's type and code. */
typedef struct srv_error {
    int status;
    char message[600];
    char param[96];
    const char *type; /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *code; /* NULL, or e.g. "context_length_exceeded" */
} srv_error;

typedef struct srv_limits {
    size_t max_messages;
    int64_t max_tokens;   /* largest max_tokens accepted */
    size_t max_stop_len;  /* bytes of one stop string */
} srv_limits;

/* What a request asks for, checked. Strings owned (srv_params_free). */
typedef struct srv_params {
    int kind;              /* SRV_CHAT, SRV_COMPLETION */
    bool stream, include_usage;
    int64_t max_tokens;    /* -1: until the end of the answer or the context */
    double temperature, top_p;
    bool has_seed;
    uint64_t seed;
    bool logprobs;         /* chat: logprobs = true; completions: logprobs = N given */
    int top_logprobs;
    char *stop[SRV_MAX_STOP];
    size_t n_stop;
    char *model;           /* as the client named it, or NULL */
    int32_t *bias_ids;     /* logit_bias: token ids (not yet checked against the vocabulary) and their biases */
    float *bias;
    size_t n_bias;
    /* chat */
    char *messages_json;   /* normalized message list (compact JSON) for the template */
    char *tools_json;      /* tool list for the template, or NULL (none, or tool_choice "none") */
    /* completions */
    char *prompt;          /* prompt text (NUL-terminated), or NULL when given as ids */
    size_t prompt_len;
    int32_t *prompt_ids;   /* prompt given as token ids */
    size_t n_prompt_ids;
} srv_params;

/* Parses and checks a request body (kind SRV_CHAT or SRV_COMPLETION). 0, or -1 with *err filled (status 400). */
int srv_parse_request(int kind, const char *body, size_t n, const srv_limits *lim, srv_params *out, srv_error *err);
void srv_params_free(srv_params *p);
/* Fills *e (printf-style message). */
void srv_error_set(srv_error *e, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* OpenAI's error body {"error": {"message", "type", "param", "code"}}; malloc'd. */
char *srv_error_json(const srv_error *e);
/* Appends s[0..k) to the growing buffer *buf (*n bytes used of *cap), keeping it NUL-terminated. false: no memory. */
bool srv_buf_append(char **buf, size_t *n, size_t *cap, const char *s, size_t k);
/* s[0..n) with invalid UTF-8 bytes replaced by U+FFFD, NUL-terminated; malloc'd (*out_n its length). */
char *srv_utf8_clean(const char *s, size_t n, size_t *out_n);

/* ---- the scheduler (sched.c) ---- */
/* One request on its way: created by an HTTP thread, queued, served by the scheduler, released by both. The out
** buffer is what the HTTP side sends: SSE events while streaming, or the whole JSON body when done. */
typedef struct srv_req {
    srv_params p;
    int32_t *prompt;       /* tokens (owned) */
    int32_t n_prompt;
    char id[48];
    int64_t created;
    char model_name[128];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *out;
    size_t out_n, out_cap, out_off;
    bool done;             /* out holds everything there will be */
    bool cancelled;        /* the client went away: the slot is freed at the next step */
    int refs;
    double t_queued;
} srv_req;

typedef struct srv_sched srv_sched;

typedef struct srv_stats {
    uint64_t requests, prompt_tokens, generated_tokens, cached_tokens, steps, cancelled;
    int queue_depth, active, n_slots, n_ctx, kv_used;
    double tokens_per_s;   /* generated tokens per second over the last few seconds */
    double busy_s;         /* time spent in decode steps */
} srv_stats;

int srv_sched_new(lc_model *m, const srv_options *o, srv_sched **out);
/* Queues r (takes a reference). 0; -1 when the queue is full (503), -2 while draining. */
int srv_sched_submit(srv_sched *s, srv_req *r);
/* Marks r cancelled (the client disconnected); its slot is freed at the next step. */
void srv_req_cancel(srv_req *r);
srv_req *srv_req_new(void);
void srv_req_release(srv_req *r);
void srv_sched_stats(srv_sched *s, srv_stats *st);
/* Refuses new requests, waits (at most timeout_s) until every queued and running request has finished, then stops
** the thread. */
void srv_sched_drain(srv_sched *s, double timeout_s);
void srv_sched_free(srv_sched *s);
int32_t srv_sched_n_ctx(const srv_sched *s);

/* ---- the web page (page.c) ---- */
extern const char srv_page_html[];
size_t srv_page_len(void);

#endif /* LLAMAC_SERVER_H */
