/* cmd_synth.c - `llamac synth`: writes a Llama GGUF with RANDOM weights through lc_synth_write, from a preset
** (tiny, small, 1b, 8b: the shapes of real models) with any hyperparameter overridden. The file works with every
** other subcommand and with llama.cpp; its text output is gibberish by design, and stderr says so.
*/
#include "cli.h"

#include <string.h>
#include <sys/stat.h>

static const char *synth_help =
    "usage: llamac synth -o FILE [options]\n"
    "\n"
    "Writes a Llama-architecture GGUF with RANDOM weights (not a trained model: generated text is gibberish by\n"
    "design). For tests, demos and benchmarks; the file also loads in llama.cpp. Same options, same file.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE    file to write (required; replaced if it exists)\n"
    "  --preset NAME        tiny | small | 1b | 8b (default tiny)\n"
    "                         tiny : vocab 512, embd 128, 2 layers, 4 heads, 2 kv heads, ff 384, f32 (make run, tests)\n"
    "                         small: vocab 4096, embd 512, 4 layers, 8 heads, 2 kv heads, ff 1536, f32\n"
    "                         1b   : Llama 3.2 1B shape: embd 2048, 16 layers, 32/8 heads, ff 8192, vocab 128256,\n"
    "                                tied output, rope theta 5e5, rope_freqs, f16 (2.5 GB)\n"
    "                         8b   : Llama 3.1 8B shape: embd 4096, 32 layers, 32/8 heads, ff 14336, vocab 128256,\n"
    "                                untied output, rope theta 5e5, rope_freqs, f16 (16 GB)\n"
    "  --type T             weight matrices: f32 | f16 | bf16 | q8_0 (norms stay f32; default: the preset's)\n"
    "  --seed S             random seed (default 1: the same options always give the same file)\n"
    "  --vocab N            vocabulary size (>= 259: 3 control tokens + 256 byte tokens first)\n"
    "  --embd N             embedding width (n_embd)\n"
    "  --layers N           number of layers\n"
    "  --heads N            attention heads\n"
    "  --kv-heads N         key/value heads (divides --heads; fewer than --heads is grouped-query attention)\n"
    "  --ff N               feed-forward width (n_ff)\n"
    "  --head-dim N         head dimension (default embd/heads)\n"
    "  --ctx N              trained context length written in the file\n"
    "  --theta T            RoPE frequency base\n"
    "  --eps E              RMSNorm epsilon (default 1e-5)\n"
    "  --std X              standard deviation of the weights (default 0.02)\n"
    "  --tied | --untied    output matrix shared with the token embedding, or separate\n"
    "  --rope-freqs | --no-rope-freqs   write a Llama 3.1 rope_freqs.weight (RoPE scaling factors)\n"
    "  --name NAME          general.name (default llamac-random-PRESET)\n"
    "  -h, --help           this help\n";

typedef struct preset {
    const char *name;
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    float theta;
    bool tied, rope_freqs;
    int wtype;
} preset;

static const preset presets[] = {
    {"tiny", 512, 128, 2, 4, 2, 384, 2048, 10000.0f, false, false, LC_TYPE_F32},
    {"small", 4096, 512, 4, 8, 2, 1536, 4096, 10000.0f, false, false, LC_TYPE_F32},
    {"1b", 128256, 2048, 16, 32, 8, 8192, 131072, 500000.0f, true, true, LC_TYPE_F16},
    {"8b", 128256, 4096, 32, 32, 8, 14336, 131072, 500000.0f, false, true, LC_TYPE_F16},
};
#define PRESET_CHOICES "tiny|small|1b|8b"
#define TYPE_CHOICES "f32|f16|bf16|q8_0"
static const int type_of_choice[] = {LC_TYPE_F32, LC_TYPE_F16, LC_TYPE_BF16, LC_TYPE_Q8_0};

