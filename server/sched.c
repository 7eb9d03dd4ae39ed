/* sched.c - the scheduler: the one thread that owns the context and serves every request by continuous batching.
**
** N slots, one KV-cache sequence each. Every step builds one batch: one row per generating slot (its last sampled
** token), then prompt tokens of the slots still reading their prompt, at most n_chunk of them while anything
** generates (so a long prompt never stalls the streams for long) and n_batch otherwise; one lc_decode; then each
** slot whose row gave logits samples its next token and writes what it produced into its request's out buffer.
** Queued requests take free slots between steps. A free slot keeps its tokens in the cache: a new request goes to
** the free slot sharing the longest prefix with its prompt, copies in a longer prefix that another slot holds
** (lc_kv_copy), and decodes only the rest (the prompt cache); idle caches are evicted, least recently used first,
** when the cells are needed. A request whose client left is dropped at the next step. Invariant:
** slot->cache[0..n_cache) are exactly the tokens of sequence slot->seq in the KV cache.
*/
#include "server.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PYTHON_TAG "<|python_tag|>"
#define OUT_MAX (16u << 20) /* unread output of one request before it counts as a stuck client */

enum { S_IDLE = 0, S_PREFILL, S_GEN };

typedef struct slot {
    int32_t seq;
    int state;
    srv_req *req;
    int32_t *cache, n_cache;
    int32_t n_reused;
    lc_sampler *smp;
    lc_detok detok;
    lc_toolcall_parser *parser; /* made on the first request with tools, kept */
    lc_toolcall_parser *tp;     /* parser when this request has tools, else NULL */
    int32_t next, row;
    int64_t n_gen;
    uint64_t last_used;
    char *held;        /* shown text not yet sent (could begin a stop string) */
    size_t held_n, held_cap;
    char *content;     /* non-streaming: the answer's text */
    size_t content_n, content_cap;
    size_t text_off;   /* completions: bytes of text so far (logprobs' text_offset) */
    json_t *lp;        /* logprobs not yet sent: chat: [entries]; completions: {tokens, token_logprobs, ...} */
    bool sent_role;
    bool stop_hit;     /* a stop string ended the text: nothing more is shown */
} slot;

struct srv_sched {
    lc_model *m;
    lc_context *c;
    lc_lora **lora; /* the adapters set on c (o.n_lora), freed after it */
    srv_options o;
    int32_t n_ctx, n_vocab;
    slot *slots;
    int n_slots;
    /* the queue and the shared counters, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_req **queue;
    int q_head, q_n;
    bool draining, stop, abort_all;
    srv_stats st;
    pthread_t thread;
    bool started;
    /* batch arrays (n_batch) */
    int32_t *b_tok, *b_pos, *b_seq;
    int8_t *b_logits;
    uint64_t tick;
    float *biased;     /* n_vocab: logits with a request's logit_bias added */
    /* tokens/s: generated tokens per second over the last seconds */
    int64_t sec_bucket[8];
    uint64_t sec_count[8];
};

/* ---- requests ---- */

srv_req *srv_req_new(void) {
    srv_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    return r;
}

void srv_req_release(srv_req *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    const int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left) return;
    srv_params_free(&r->p);
    free(r->prompt);
    free(r->out);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void srv_req_cancel(srv_req *r) {
    pthread_mutex_lock(&r->mu);
    r->cancelled = true;
    pthread_mutex_unlock(&r->mu);
}

/* Appends bytes for the HTTP side; done marks the end. A client that reads nothing for OUT_MAX bytes is cancelled. */
static void req_put(srv_req *r, const char *s, size_t n, bool done) {
    pthread_mutex_lock(&r->mu);
    if (r->out_off == r->out_n) r->out_off = r->out_n = 0;
    if (r->out_n - r->out_off > OUT_MAX || !srv_buf_append(&r->out, &r->out_n, &r->out_cap, s, n)) r->cancelled = true;
    if (done) r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static bool req_cancelled(srv_req *r) {
    pthread_mutex_lock(&r->mu);
    const bool c = r->cancelled;
    pthread_mutex_unlock(&r->mu);
    return c;
}

/* ---- output formatting ---- */

static json_t *jstr(const char *s, size_t n) {
    char *c = srv_utf8_clean(s, n, &n);
    json_t *v = c ? json_stringn(c, n) : NULL;
    free(c);
    return v ? v : json_string("");
}

static void put_json(srv_req *r, json_t *v, bool sse, bool done) {
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!s) {
        req_put(r, "", 0, done);
        return;
    }
    if (sse) {
        const size_t n = strlen(s);
        char *e = malloc(n + 9);
        if (e) {
            memcpy(e, "data: ", 6);
            memcpy(e + 6, s, n);
            memcpy(e + 6 + n, "\n\n", 3);
            req_put(r, e, n + 8, done);
            free(e);
        }
    } else {
        req_put(r, s, strlen(s), done);
    }
    free(s);
}

