/* harness.h - a small test harness: TEST(name) functions, CHECK macros, a summary line per program.
**
** Each tests/test_*.c defines tests with TEST(name) { ... } and lists them in main with RUN(name). A test fails on
** the first failing CHECK (message with file:line), or is skipped with SKIP("why"). The program prints one line per
** test and ends with "N passed, N failed, N skipped"; it exits 1 if any failed.
*/
#ifndef LC_HARNESS_H
#define LC_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { TH_PASS, TH_FAIL, TH_SKIP } th_result;
static int th_passed, th_failed, th_skipped;
static th_result th_cur;
static char th_msg[1024];

#define TEST(name) static void name(void)
#define FAILF(...)                                                                                                 \
    do {                                                                                                           \
        int th_n_ = snprintf(th_msg, sizeof th_msg, "%s:%d: ", __FILE__, __LINE__);                                \
        snprintf(th_msg + th_n_, sizeof th_msg - (size_t)th_n_, __VA_ARGS__);                                      \
        th_cur = TH_FAIL;                                                                                          \
        return;                                                                                                    \
    } while (0)
#define CHECK(cond)                                                                                                \
    do {                                                                                                           \
        if (!(cond)) FAILF("CHECK(%s) failed", #cond);                                                             \
    } while (0)
#define CHECKF(cond, ...)                                                                                          \
    do {                                                                                                           \
        if (!(cond)) FAILF(__VA_ARGS__);                                                                           \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                                         \
    do {                                                                                                           \
        long long th_a_ = (long long)(a), th_b_ = (long long)(b);                                                  \
        if (th_a_ != th_b_) FAILF("%s == %s failed: %lld vs %lld", #a, #b, th_a_, th_b_);                          \
    } while (0)
#define CHECK_OK(expr)                                                                                             \
    do {                                                                                                           \
        int th_s_ = (expr);                                                                                        \
        if (th_s_ != 0) FAILF("%s returned %d: %s", #expr, th_s_, lc_last_error());                                 \
    } while (0)
#define SKIP(...)                                                                                                  \
    do {                                                                                                           \
        snprintf(th_msg, sizeof th_msg, __VA_ARGS__);                                                              \
        th_cur = TH_SKIP;                                                                                          \
        return;                                                                                                    \
    } while (0)

static inline void th_run(void (*fn)(void), const char *name) {
    th_cur = TH_PASS;
    th_msg[0] = 0;
    fn();
    switch (th_cur) {
    case TH_PASS: th_passed++; printf("  ok    %s\n", name); break;
    case TH_FAIL: th_failed++; printf("  FAIL  %s: %s\n", name, th_msg); break;
    case TH_SKIP: th_skipped++; printf("  skip  %s: %s\n", name, th_msg); break;
    }
    fflush(stdout);
}
#define RUN(name) th_run(name, #name)
#define TEST_SUMMARY()                                                                                             \
    (printf("%d passed, %d failed, %d skipped\n", th_passed, th_failed, th_skipped), th_failed ? 1 : 0)

/* Directory of the shared test data (../shared/data beside the checkout), or NULL when absent. Override with
** LLAMAC_SHARED_DATA. */
static inline const char *th_shared_dir(void) {
    static char buf[4096];
    const char *e = getenv("LLAMAC_SHARED_DATA");
    if (e && *e) return e;
    const char *cands[] = {"../shared/data", "../../shared/data"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        snprintf(buf, sizeof buf, "%s/stories260K", cands[i]);
        FILE *f = fopen(buf, "r");
        if (f) { fclose(f); snprintf(buf, sizeof buf, "%s", cands[i]); return buf; }
    }
    return NULL;
}

/* A whole file, NUL-terminated (malloc'd; *n_out its size, may be NULL), or NULL when it cannot be read. */
static inline char *th_slurp(const char *path, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0) n = 0;
    char *b = malloc((size_t)n + 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    if (b) b[n] = 0;
    if (n_out) *n_out = (size_t)n;
    return b;
}

/* The llamac binary a test runs: env LLAMAC_BIN, else <build>/llamac beside the test program (argv0 is
** <build>/tests/test_x), else $LLAMAC_BUILD/llamac (default build/llamac). Needs <unistd.h> for access(). */
static inline void th_find_bin(char *buf, size_t cap, const char *argv0) {
    const char *e = getenv("LLAMAC_BIN");
    if (e && *e) {
        snprintf(buf, cap, "%s", e);
        return;
    }
    const char *slash = strrchr(argv0, '/');
    if (slash) {
        snprintf(buf, cap, "%.*s/../llamac", (int)(slash - argv0), argv0);
        if (access(buf, X_OK) == 0) return;
    }
    const char *b = getenv("LLAMAC_BUILD");
    snprintf(buf, cap, "%s/llamac", b && *b ? b : "build");
}

#endif /* LC_HARNESS_H */