int cmd_synth(int argc, char **argv) {
    const char *cmd = "synth", *out = NULL, *name = NULL;
    int preset_i = 0, type_i = 0;
    int64_t vocab = 0, embd = 0, layers = 0, heads = 0, kv_heads = 0, ff = 0, head_dim = 0, ctx = 0;
    double theta = 0, eps = 1e-5, std = 0.02;
    uint64_t seed = 1;
    bool tied = false, rope_freqs = false;
    bool s_type = false, s_vocab = false, s_embd = false, s_layers = false, s_heads = false, s_kv = false,
         s_ff = false, s_hd = false, s_ctx = false, s_theta = false, s_tied = false, s_rf = false;
    const double u32max = 4294967295.0;
    const cli_opt opts[] = {
        {"-o", "--output", CLI_STR, &out, 0, 0, NULL, NULL},
        {NULL, "--preset", CLI_CHOICE, &preset_i, 0, 0, PRESET_CHOICES, NULL},
        {NULL, "--type", CLI_CHOICE, &type_i, 0, 0, TYPE_CHOICES, &s_type},
        {NULL, "--seed", CLI_U64, &seed, 0, 0, NULL, NULL},
        {NULL, "--vocab", CLI_INT, &vocab, 1, u32max, NULL, &s_vocab},
        {NULL, "--embd", CLI_INT, &embd, 1, u32max, NULL, &s_embd},
        {NULL, "--layers", CLI_INT, &layers, 1, u32max, NULL, &s_layers},
        {NULL, "--heads", CLI_INT, &heads, 1, u32max, NULL, &s_heads},
        {NULL, "--kv-heads", CLI_INT, &kv_heads, 1, u32max, NULL, &s_kv},
        {NULL, "--ff", CLI_INT, &ff, 1, u32max, NULL, &s_ff},
        {NULL, "--head-dim", CLI_INT, &head_dim, 1, u32max, NULL, &s_hd},
        {NULL, "--ctx", CLI_INT, &ctx, 1, u32max, NULL, &s_ctx},
        {NULL, "--theta", CLI_FLOAT, &theta, 1e-30, 1e30, NULL, &s_theta},
        {NULL, "--eps", CLI_FLOAT, &eps, 1e-30, 1.0, NULL, NULL},
        {NULL, "--std", CLI_FLOAT, &std, 0.0, 1e6, NULL, NULL},
        {NULL, "--tied", CLI_FLAG, &tied, 0, 0, NULL, &s_tied},
        {NULL, "--untied", CLI_NOFLAG, &tied, 0, 0, NULL, &s_tied},
        {NULL, "--rope-freqs", CLI_FLAG, &rope_freqs, 0, 0, NULL, &s_rf},
        {NULL, "--no-rope-freqs", CLI_NOFLAG, &rope_freqs, 0, 0, NULL, &s_rf},
        {NULL, "--name", CLI_STR, &name, 0, 0, NULL, NULL},
    };
    bool help;
    size_t n_pos;
    int r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(synth_help, stdout);
        return CLI_OK;
    }
    if (!out) return cli_usage_error(cmd, "missing -o FILE (the GGUF file to write)");

    const preset *pr = &presets[preset_i];
    lc_synth_params p = lc_synth_default_params();
    p.n_vocab = pr->n_vocab;
    p.n_embd = pr->n_embd;
    p.n_layer = pr->n_layer;
    p.n_head = pr->n_head;
    p.n_head_kv = pr->n_head_kv;
    p.n_ff = pr->n_ff;
    p.n_ctx_train = pr->n_ctx;
    p.head_dim = 0;
    p.rope_theta = pr->theta;
    p.tied_output = pr->tied;
    p.rope_freqs = pr->rope_freqs;
    p.wtype = pr->wtype;
    if (s_type) p.wtype = type_of_choice[type_i];
    if (s_vocab) p.n_vocab = (uint32_t)vocab;
    if (s_embd) p.n_embd = (uint32_t)embd;
    if (s_layers) p.n_layer = (uint32_t)layers;
    if (s_heads) {
        p.n_head = (uint32_t)heads;
        if (!s_kv && p.n_head_kv > p.n_head) p.n_head_kv = p.n_head; /* keep the preset's GQA only if it fits */
        if (!s_kv && p.n_head % p.n_head_kv) p.n_head_kv = p.n_head;
    }
    if (s_kv) p.n_head_kv = (uint32_t)kv_heads;
    if (s_ff) p.n_ff = (uint32_t)ff;
    if (s_hd) p.head_dim = (uint32_t)head_dim;
    if (s_ctx) p.n_ctx_train = (uint32_t)ctx;
    if (s_theta) p.rope_theta = (float)theta;
    if (s_tied) p.tied_output = tied;
    if (s_rf) p.rope_freqs = rope_freqs;
    p.rms_eps = (float)eps;
    p.w_std = (float)std;
    p.seed = seed;
    char default_name[64];
    snprintf(default_name, sizeof default_name, "llamac-random-%s", pr->name);
    p.name = name ? name : default_name;

    bool overridden = s_type || s_vocab || s_embd || s_layers || s_heads || s_kv || s_ff || s_hd || s_ctx || s_theta ||
                      s_tied || s_rf;
    double t0 = lc_time_s();
    if (lc_synth_write(out, &p)) return cli_lib_error();
    double dt = lc_time_s() - t0;

    struct stat st;
    double mib = stat(out, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0.0;
    uint32_t hd = p.head_dim ? p.head_dim : p.n_embd / p.n_head;
    fprintf(stderr,
            "llamac synth: wrote %s (%.1f MiB, %.2f s)\n"
            "  RANDOM WEIGHTS: not a trained model; text generated from it is gibberish by design.\n"
            "  preset %s%s: n_vocab %u, n_embd %u, n_layer %u, n_head %u, n_head_kv %u, head_dim %u, n_ff %u,\n"
            "  n_ctx_train %u, rope theta %g%s, %s output, weights %s, seed %llu\n",
            out, mib, dt, pr->name, overridden ? " (with overrides)" : "", p.n_vocab, p.n_embd, p.n_layer, p.n_head,
            p.n_head_kv, hd, p.n_ff, p.n_ctx_train, (double)p.rope_theta, p.rope_freqs ? " + rope_freqs" : "",
            p.tied_output ? "tied" : "untied", lc_type_name(p.wtype), (unsigned long long)p.seed);
    return CLI_OK;
}