static json_t *envelope(const srv_req *r, bool chunk) {
    const bool chat = r->p.kind == SRV_CHAT;
    return json_pack("{sssssIsss[]}", "id", r->id, "object",
                     chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion", "created",
                     (json_int_t)r->created, "model", r->model_name, "choices");
}

static json_t *usage(const slot *sl) {
    const srv_req *r = sl->req;
    return json_pack("{sIsIsIs{sI}}", "prompt_tokens", (json_int_t)r->n_prompt, "completion_tokens", (json_int_t)sl->n_gen,
                     "total_tokens", (json_int_t)(r->n_prompt + sl->n_gen), "prompt_tokens_details", "cached_tokens",
                     (json_int_t)sl->n_reused);
}

static json_t *lp_new(int kind) {
    if (kind == SRV_CHAT) return json_array();
    return json_pack("{s[]s[]s[]s[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

/* The logprobs member of a choice (takes the pending entries). */
static json_t *lp_take(slot *sl) {
    if (!sl->req->p.logprobs) return json_null();
    json_t *v = sl->lp;
    sl->lp = lp_new(sl->req->p.kind);
    if (sl->req->p.kind == SRV_CHAT) return json_pack("{so}", "content", v);
    return v;
}

/* A streamed chunk with text (and the pending logprobs). */
static void send_chunk(slot *sl, const char *text, size_t n) {
    srv_req *r = sl->req;
    json_t *env = envelope(r, true), *choice;
    if (r->p.kind == SRV_CHAT) {
        json_t *delta = json_object();
        if (!sl->sent_role) json_object_set_new(delta, "role", json_string("assistant")), sl->sent_role = true;
        json_object_set_new(delta, "content", jstr(text, n));
        choice = json_pack("{sIsososn}", "index", (json_int_t)0, "delta", delta, "logprobs", lp_take(sl),
                           "finish_reason");
    } else {
        choice = json_pack("{sIsososn}", "index", (json_int_t)0, "text", jstr(text, n), "logprobs", lp_take(sl),
                           "finish_reason");
    }
    json_array_append_new(json_object_get(env, "choices"), choice);
    put_json(r, env, true, false);
}

/* Text the answer shows, after the stop strings: sent (streaming) or kept (not). */
static void emit(slot *sl, const char *s, size_t n) {
    if (!n && !(sl->req->p.logprobs && json_array_size(sl->req->p.kind == SRV_CHAT ? sl->lp : json_object_get(sl->lp, "tokens"))))
        return;
    if (sl->req->p.stream) {
        send_chunk(sl, s, n);
    } else {
        srv_buf_append(&sl->content, &sl->content_n, &sl->content_cap, s, n);
    }
}

/* Bytes of s[0..n) that end on a whole UTF-8 character. */
static size_t utf8_whole(const char *s, size_t n) {
    size_t k = n, back = 0;
    while (k > 0 && back < 4 && ((unsigned char)s[k - 1] & 0xC0) == 0x80) k--, back++;
    if (k == 0) return n;
    const unsigned char c = (unsigned char)s[k - 1];
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back + 1 && need <= 4 ? k - 1 : n;
}

/* Adds shown text: sends what can no longer be the start of a stop string; true when a stop string was found. */
static bool add_text(slot *sl, const char *s, size_t n, bool final) {
    if (sl->stop_hit) return true;
    if (!srv_buf_append(&sl->held, &sl->held_n, &sl->held_cap, s, n)) return false;
    const srv_params *p = &sl->req->p;
    size_t cut = sl->held_n, keep = 0;
    bool stopped = false;
    for (size_t i = 0; i < p->n_stop; i++) {
        const size_t sn = strlen(p->stop[i]);
        const char *f = memmem(sl->held, sl->held_n, p->stop[i], sn);
        if (f && (size_t)(f - sl->held) < cut) cut = (size_t)(f - sl->held), stopped = true;
    }
    size_t send = cut;
    if (!stopped && !final) {
        for (size_t i = 0; i < p->n_stop; i++) { /* the longest tail that begins a stop string stays held */
            const size_t sn = strlen(p->stop[i]);
            for (size_t k = sn - 1; k > keep; k--)
                if (k <= sl->held_n && !memcmp(sl->held + sl->held_n - k, p->stop[i], k)) {
                    keep = k;
                    break;
                }
        }
        send = utf8_whole(sl->held, sl->held_n - keep);
    }
    emit(sl, sl->held, send);
    if (stopped) {
        sl->held_n = 0;
        sl->stop_hit = true;
        return true;
    }
    memmove(sl->held, sl->held + send, sl->held_n - send);
    sl->held_n -= send;
    return false;
}

/* ---- logprobs ---- */

static json_t *token_json(const lc_model *m, int32_t id, const char *key_tok) {
    char buf[1024];
    int n = lc_tokenizer_token_bytes(lc_model_tokenizer(m), id, buf, sizeof buf);
    if (n < 0) n = 0;
    json_t *bytes = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(bytes, json_integer((unsigned char)buf[i]));
    return json_pack("{sosfso}", key_tok, jstr(buf, (size_t)n), "logprob", 0.0, "bytes", bytes);
}

/* Records the log-probability of id (and the top k) under logits. */
static void add_logprob(srv_sched *s, slot *sl, const float *logits, int32_t id) {
    const int V = s->n_vocab, k = sl->req->p.top_logprobs;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    const double lse = mx + log(sum);
    int top[SRV_MAX_TOP_LOGPROBS];
    int nt = 0;
    for (int i = 0; i < V && k > 0; i++) { /* insertion into the k best (ties: the lower id first) */
        if (nt == k && logits[i] <= logits[top[nt - 1]]) continue;
        int j = nt < k ? nt++ : nt - 1;
        while (j > 0 && logits[top[j - 1]] < logits[i]) top[j] = top[j - 1], j--;
        top[j] = i;
    }
    const double lp = (double)logits[id] - lse;
    const lc_model *m = s->m;
    char buf[1024];
    int bn = lc_tokenizer_token_bytes(lc_model_tokenizer(m), id, buf, sizeof buf);
    if (bn < 0) bn = 0;
    if (sl->req->p.kind == SRV_CHAT) {
        json_t *e = token_json(m, id, "token");
        json_object_set_new(e, "logprob", json_real(lp));
        json_t *tl = json_array();
        for (int i = 0; i < nt; i++) {
            json_t *t = token_json(m, top[i], "token");
            json_object_set_new(t, "logprob", json_real((double)logits[top[i]] - lse));
            json_array_append_new(tl, t);
        }
        json_object_set_new(e, "top_logprobs", tl);
        json_array_append_new(sl->lp, e);
    } else {
        json_array_append_new(json_object_get(sl->lp, "tokens"), jstr(buf, (size_t)bn));
        json_array_append_new(json_object_get(sl->lp, "token_logprobs"), json_real(lp));
        json_t *tl = json_object();
        for (int i = 0; i < nt; i++) {
            char tb[1024];
            int tn = lc_tokenizer_token_bytes(lc_model_tokenizer(m), top[i], tb, sizeof tb - 1);
            if (tn < 0) tn = 0;
            char *c = srv_utf8_clean(tb, (size_t)tn, NULL);
            if (c && !json_object_get(tl, c)) json_object_set_new(tl, c, json_real((double)logits[top[i]] - lse));
            free(c);
        }
        json_array_append_new(json_object_get(sl->lp, "top_logprobs"), tl);
        json_array_append_new(json_object_get(sl->lp, "text_offset"), json_integer((json_int_t)sl->text_off));
    }
}

/* ---- the end of an answer ---- */

static json_t *calls_json(const slot *sl, const lc_tool_call *calls, size_t n, bool indexed) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char id[80];
        const char *dash = strchr(sl->req->id, '-');
        snprintf(id, sizeof id, "call_%s_%zu", dash ? dash + 1 : sl->req->id, i);
        json_t *c = json_pack("{sssss{soso}}", "id", id, "type", "function", "function", "name",
                              jstr(calls[i].name, strlen(calls[i].name)), "arguments",
                              jstr(calls[i].arguments, strlen(calls[i].arguments)));
        if (indexed) json_object_set_new(c, "index", json_integer((json_int_t)i));
        json_array_append_new(a, c);
    }
    return a;
}

