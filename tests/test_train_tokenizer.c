/* test_train_tokenizer.c - `llamac train-tokenizer` / lc_train_tokenizer (src/train/bpe_train.c).
**
** The merges must equal those of a naive trainer written here from the definition (count every adjacent pair of
** every word, weighted by the word's frequency, merge the most frequent - ties to the smallest merged bytes - and
** start over), on generated text and on a fortune file when the fortunes package is installed. The tokenizer file
** loads with lc_tokenizer_load, encodes any bytes (invalid UTF-8 too) with ids in range and decodes them back exactly;
** training twice gives the same file; bad input is refused with a clear message.
*/
#include "harness.h"
#include "llamac.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include "../src/gguf/gguf.h"
#include "../src/tokenizer/tokenizer.h"

#include <stdio.h>
#include <unistd.h>

static char g_dir[64];

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) len = 0;
    fclose(f);
    if (b) b[len] = 0;
    if (n) *n = (size_t)len;
    return b;
}

/* ---- the naive trainer ---- */
typedef struct nword {
    int *sym, n;
    long count;
} nword;

/* merges "L R" as byte strings (raw bytes, \x01 between: the test compares bytes, not GPT-2 text) */
static char **g_piece; /* the naive trainer's tokens (the merge arrays point into them); freed by free_naive */
static int g_ntok;

static void free_naive(void) {
    for (int i = 0; i < g_ntok; i++) free(g_piece[i]);
    free(g_piece);
    g_piece = NULL, g_ntok = 0;
}

static int naive_train(const char *text, size_t len, int n_merges, char ***out_l, char ***out_r, int **out_ll, int **out_rl) {
    nword *w = NULL;
    int nw = 0, cw = 0;
    size_t *ends = malloc(sizeof *ends * (len + 1));
    for (size_t pos = 0; pos < len;) { /* by lines, as the trainer does */
        size_t e = pos;
        while (e < len && text[e] != '\n' && e - pos < 65536) e++;
        if (e < len) e++;
        const size_t k = lc__llama3_split(text + pos, e - pos, ends, len + 1);
        size_t st = 0;
        for (size_t i = 0; i < k; i++) {
            const char *s = text + pos + st;
            const size_t n = ends[i] - st;
            int found = -1;
            for (int j = 0; j < nw && found < 0; j++) {
                if (w[j].n != (int)n) continue;
                int same = 1;
                for (size_t q = 0; q < n && same; q++) same = w[j].sym[q] == (unsigned char)s[q];
                if (same) found = j;
            }
            if (found >= 0) w[found].count++;
            else {
                if (nw == cw) cw = cw ? 2 * cw : 256, w = realloc(w, sizeof *w * (size_t)cw);
                w[nw].sym = malloc(sizeof(int) * (n ? n : 1));
                for (size_t q = 0; q < n; q++) w[nw].sym[q] = (unsigned char)s[q];
                w[nw].n = (int)n, w[nw].count = 1;
                nw++;
            }
            st = ends[i];
        }
        pos = e;
    }
    free(ends);
    int ntok = 256, cap = 256 + n_merges;
    char **piece = calloc((size_t)cap, sizeof *piece);
    int *plen = calloc((size_t)cap, sizeof *plen);
    for (int b = 0; b < 256; b++) piece[b] = malloc(1), piece[b][0] = (char)b, plen[b] = 1;
    *out_l = calloc((size_t)n_merges, sizeof **out_l), *out_r = calloc((size_t)n_merges, sizeof **out_r);
    *out_ll = calloc((size_t)n_merges, sizeof **out_ll), *out_rl = calloc((size_t)n_merges, sizeof **out_rl);
    int made = 0;
    long *cnt = calloc((size_t)cap * (size_t)cap, sizeof *cnt);
    while (made < n_merges) {
        memset(cnt, 0, sizeof *cnt * (size_t)cap * (size_t)cap);
        for (int j = 0; j < nw; j++)
            for (int i = 0; i + 1 < w[j].n; i++) cnt[(size_t)w[j].sym[i] * (size_t)cap + (size_t)w[j].sym[i + 1]] += w[j].count;
        int ba = -1, bb = -1;
        long best = 1; /* pairs seen at least twice */
        for (int a = 0; a < ntok; a++)
            for (int b = 0; b < ntok; b++) {
                const long c = cnt[(size_t)a * (size_t)cap + (size_t)b];
                if (c < 2 || c < best) continue;
                bool take = c > best || ba < 0;
                if (!take) { /* tie: smaller merged bytes, then shorter, then smaller (a, b) */
                    char x[1024], y[1024];
                    const int nx = plen[a] + plen[b], ny = plen[ba] + plen[bb];
                    memcpy(x, piece[a], (size_t)plen[a]), memcpy(x + plen[a], piece[b], (size_t)plen[b]);
                    memcpy(y, piece[ba], (size_t)plen[ba]), memcpy(y + plen[ba], piece[bb], (size_t)plen[bb]);
                    const int m = memcmp(x, y, (size_t)(nx < ny ? nx : ny));
                    take = m < 0 || (m == 0 && (nx < ny || (nx == ny && ((long)a << 32 | b) < ((long)ba << 32 | bb))));
                }
                if (take) best = c, ba = a, bb = b;
            }
        if (ba < 0) break;
        piece[ntok] = malloc((size_t)(plen[ba] + plen[bb]));
        memcpy(piece[ntok], piece[ba], (size_t)plen[ba]);
        memcpy(piece[ntok] + plen[ba], piece[bb], (size_t)plen[bb]);
        plen[ntok] = plen[ba] + plen[bb];
        (*out_l)[made] = piece[ba], (*out_r)[made] = piece[bb], (*out_ll)[made] = plen[ba], (*out_rl)[made] = plen[bb];
        for (int j = 0; j < nw; j++) {
            int o = 0;
            for (int i = 0; i < w[j].n; i++)
                if (i + 1 < w[j].n && w[j].sym[i] == ba && w[j].sym[i + 1] == bb) w[j].sym[o++] = ntok, i++;
                else w[j].sym[o++] = w[j].sym[i];
            w[j].n = o;
        }
        ntok++, made++;
    }
    free(cnt);
    for (int j = 0; j < nw; j++) free(w[j].sym);
    free(w);
    free(plen);
    g_piece = piece, g_ntok = ntok;
    return made;
}

