/* test_chat.c - `llamac chat` driven through stdin (no terminal), on a model generated here and on stories260K.
**
** KV-cache reuse: with greedy sampling, a multi-turn session that keeps the cache (decoding only each turn's new
** tokens) gives exactly the answers of the same session with --no-reuse (the whole conversation processed again every
** turn), and from the second turn on it reuses cached tokens (its --verbose report says how many). /save and /load:
** a session loaded from a saved conversation answers the next message exactly as the original session did. A
** conversation too long for the context is refused with a message and the session goes on. Usage errors exit 2.
*/
#include "harness.h"
#include "llamac.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_bin[1024], g_dir[64];

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    if (b) b[n] = 0;
    return b;
}

/* Runs `llamac chat -m model ARGS` with input on stdin; stdout and stderr into *out / *err; returns the exit code. */
static int chat(const char *model, const char *args, const char *input, char **out, char **err) {
    char in[128], o[128], e[128], cmd[2048];
    snprintf(in, sizeof in, "%s/in", g_dir);
    snprintf(o, sizeof o, "%s/out", g_dir);
    snprintf(e, sizeof e, "%s/err", g_dir);
    FILE *f = fopen(in, "w");
    if (!f) return -1;
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s chat -m %s -t 2 --temp 0 %s < %s > %s 2> %s", g_bin, model, args, in, o, e);
    const int st = system(cmd);
    *out = slurp(o);
    *err = slurp(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *models[2];
static int n_models;

TEST(kv_reuse_gives_the_answers_of_full_reprocessing) {
    if (!g_bin[0]) SKIP("the llamac binary does not run here");
    const char *script = "Hello there\nWhat is your name?\nTell me about the sea\n";
    for (int i = 0; i < n_models; i++) {
        char *o1, *e1, *o2, *e2;
        const int r1 = chat(models[i], "-n 12 --verbose", script, &o1, &e1);
        const int r2 = chat(models[i], "-n 12 --no-reuse", script, &o2, &e2);
        const bool same = o1 && o2 && !strcmp(o1, o2);
        int reused2 = -1, prompt2 = -1, decoded2 = -1;
        const char *t2 = e1 ? strstr(e1, "[turn 2: prompt ") : NULL;
        if (t2) sscanf(t2, "[turn 2: prompt %d tokens, %d reused, %d decoded", &prompt2, &reused2, &decoded2);
        printf("        %s: turn 2 prompt %d tokens, %d reused from the cache, %d decoded\n", models[i], prompt2, reused2,
               decoded2);
        char msg[600];
        snprintf(msg, sizeof msg, "%s: exit %d/%d, answers %s\nreuse: %.200s\nfull:  %.200s", models[i], r1, r2,
                 same ? "equal" : "DIFFER", o1 ? o1 : "", o2 ? o2 : "");
        free(o1), free(e1), free(o2), free(e2);
        CHECKF(r1 == 0 && r2 == 0 && same, "%s", msg);
        CHECKF(reused2 > 0 && decoded2 == prompt2 - reused2, "turn 2 should reuse the cached first turn: %d reused, %d decoded of %d",
               reused2, decoded2, prompt2);
    }
}

TEST(save_and_load_continue_the_conversation) {
    if (!g_bin[0]) SKIP("the llamac binary does not run here");
    char path[128], script[512];
    snprintf(path, sizeof path, "%s/conv.json", g_dir);
    snprintf(script, sizeof script, "Hi\nHow are you?\n/save %s\nAnd then?\n", path);
    char *o1, *e1, *o2, *e2;
    const int r1 = chat(models[0], "-n 10 --system 'Be brief.'", script, &o1, &e1);
    snprintf(script, sizeof script, "/load %s\nAnd then?\n", path);
    const int r2 = chat(models[0], "-n 10", script, &o2, &e2);
    char *saved = slurp(path);
    /* the third answer of session 1 is its last line; session 2's only answer */
    const char *last1 = NULL;
    if (o1) {
        size_t n = strlen(o1);
        while (n && o1[n - 1] == '\n') o1[--n] = 0;
        last1 = strrchr(o1, '\n');
        last1 = last1 ? last1 + 1 : o1;
    }
    if (o2) {
        size_t n = strlen(o2);
        while (n && o2[n - 1] == '\n') o2[--n] = 0;
    }
    const bool ok = r1 == 0 && r2 == 0 && last1 && o2 && !strcmp(last1, o2) && saved && strstr(saved, "\"Be brief.\"") &&
                    strstr(saved, "\"How are you?\"");
    char msg[800];
    snprintf(msg, sizeof msg, "exit %d/%d\nsession 1 last answer: %.200s\nafter /load:          %.200s\nsaved: %.300s", r1,
             r2, last1 ? last1 : "", o2 ? o2 : "", saved ? saved : "(none)");
    free(o1), free(e1), free(o2), free(e2), free(saved);
    CHECKF(ok, "%s", msg);
}

TEST(a_full_context_is_refused_and_the_session_goes_on) {
    if (!g_bin[0]) SKIP("the llamac binary does not run here");
    char long_msg[4000] = "";
    for (int i = 0; i < 300; i++) strcat(long_msg, "word ");
    char script[4200];
    snprintf(script, sizeof script, "%s\nHi\n", long_msg);
    char *o, *e;
    const int r = chat(models[0], "-c 64 -n 4", script, &o, &e);
    const bool said = e && strstr(e, "context holds 64");
    const bool answered = o && strlen(o) > 0;
    char msg[400];
    snprintf(msg, sizeof msg, "exit %d, stderr: %.300s", r, e ? e : "");
    free(o), free(e);
    CHECKF(r == 0 && said && answered, "%s", msg);
}

TEST(usage_errors) {
    if (!g_bin[0]) SKIP("the llamac binary does not run here");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s chat < /dev/null > /dev/null 2>&1", g_bin);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(cmd, sizeof cmd, "%s/bad.jinja", g_dir);
    FILE *f = fopen(cmd, "w");
    CHECK(f);
    fputs("{% if %}", f);
    fclose(f);
    char *o, *e, args[200];
    snprintf(args, sizeof args, "--template %s", cmd);
    const int r = chat(models[0], args, "Hi\n", &o, &e);
    const bool named = e && strstr(e, "bad.jinja:1:");
    free(o), free(e);
    CHECKF(r == 1 && named, "a broken template should exit 1 naming the file and line (exit %d)", r);
}

int main(int argc, char **argv) {
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    if (slash) snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv[0]), argv[0]);
    snprintf(g_dir, sizeof g_dir, "/tmp/llamac-test-chat-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s --version > /dev/null 2>&1", g_bin);
    if (!g_bin[0] || system(cmd) != 0) g_bin[0] = 0;
    static char synth[128], stories[1024];
    snprintf(synth, sizeof synth, "%s/synth.gguf", g_dir);
    lc_synth_params p = lc_synth_default_params();
    p.w_std = 0.05f; /* peaked predictions, so greedy answers are not ties */
    if (lc_synth_write(synth, &p) == 0) models[n_models++] = synth;
    const char *sd = th_shared_dir();
    if (sd) {
        snprintf(stories, sizeof stories, "%s/stories260K/stories260K.gguf", sd);
        if (access(stories, R_OK) == 0) models[n_models++] = stories;
    }
    printf("test_chat: tool %s, %d models\n", g_bin[0] ? g_bin : "not runnable here", n_models);
    RUN(kv_reuse_gives_the_answers_of_full_reprocessing);
    RUN(save_and_load_continue_the_conversation);
    RUN(a_full_context_is_refused_and_the_session_goes_on);
    RUN(usage_errors);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) printf("note: could not remove %s\n", g_dir);
    return TEST_SUMMARY();
}