static void slot_release(srv_sched *s, slot *sl) {
    srv_req_release(sl->req);
    sl->req = NULL;
    sl->state = S_IDLE;
    sl->last_used = ++s->tick;
    json_decref(sl->lp);
    sl->lp = NULL;
    sl->held_n = sl->content_n = 0;
    pthread_mutex_lock(&s->mu);
    s->st.active--;
    pthread_mutex_unlock(&s->mu);
}

/* Finishes the answer: the rest of the text, the calls, the finish reason, usage; then frees the slot. */
static void finish(srv_sched *s, slot *sl, const char *why) {
    srv_req *r = sl->req;
    const lc_tool_call *calls = NULL;
    size_t n_calls = 0;
    char tail[64];
    const int k = lc_detok_flush(&sl->detok, tail, sizeof tail);
    bool stopped = sl->stop_hit; /* a stop string ended the text (and any call in it) */
    if (!stopped && sl->tp) {
        const char *show;
        size_t sn;
        if (k > 0 && !lc_toolcall_feed(sl->tp, tail, (size_t)k, &show, &sn)) stopped = add_text(sl, show, sn, false);
        if (!stopped && !lc_toolcall_finish(sl->tp, &show, &sn, &calls, &n_calls)) stopped = add_text(sl, show, sn, true);
    } else if (k > 0) {
        stopped = add_text(sl, tail, (size_t)k, true);
    }
    if (!stopped) add_text(sl, "", 0, true);
    if (stopped && !strcmp(why, "length")) why = "stop";
    if (n_calls && strcmp(why, "length")) why = "tool_calls";
    const bool chat = r->p.kind == SRV_CHAT;
    if (r->p.stream) {
        json_t *env = envelope(r, true), *choice;
        if (chat) {
            json_t *delta = json_object();
            if (!sl->sent_role) json_object_set_new(delta, "role", json_string("assistant")), sl->sent_role = true;
            if (n_calls) json_object_set_new(delta, "tool_calls", calls_json(sl, calls, n_calls, true));
            choice = json_pack("{sIsososs}", "index", (json_int_t)0, "delta", delta, "logprobs", lp_take(sl),
                               "finish_reason", why);
        } else {
            choice = json_pack("{sIsssoss}", "index", (json_int_t)0, "text", "", "logprobs", lp_take(sl),
                               "finish_reason", why);
        }
        json_array_append_new(json_object_get(env, "choices"), choice);
        put_json(r, env, true, false);
        if (r->p.include_usage) {
            json_t *u = envelope(r, true);
            json_object_set_new(u, "usage", usage(sl));
            put_json(r, u, true, false);
        }
        req_put(r, "data: [DONE]\n\n", 14, true);
    } else {
        json_t *env = envelope(r, false), *choice;
        json_t *text = jstr(sl->content ? sl->content : "", sl->content_n);
        if (chat) {
            json_t *msg = json_pack("{ssso}", "role", "assistant", "content", text);
            if (n_calls) {
                json_object_set_new(msg, "tool_calls", calls_json(sl, calls, n_calls, false));
                if (!sl->content_n) json_object_set_new(msg, "content", json_null());
            }
            json_object_set_new(msg, "refusal", json_null());
            choice = json_pack("{sIsososs}", "index", (json_int_t)0, "message", msg, "logprobs", lp_take(sl),
                               "finish_reason", why);
        } else {
            choice = json_pack("{sIsososs}", "index", (json_int_t)0, "text", text, "logprobs", lp_take(sl),
                               "finish_reason", why);
        }
        json_array_append_new(json_object_get(env, "choices"), choice);
        json_object_set_new(env, "usage", usage(sl));
        put_json(r, env, false, true);
    }
    pthread_mutex_lock(&s->mu);
    s->st.requests++;
    pthread_mutex_unlock(&s->mu);
    if (!s->o.quiet)
        fprintf(stderr, "llamac serve: %s: slot %d, prompt %d tokens (%d cached), %lld generated, %s, %.2f s\n", r->id,
                (int)sl->seq, (int)r->n_prompt, (int)sl->n_reused, (long long)sl->n_gen, why, lc_time_s() - r->t_queued);
    slot_release(s, sl);
}