/* GPT-2 text of a GGUF merge half -> bytes */
static int gpt2_bytes(const char *s, size_t n, char *out) {
    int k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = (unsigned char)s[i];
        size_t l = 1;
        if (cp >= 0xE0) cp = (cp & 0x0F) << 12 | ((unsigned char)s[i + 1] & 0x3F) << 6 | ((unsigned char)s[i + 2] & 0x3F), l = 3;
        else if (cp >= 0xC0) cp = (cp & 0x1F) << 6 | ((unsigned char)s[i + 1] & 0x3F), l = 2;
        const int b = lc__bpe_cp_to_byte(cp);
        if (b < 0) return -1;
        out[k++] = (char)b;
        i += l;
    }
    return k;
}

static char *make_text(void) {
    static const char *const words[] = {"the", "cat", "sat", "on", "a", "mat", "Über", "naïve", "café", "été",
                                        "data", "123", "4567", "!", "?", "  ", "\n", "don't", "we'll", "élan"};
    char *t = malloc(200000);
    size_t n = 0;
    unsigned x = 12345;
    for (int i = 0; i < 6000; i++) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % 20];
        if (i && w[0] != '\n' && w[0] != ' ' && w[0] != '!' && w[0] != '?') t[n++] = ' ';
        memcpy(t + n, w, strlen(w));
        n += strlen(w);
    }
    t[n] = 0;
    return t;
}

static const char *check_against_naive(const char *corpus_path, int vocab) {
    static char msg[512];
    char out[128];
    snprintf(out, sizeof out, "%s/tok.gguf", g_dir);
    const char *files[] = {corpus_path};
    lc_train_tokenizer_params p = {.files = files, .n_files = 1, .vocab_size = (uint32_t)vocab};
    if (lc_train_tokenizer(&p, out)) return snprintf(msg, sizeof msg, "training failed: %s", lc_last_error()), msg;
    size_t len;
    char *text = slurp(corpus_path, &len);
    char **L, **R;
    int *LL, *RL;
    const int want = naive_train(text, len, vocab - 256 - 7, &L, &R, &LL, &RL);
    free(text);
    gguf_file *f;
    if (gguf_open(out, &f)) return snprintf(msg, sizeof msg, "cannot open the output: %s", lc_last_error()), msg;
    const gguf_value *m = NULL;
    const char *bad = NULL;
    if (gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_T_STRING, &m) != 1) bad = "no merges in the file";
    else if ((int)m->v.arr.n != want)
    {
        snprintf(msg, sizeof msg, "%llu merges, the naive trainer made %d", (unsigned long long)m->v.arr.n, want);
        bad = msg;
    }
    for (int i = 0; !bad && i < want; i++) {
        const gguf_str *s = &((const gguf_str *)m->v.arr.strs)[i];
        const char *sp = memchr(s->ptr, ' ', s->len);
        char l[1024], r[1024];
        const int nl = sp ? gpt2_bytes(s->ptr, (size_t)(sp - s->ptr), l) : -1;
        const int nr = sp ? gpt2_bytes(sp + 1, s->len - (size_t)(sp - s->ptr) - 1, r) : -1;
        if (nl != LL[i] || nr != RL[i] || memcmp(l, L[i], (size_t)nl) || memcmp(r, R[i], (size_t)nr)) {
            snprintf(msg, sizeof msg, "merge %d is \"%.*s\", the naive trainer's is \"%.*s\" + \"%.*s\"", i,
                     (int)s->len, s->ptr, LL[i], L[i], RL[i], R[i]);
            bad = msg;
        }
    }
    printf("        %s: %d merges, equal to the naive trainer's%s\n", corpus_path, want, bad ? " - NO" : "");
    gguf_close(f);
    free(L), free(R), free(LL), free(RL);
    free_naive();
    return bad;
}