/* ---- one generated token ---- */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Samples from the slot's logits row; the text goes out; decides whether the answer goes on. */
static void on_logits(srv_sched *s, slot *sl) {
    const float *logits = lc_get_logits(s->c, sl->row);
    sl->row = -1;
    if (!logits) {
        finish(s, sl, "stop");
        return;
    }
    const srv_params *rp = &sl->req->p;
    if (rp->n_bias) { /* logit_bias: sampled (and logprobs computed) from the biased logits */
        memcpy(s->biased, logits, sizeof(float) * (size_t)s->n_vocab);
        for (size_t i = 0; i < rp->n_bias; i++) s->biased[rp->bias_ids[i]] += rp->bias[i];
        logits = s->biased;
    }
    const int32_t id = lc_sampler_sample(sl->smp, logits);
    lc_sampler_accept(sl->smp, id);
    if (lc_token_is_eog(s->m, id)) {
        finish(s, sl, "stop");
        return;
    }
    if (sl->req->p.logprobs) add_logprob(s, sl, logits, id);
    sl->n_gen++;
    pthread_mutex_lock(&s->mu);
    s->st.generated_tokens++;
    const int64_t sec = (int64_t)lc_time_s();
    if (s->sec_bucket[sec & 7] != sec) s->sec_bucket[sec & 7] = sec, s->sec_count[sec & 7] = 0;
    s->sec_count[sec & 7]++;
    pthread_mutex_unlock(&s->mu);
    /* the token's text */
    char piece[1024];
    const char *text = piece;
    int n;
    const lc_tokenizer *tok = lc_model_tokenizer(s->m);
    const char *cp = tok && lc_tokenizer_is_control(tok, id) ? lc_token_piece(s->m, id) : NULL;
    if (sl->tp && cp && !strcmp(cp, PYTHON_TAG)) text = PYTHON_TAG, n = (int)strlen(PYTHON_TAG);
    else n = lc_detok_push(s->m, &sl->detok, id, piece, sizeof piece);
    if (n < 0) n = 0;
    sl->text_off += (size_t)n;
    bool stopped;
    if (sl->tp) {
        const char *show;
        size_t sn = 0;
        stopped = !lc_toolcall_feed(sl->tp, text, (size_t)n, &show, &sn) && add_text(sl, show, sn, false);
        if (!stopped && lc_toolcall_end_marker(sl->tp)) {
            finish(s, sl, "stop");
            return;
        }
    } else {
        stopped = add_text(sl, text, (size_t)n, false);
    }
    if (stopped) {
        finish(s, sl, "stop");
        return;
    }
    const srv_params *p = &sl->req->p;
    if ((p->max_tokens >= 0 && sl->n_gen >= p->max_tokens) || sl->n_cache >= s->n_ctx) {
        finish(s, sl, "length");
        return;
    }
    sl->next = id;
    sl->state = S_GEN;
}

/* ---- slots and the queue ---- */

static int32_t kv_used(const srv_sched *s);

static int32_t common_prefix(const slot *sl, const srv_req *r) {
    int32_t k = 0;
    while (k < sl->n_cache && k < r->n_prompt && sl->cache[k] == r->prompt[k]) k++;
    return k;
}

/* Puts r on the free slot sharing the longest prefix with its prompt (ties: least recently used). */
static void admit(srv_sched *s, srv_req *r) {
    slot *best = NULL;
    int32_t best_k = -1;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != S_IDLE) continue;
        const int32_t k = common_prefix(sl, r);
        if (k > best_k || (k == best_k && sl->last_used < best->last_used)) best = sl, best_k = k;
    }
    int32_t k = best_k < r->n_prompt ? best_k : r->n_prompt - 1; /* the last prompt token is decoded for its logits */
    lc_kv_remove(s->c, best->seq, k, -1);
    best->n_cache = k;
    /* A longer prefix in another slot, busy or not (users' requests share system prompts and templates; requests
    ** arriving together find no idle slot holding it), is copied into this one rather than decoded again. */
    const slot *src = NULL;
    int32_t src_k = k;
    for (int i = 0; i < s->n_slots; i++) {
        const slot *sl = &s->slots[i];
        int32_t n = sl == best ? 0 : common_prefix(sl, r);
        if (n > r->n_prompt - 1) n = r->n_prompt - 1;
        if (n > src_k) src = sl, src_k = n;
    }
    if (src && s->n_ctx - kv_used(s) >= src_k - k && lc_kv_copy(s->c, src->seq, best->seq, k, src_k) == src_k - k) {
        memcpy(best->cache + k, r->prompt + k, sizeof(int32_t) * (size_t)(src_k - k));
        best->n_cache = k = src_k;
    }
    best->n_reused = k;
    best->req = r;
    best->state = S_PREFILL;
    best->n_gen = 0;
    best->row = -1;
    best->sent_role = false;
    best->held_n = best->content_n = best->text_off = 0;
    best->lp = lp_new(r->p.kind);
    best->stop_hit = false;
    if (r->p.kind == SRV_CHAT) lc_detok_init(&best->detok, false); /* an answer is a text of its own */
    else memset(&best->detok, 0, sizeof best->detok);               /* a completion continues the prompt's text */
    lc_sampler_free(best->smp);
    best->smp = NULL;
    lc_sampler_params sp = lc_sampler_default_params();
    sp.temp = (float)r->p.temperature;
    sp.top_p = (float)r->p.top_p;
    sp.top_k = 0, sp.min_p = 0, sp.repeat_penalty = 1.0f;
    sp.seed = r->p.has_seed ? r->p.seed : mix64((uint64_t)(lc_time_s() * 1e9) ^ (uint64_t)(uintptr_t)r);
    if (r->p.tools_json && !best->parser && lc_toolcall_parser_new(&best->parser)) best->parser = NULL;
    best->tp = r->p.tools_json ? best->parser : NULL;
    if (best->tp) lc_toolcall_reset(best->tp);
    pthread_mutex_lock(&s->mu);
    s->st.active++;
    pthread_mutex_unlock(&s->mu);
    if (lc_sampler_new(&sp, s->n_vocab, &best->smp)) {
        finish(s, best, "stop");
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->st.cached_tokens += (uint64_t)k;
    s->st.prompt_tokens += (uint64_t)r->n_prompt;
    pthread_mutex_unlock(&s->mu);
}