TEST(merges_equal_a_naive_trainer) {
    char path[128];
    snprintf(path, sizeof path, "%s/gen.txt", g_dir);
    char *t = make_text();
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(t, f);
    fclose(f);
    free(t);
    const char *e = check_against_naive(path, 256 + 7 + 120);
    CHECKF(!e, "%s", e);
    const char *fortune = "/usr/share/games/fortunes/de/kinder.u8";
    if (access(fortune, R_OK)) fortune = "/usr/share/games/fortunes/fortunes";
    if (access(fortune, R_OK) == 0) {
        e = check_against_naive(fortune, 256 + 7 + 300);
        CHECKF(!e, "%s", e);
    }
}

TEST(roundtrip_determinism_and_errors) {
    char path[128], out[128], out2[128];
    snprintf(path, sizeof path, "%s/gen2.txt", g_dir);
    snprintf(out, sizeof out, "%s/a.gguf", g_dir);
    snprintf(out2, sizeof out2, "%s/b.gguf", g_dir);
    char *t = make_text();
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(t, f);
    fclose(f);
    free(t);
    const char *files[] = {path};
    lc_train_tokenizer_params p = {.files = files, .n_files = 1, .vocab_size = 400};
    CHECK_OK(lc_train_tokenizer(&p, out));
    CHECK_OK(lc_train_tokenizer(&p, out2));
    size_t n1, n2;
    char *a = slurp(out, &n1), *b = slurp(out2, &n2);
    const bool same = a && b && n1 == n2 && !memcmp(a, b, n1);
    free(a), free(b);
    CHECKF(same, "training twice gave different files");
    lc_tokenizer *tok;
    CHECK_OK(lc_tokenizer_load(out, NULL, &tok));
    /* every byte value, invalid UTF-8, and text: encode, ids in range, decode back */
    char in[600];
    size_t n = 0;
    for (int i = 0; i < 256; i++) in[n++] = (char)i;
    static const char tail[] = "\xff\xfe caf\xc3\xa9 \xe4\xb8\x96 the cat sat";
    memcpy(in + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    int32_t ids[2048];
    size_t nid = 0;
    CHECK_OK(lc_tokenizer_tokenize(tok, in, n, 0, ids, 2048, &nid));
    char back[4096];
    size_t bn = 0;
    bool in_range = true;
    for (size_t i = 0; i < nid; i++) {
        in_range = in_range && ids[i] >= 0 && ids[i] < 400;
        const int k = lc_tokenizer_token_bytes(tok, ids[i], back + bn, sizeof back - bn);
        if (k > 0) bn += (size_t)k;
    }
    lc_tokenizer_free(tok);
    CHECKF(in_range, "an id is out of the vocabulary");
    CHECKF(bn == n && !memcmp(back, in, n), "decode(encode(x)) != x (%zu bytes vs %zu)", bn, n);
    /* errors */
    const char *missing[] = {"/nonexistent/corpus.txt"};
    lc_train_tokenizer_params q = {.files = missing, .n_files = 1, .vocab_size = 400};
    CHECK(lc_train_tokenizer(&q, out) != 0 && strstr(lc_last_error(), "/nonexistent/corpus.txt"));
    q.files = files, q.vocab_size = 100;
    CHECK(lc_train_tokenizer(&q, out) == LC_E_INVALID && strstr(lc_last_error(), "too small"));
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty.txt", g_dir);
    f = fopen(empty, "w");
    CHECK(f);
    fclose(f);
    const char *ef[] = {empty};
    q.files = ef, q.vocab_size = 400;
    CHECK(lc_train_tokenizer(&q, out) != 0);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/llamac-test-bpetrain-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    printf("test_train_tokenizer\n");
    RUN(merges_equal_a_naive_trainer);
    RUN(roundtrip_determinism_and_errors);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) printf("note: could not remove %s\n", g_dir);
    return TEST_SUMMARY();
}