static int32_t kv_used(const srv_sched *s) {
    int32_t n = 0;
    for (int i = 0; i < s->n_slots; i++) n += s->slots[i].n_cache;
    return n;
}

/* Frees the cache of the least recently used idle slot; false when none holds anything. */
static bool evict_one(srv_sched *s) {
    slot *v = NULL;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state == S_IDLE && sl->n_cache && (!v || sl->last_used < v->last_used)) v = sl;
    }
    if (!v) return false;
    lc_kv_remove(s->c, v->seq, 0, -1);
    v->n_cache = 0;
    return true;
}

/* One step: cancellations, one batch, one decode, the tokens. Returns false when there was nothing to do. */
static bool step(srv_sched *s) {
    pthread_mutex_lock(&s->mu);
    const bool abort_all = s->abort_all;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != S_IDLE && (abort_all || req_cancelled(sl->req))) {
            pthread_mutex_lock(&s->mu);
            s->st.cancelled++;
            pthread_mutex_unlock(&s->mu);
            req_put(sl->req, "", 0, true);
            slot_release(s, sl);
        }
    }
    const int32_t cap = (int32_t)s->o.n_batch;
    int32_t n = 0, n_gen = 0;
    for (int i = 0; i < s->n_slots; i++) n_gen += s->slots[i].state == S_GEN;
    /* room in the cache: idle caches go first; then the longest generating answers end */
    while (kv_used(s) + n_gen > s->n_ctx && evict_one(s)) {}
    while (kv_used(s) + n_gen > s->n_ctx) {
        slot *longest = NULL;
        for (int i = 0; i < s->n_slots; i++)
            if (s->slots[i].state == S_GEN && (!longest || s->slots[i].n_cache > longest->n_cache)) longest = &s->slots[i];
        finish(s, longest, "length");
        n_gen--;
    }
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != S_GEN) continue;
        s->b_tok[n] = sl->next, s->b_pos[n] = sl->n_cache, s->b_seq[n] = sl->seq, s->b_logits[n] = 1;
        sl->cache[sl->n_cache++] = sl->next;
        sl->row = n++;
    }
    int32_t budget = n_gen ? s->o.n_chunk : cap;
    if (budget > cap - n) budget = cap - n;
    /* prompts, the oldest request first */
    for (;;) {
        slot *pick = NULL;
        for (int i = 0; i < s->n_slots; i++) {
            slot *sl = &s->slots[i];
            if (sl->state == S_PREFILL && sl->row < 0 && (!pick || sl->req->t_queued < pick->req->t_queued)) pick = sl;
        }
        if (!pick || budget <= 0) break;
        int32_t want = pick->req->n_prompt - pick->n_cache;
        if (want > budget) want = budget;
        int32_t room = s->n_ctx - kv_used(s);
        while (room < want && evict_one(s)) room = s->n_ctx - kv_used(s);
        if (want > room) want = room;
        if (want <= 0) {
            if (n == 0) finish(s, pick, "length"); /* nothing else can run: the cache is held by prompts */
            break;
        }
        for (int32_t j = 0; j < want; j++) {
            const int32_t pos = pick->n_cache;
            s->b_tok[n] = pick->req->prompt[pos], s->b_pos[n] = pos, s->b_seq[n] = pick->seq;
            s->b_logits[n] = pos == pick->req->n_prompt - 1;
            pick->cache[pick->n_cache++] = s->b_tok[n];
            if (s->b_logits[n]) pick->row = n;
            n++;
        }
        budget -= want;
        if (pick->row < 0) pick->row = -2; /* took part this step; not done reading */
    }
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].row == -2) s->slots[i].row = -1;
    if (n == 0) return false;
    const lc_batch b = {.n_tokens = n, .token = s->b_tok, .pos = s->b_pos, .seq_id = s->b_seq, .logits = s->b_logits};
    const double t0 = lc_time_s();
    const int r = lc_decode(s->c, &b);
    const double dt = lc_time_s() - t0;
    pthread_mutex_lock(&s->mu);
    s->st.steps++;
    s->st.busy_s += dt;
    pthread_mutex_unlock(&s->mu);
    if (r) { /* should not happen (the batch was checked): every slot in it ends, its sequence forgotten */
        fprintf(stderr, "llamac serve: decode failed: %s\n", lc_last_error());
        for (int i = 0; i < s->n_slots; i++) {
            slot *sl = &s->slots[i];
            bool in = false;
            for (int32_t j = 0; j < n && !in; j++) in = s->b_seq[j] == sl->seq;
            if (!in) continue;
            lc_kv_remove(s->c, sl->seq, 0, -1);
            sl->n_cache = 0;
            if (sl->state != S_IDLE) finish(s, sl, "length");
        }
        return true;
    }
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != S_IDLE && sl->row >= 0) on_logits(s, sl);
    }
    return true;
}

static void *sched_main(void *arg) {
    srv_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        for (;;) {
            bool free_slot = false;
            for (int i = 0; i < s->n_slots && !free_slot; i++) free_slot = s->slots[i].state == S_IDLE;
            if (!free_slot || !s->q_n) break;
            srv_req *r = s->queue[s->q_head];
            s->q_head = (s->q_head + 1) % s->o.queue_max;
            s->q_n--;
            s->st.queue_depth = s->q_n;
            pthread_mutex_unlock(&s->mu);
            if (req_cancelled(r)) {
                req_put(r, "", 0, true);
                srv_req_release(r);
                pthread_mutex_lock(&s->mu);
                s->st.cancelled++;
            } else {
                admit(s, r);
                pthread_mutex_lock(&s->mu);
            }
        }
        const bool idle = s->st.active == 0;
        if (idle && s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (idle) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
        pthread_mutex_lock(&s->mu);
        s->st.kv_used = kv_used(s);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ---- lifecycle ---- */

/* frees the context, then the adapters it used */
static void sched_free_context(srv_sched *s) {
    lc_context_free(s->c);
    s->c = NULL;
    for (int i = 0; s->lora && i < s->o.n_lora; i++) lc_lora_free(s->lora[i]);
    free(s->lora);
    s->lora = NULL;
}

int srv_sched_new(lc_model *m, const srv_options *o, srv_sched **out) {
    *out = NULL;
    srv_sched *s = calloc(1, sizeof *s);
    if (!s) return LC_E_NOMEM;
    s->m = m;
    s->o = *o;
    s->n_slots = o->n_parallel;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)o->n_ctx;
    cp.n_batch = (uint32_t)o->n_batch;
    cp.n_seq_max = (uint32_t)o->n_parallel;
    cp.n_threads = o->n_threads;
    cp.kv_type = o->kv_type;
    int r = lc_context_new(m, &cp, &s->c);
    if (r) {
        free(s);
        return r;
    }
    if (o->n_lora > 0) { /* every slot decodes through the adapters: they are the context's */
        if (!(s->lora = calloc((size_t)o->n_lora, sizeof *s->lora))) r = LC_E_NOMEM;
        for (int i = 0; !r && i < o->n_lora; i++) r = lc_lora_load(m, o->lora_files[i], &s->lora[i]);
        if (!r) r = lc_context_set_lora(s->c, s->lora, o->lora_scales, (size_t)o->n_lora);
        if (r) {
            sched_free_context(s);
            free(s);
            return r;
        }
    }
    s->n_ctx = (int32_t)lc_context_n_ctx(s->c);
    if (s->o.n_batch > s->n_ctx) s->o.n_batch = s->n_ctx;
    if (s->o.n_chunk > s->o.n_batch) s->o.n_chunk = s->o.n_batch;
    s->n_vocab = (int32_t)lc_model_hparams(m)->n_vocab;
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->queue = calloc((size_t)o->queue_max, sizeof *s->queue);
    s->b_tok = malloc(sizeof(int32_t) * (size_t)s->o.n_batch);
    s->b_pos = malloc(sizeof(int32_t) * (size_t)s->o.n_batch);
    s->b_seq = malloc(sizeof(int32_t) * (size_t)s->o.n_batch);
    s->b_logits = malloc((size_t)s->o.n_batch);
    s->biased = malloc(sizeof(float) * (size_t)s->n_vocab);
    bool ok = s->slots && s->queue && s->b_tok && s->b_pos && s->b_seq && s->b_logits && s->biased;
    for (int i = 0; ok && i < s->n_slots; i++) {
        s->slots[i].seq = i;
        s->slots[i].row = -1;
        ok = (s->slots[i].cache = malloc(sizeof(int32_t) * (size_t)s->n_ctx)) != NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->st.n_slots = s->n_slots;
    s->st.n_ctx = s->n_ctx;
    /* the scheduler runs the model's first thread share, and the kernels keep up to ~72 KiB of tiles on the stack:
    ** 8 MiB as glibc's default, stated so that a libc with a small default (musl: 128 KiB) gives the same */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)8 << 20);
    if (ok && pthread_create(&s->thread, &attr, sched_main, s) == 0) s->started = true;
    pthread_attr_destroy(&attr);
    if (!s->started) {
        srv_sched_free(s);
        return LC_E_NOMEM;
    }
    *out = s;
    return 0;
}

int32_t srv_sched_n_ctx(const srv_sched *s) { return s->n_ctx; }

int srv_sched_submit(srv_sched *s, srv_req *r) {
    pthread_mutex_lock(&s->mu);
    int st = 0;
    if (s->draining) st = -2;
    else if (s->q_n >= s->o.queue_max) st = -1;
    if (!st) {
        pthread_mutex_lock(&r->mu);
        r->refs++;
        pthread_mutex_unlock(&r->mu);
        r->t_queued = lc_time_s();
        s->queue[(s->q_head + s->q_n) % s->o.queue_max] = r;
        s->q_n++;
        s->st.queue_depth = s->q_n;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

void srv_sched_stats(srv_sched *s, srv_stats *st) {
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    const int64_t now = (int64_t)lc_time_s();
    uint64_t sum = 0;
    for (int64_t sec = now - 5; sec < now; sec++) /* the last 5 whole seconds */
        if (s->sec_bucket[sec & 7] == sec) sum += s->sec_count[sec & 7];
    st->tokens_per_s = (double)sum / 5.0;
    pthread_mutex_unlock(&s->mu);
}

void srv_sched_drain(srv_sched *s, double timeout_s) {
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    pthread_mutex_unlock(&s->mu);
    const double t0 = lc_time_s();
    for (;;) {
        pthread_mutex_lock(&s->mu);
        const bool busy = s->q_n || s->st.active;
        if (!busy || lc_time_s() - t0 > timeout_s) {
            for (int i = 0; busy && i < s->q_n; i++) srv_req_cancel(s->queue[(s->q_head + i) % s->o.queue_max]);
            s->abort_all = busy; /* the slots belong to the thread: it drops their requests */
            s->stop = true;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        pthread_mutex_unlock(&s->mu);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (s->started) pthread_join(s->thread, NULL);
    s->started = false;
}

void srv_sched_free(srv_sched *s) {
    if (!s) return;
    if (s->started) srv_sched_drain(s, 0);
    for (int i = 0; s->slots && i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->req) srv_req_release(sl->req);
        free(sl->cache);
        free(sl->held);
        free(sl->content);
        json_decref(sl->lp);
        lc_sampler_free(sl->smp);
        lc_toolcall_parser_free(sl->parser);
    }
    for (int i = 0; s->queue && i < s->q_n; i++) srv_req_release(s->queue[(s->q_head + i) % s->o.queue_max]);
    free(s->slots);
    free(s->queue);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_logits);
    free(s->biased);
    sched_free_context(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
