/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd-info: what a model is and what it costs.
 *
 *   convd-info [--block N] MODEL [MODEL...]
 *   convd-info [--block N] MODEL --plot FILE.png|FILE.svg [--plot-data FILE.csv]
 *
 * For each model: a table of its nodes (index, name, class, inputs, output channels,
 * parameters, latency, a summary of the layer's arguments), then the figures a user plans
 * with: channels, sample rate, receptive field, latency, multiply-adds per frame and the
 * GFLOP/s they need in real time, parameters, state memory per stream; and for a WaveNet its
 * layer arrays. --plot draws the model's impulse and magnitude responses (and for a nonlinear
 * model a level curve and harmonics: tools/lib/modelplot.h). See docs/TOOLS.md.
 *
 * Exit status: 0 when every model loaded, 1 when one did not (the others are still shown),
 * 2 on a usage error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "canvas.h"
#include "modelplot.h"
#include "convd_version.h"

#define PROG "convd-info"
#define DEFAULT_BLOCK 64
#define DEFAULT_RATE 48000.0

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--block N] MODEL [MODEL...]\n"
            "       " PROG " [--block N] MODEL --plot FILE.png|FILE.svg [--plot-data FILE.csv]\n"
            "\n"
            "Prints each model's layers and its figures: channels, sample rate, receptive\n"
            "field, latency, multiply-adds per frame, parameters, state memory per stream\n"
            "(for blocks of up to N frames, default %d), and a WaveNet's layer arrays.\n"
            "\n"
            "  --block N     the block size the state memory is computed for\n"
            "  --plot FILE   draw the model's impulse and magnitude responses (dB over log\n"
            "                frequency, at its rate), and for a nonlinear model its level\n"
            "                in/out and harmonics for a sine, per input channel: a PNG or SVG\n"
            "                picture, by FILE's extension (one MODEL)\n"
            "  --plot-data FILE  with --plot: the plotted numbers as csv (series,x,y)\n"
            "  -h, --help    this text\n"
            "  --version     the version\n"
            "\n"
            "Exit status: 0 success, 1 a model could not be loaded, 2 usage error.\n"
            "Documentation: " PROG "(1); " CVD_DOCDIR "/TOOLS.md\n",
            DEFAULT_BLOCK);
}

static const char *frames(long n)
{
    return n == 1 ? "frame" : "frames";
}

/* 13802 -> "13,802" */
static const char *thousands(double v, char *buf, size_t cap)
{
    char raw[64];
    size_t n, o = 0;
    int neg = v < 0;
    snprintf(raw, sizeof raw, "%.0f", neg ? -v : v);
    n = strlen(raw);
    if (neg && o + 1 < cap)
        buf[o++] = '-';
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 2 < cap)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *bytes_text(size_t b, char *buf, size_t cap)
{
    char t[32];
    thousands((double)b, t, sizeof t);
    if (b >= 1024 * 1024) {
        size_t tenths = (b * 10 + 512 * 1024) / (1024 * 1024);
        snprintf(buf, cap, "%s bytes (%zu.%zu MiB)", t, tenths / 10, tenths % 10);
    } else if (b >= 1024) {
        size_t tenths = (b * 10 + 512) / 1024;
        snprintf(buf, cap, "%s bytes (%zu.%zu KiB)", t, tenths / 10, tenths % 10);
    } else {
        snprintf(buf, cap, "%s bytes", t);
    }
    return buf;
}

/* ---- the node table --------------------------------------------------------------------- */

static const char *node_class(const cvd_model *m, int i)
{
    return cvd_model_node_class(m, i);
}

/* A short summary of a node's arguments. */
static void node_details(const cvd_model *m, int i, char *buf, size_t cap)
{
    const cvd_node_op op = cvd_model_node_op(m, i);
    const cvd_conv_config *c = cvd_model_node_conv(m, i);
    const cvd_wn_config *wn = cvd_model_node_wavenet(m, i);
    size_t o = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (o < cap) {                                                                             \
            int k_ = snprintf(buf + o, cap - o, __VA_ARGS__);                                      \
            o += k_ > 0 ? (size_t)k_ : 0;                                                          \
        }                                                                                          \
    } while (0)
    buf[0] = '\0';
    if (op == CVD_NODE_DENSE && c != NULL) {
        ADD("units %d", c->filters);
        if (c->activation != CVD_ACT_LINEAR)
            ADD(", %s", cvd_activation_name(c->activation));
        if (!c->use_bias)
            ADD(", no bias");
    } else if (op == CVD_NODE_CONV && c != NULL) {
        if (c->kind != CVD_DEPTHWISE_CONV1D)
            ADD("filters %d, ", c->filters);
        ADD("kernel %d", c->kernel_size);
        if (c->strides != 1)
            ADD(", strides %d", c->strides);
        if (c->dilation_rate != 1)
            ADD(", dilation %d", c->dilation_rate);
        if (c->kind == CVD_CONV1D && c->groups != 1)
            ADD(", groups %d", c->groups);
        if ((c->kind == CVD_DEPTHWISE_CONV1D || c->kind == CVD_SEPARABLE_CONV1D) &&
            c->depth_multiplier != 1)
            ADD(", depth multiplier %d", c->depth_multiplier);
        if (c->kind == CVD_CONV1D_TRANSPOSE && c->output_padding >= 0)
            ADD(", output padding %d", c->output_padding);
        ADD(", %s", cvd_padding_name(c->padding));
        if (c->activation != CVD_ACT_LINEAR)
            ADD(", %s", cvd_activation_name(c->activation));
        if (!c->use_bias)
            ADD(", no bias");
    } else if (op == CVD_NODE_WAVENET && wn != NULL) {
        int layers = 0;
        for (int a = 0; a < wn->n_arrays; a++)
            layers += wn->arrays[a].n_layers;
        ADD("%d layer array%s, %d layers (below)", wn->n_arrays, wn->n_arrays == 1 ? "" : "s",
            layers);
    } else {
        cvd_model_node_describe(m, i, buf, cap);
        o = strlen(buf);
    }
    if (cvd_model_node_windowed(m, i))
        ADD("%swindowed", o ? "; " : "");
#undef ADD
}

typedef struct row {
    char idx[16], name[112], cls[40], inputs[256], ch[16], params[32], latency[16], details[160];
} row;

static void print_table(const cvd_model *m)
{
    static const char *const head[8] = {"#",      "name",   "class",   "inputs",
                                        "out ch", "params", "latency", "details"};
    const int n = cvd_model_node_count(m);
    row *rows = calloc((size_t)n + 1, sizeof *rows);
    int w[8];

    if (rows == NULL) {
        printf("  (out of memory)\n");
        return;
    }
    for (int c = 0; c < 8; c++)
        w[c] = (int)strlen(head[c]);
    for (int i = 0; i < n; i++) {
        row *r = &rows[i];
        const int *in = NULL;
        int nin = i == 0 ? 0 : cvd_model_node_inputs(m, i, &in);
        size_t o = 0;
        snprintf(r->idx, sizeof r->idx, "%d", i);
        snprintf(r->name, sizeof r->name, "%s", cvd_model_node_name(m, i));
        snprintf(r->cls, sizeof r->cls, "%s", node_class(m, i));
        r->inputs[0] = '\0';
        if (nin <= 0)
            snprintf(r->inputs, sizeof r->inputs, "-");
        for (int k = 0; k < nin && o < sizeof r->inputs; k++) {
            int q = snprintf(r->inputs + o, sizeof r->inputs - o, "%s%s", k ? ", " : "",
                             cvd_model_node_name(m, in[k]));
            o += q > 0 ? (size_t)q : 0;
        }
        snprintf(r->ch, sizeof r->ch, "%d", cvd_model_node_channels(m, i));
        thousands((double)cvd_model_node_params(m, i), r->params, sizeof r->params);
        snprintf(r->latency, sizeof r->latency, "%d", cvd_model_node_latency(m, i));
        node_details(m, i, r->details, sizeof r->details);
        const char *cells[8] = {r->idx, r->name,   r->cls,     r->inputs,
                                r->ch,  r->params, r->latency, r->details};
        for (int c = 0; c < 8; c++)
            if ((int)strlen(cells[c]) > w[c])
                w[c] = (int)strlen(cells[c]);
    }
    /* numbers right-aligned, text left-aligned; the last column is not padded */
    for (int i = -1; i < n; i++) {
        const row *r = i >= 0 ? &rows[i] : NULL;
        char line[1024];
        size_t len;
        snprintf(line, sizeof line, "  %*s  %-*s  %-*s  %-*s  %*s  %*s  %*s  %s", w[0],
                 r ? r->idx : head[0], w[1], r ? r->name : head[1], w[2], r ? r->cls : head[2],
                 w[3], r ? r->inputs : head[3], w[4], r ? r->ch : head[4], w[5],
                 r ? r->params : head[5], w[6], r ? r->latency : head[6], r ? r->details : head[7]);
        len = strlen(line);
        while (len > 0 && line[len - 1] == ' ')
            line[--len] = '\0';
        puts(line);
    }
    free(rows);
}

/* ---- WaveNet arrays ------------------------------------------------------------------------ */

static void act_text(const cvd_wn_activation *a, char *buf, size_t cap)
{
    const char *name = cvd_wn_activation_name(a);
    switch (a->kind) {
    case CVD_WN_LEAKY_RELU:
        snprintf(buf, cap, "%s(slope %g)", name, (double)a->p[0]);
        break;
    case CVD_WN_LEAKY_HARDTANH:
        snprintf(buf, cap, "%s(%g..%g, slopes %g %g)", name, (double)a->p[0], (double)a->p[1],
                 (double)a->p[2], (double)a->p[3]);
        break;
    case CVD_WN_PRELU: {
        size_t o = 0;
        int q = snprintf(buf, cap, "%s(slopes", name);
        o = q > 0 ? (size_t)q : 0;
        for (int i = 0; i < a->n_slopes && o < cap; i++) {
            q = snprintf(buf + o, cap - o, " %g", (double)a->slopes[i]);
            o += q > 0 ? (size_t)q : 0;
        }
        if (o < cap)
            snprintf(buf + o, cap - o, ")");
        break;
    }
    default:
        snprintf(buf, cap, "%s", name);
    }
}

static const char *gating_name(cvd_wn_gating g)
{
    switch (g) {
    case CVD_WN_GATING_GATED:
        return "gated";
    case CVD_WN_GATING_BLENDED:
        return "blended";
    default:
        return "none";
    }
}

/* Prints one per-layer property: "value (all N layers)" when every layer has the same, else
 * the list (numbers space-separated, text comma-separated); always_list lists even equal
 * values. `get` writes layer l's value as text. */
typedef void (*layer_text_fn)(const cvd_wn_layer *l, char *buf, size_t cap);

static void text_kernel(const cvd_wn_layer *l, char *buf, size_t cap)
{
    snprintf(buf, cap, "%d", l->kernel_size);
}
static void text_dilation(const cvd_wn_layer *l, char *buf, size_t cap)
{
    snprintf(buf, cap, "%d", l->dilation);
}
static void text_activation(const cvd_wn_layer *l, char *buf, size_t cap)
{
    act_text(&l->activation, buf, cap);
}
static void text_gating(const cvd_wn_layer *l, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", gating_name(l->gating));
}
static void text_secondary(const cvd_wn_layer *l, char *buf, size_t cap)
{
    if (l->gating == CVD_WN_GATING_NONE)
        snprintf(buf, cap, "-");
    else
        act_text(&l->secondary, buf, cap);
}

static void print_layer_prop(const char *label, const cvd_wn_array *a, layer_text_fn get,
                             int numeric, int always_list)
{
    char first[256], cur[256];
    int same = 1;
    if (a->n_layers <= 0)
        return;
    get(&a->layers[0], first, sizeof first);
    for (int l = 1; l < a->n_layers; l++) {
        get(&a->layers[l], cur, sizeof cur);
        same &= strcmp(cur, first) == 0;
    }
    printf("      %-14s", label);
    if (same && !always_list && a->n_layers > 1) {
        printf("%s (all %d layers)\n", first, a->n_layers);
        return;
    }
    for (int l = 0; l < a->n_layers; l++) {
        get(&a->layers[l], cur, sizeof cur);
        printf("%s%s", l ? (numeric ? " " : ", ") : "", cur);
    }
    printf("\n");
}

/* The calibration a .nam file declares, and what NAM's plugin makes of it. */
static void print_levels(const cvd_model *m)
{
    cvd_levels lv;
    cvd_model_get_levels(m, &lv);
    if (lv.has_loudness)
        printf("  loudness           %.2f dB (normalize = yes adds %+.2f dB, to NAM's %.0f dB)\n",
               lv.loudness, cvd_output_gain_db(&lv, 0, CVD_OUTPUT_NORMALIZED, 0),
               CVD_NAM_TARGET_LOUDNESS_DB);
    if (lv.has_input_level)
        printf("  input level        %.2f dBu at full scale (an interface at +%.0f dBu adds "
               "%+.2f dB)\n",
               lv.input_level_dbu, CVD_NAM_INTERFACE_DBU,
               cvd_input_gain_db(&lv, 0, 1, CVD_NAM_INTERFACE_DBU));
    if (lv.has_output_level)
        printf("  output level       %.2f dBu at full scale\n", lv.output_level_dbu);
}

/* Convolutions on the FFT path, and where their shape switches to it. */
static void print_long_kernels(const cvd_model *m)
{
    int shown = 0;
    for (int i = 1; i < cvd_model_node_count(m); i++) {
        const cvd_conv_config *c = cvd_model_node_conv(m, i);
        const int *in;
        if (cvd_model_node_op(m, i) != CVD_NODE_CONV || c == NULL ||
            c->kind == CVD_CONV1D_TRANSPOSE || cvd_model_node_inputs(m, i, &in) < 1)
            continue;
        const int C = cvd_model_node_channels(m, in[0]);
        const int G = c->kind == CVD_CONV1D ? c->groups : C;
        const int F = c->kind == CVD_CONV1D ? c->filters : C * c->depth_multiplier;
        const int ek = c->dilation_rate * (c->kernel_size - 1) + 1;
        const int B = cvd_conv_fft_partition_for(C, F, G, ek, c->strides);
        const int T = cvd_conv_fft_threshold(C, F, G, c->strides);
        char a[32];
        if (B == 0 && (T == 0 || ek < 64))
            continue; /* short kernels: nothing to say */
        thousands((double)ek, a, sizeof a);
        printf("  %-19s%s '%s' (node %d), %s taps: %s", shown++ ? "" : "long kernels",
               cvd_model_node_class(m, i), cvd_model_node_name(m, i), i, a,
               B ? "FFT convolution" : "direct");
        if (B)
            printf(", partitions of %d frames", B);
        if (T)
            printf(" (FFT from %d taps for %d -> %d channels%s on %s)\n", T, C, F,
                   G > 1 ? " in groups" : "", cvd_isa_name(cvd_isa_active()));
        else
            printf("\n");
        if (shown == 1 && B)
            printf("                     (multiply-adds above count the direct form)\n");
    }
}

static void print_wavenet(const cvd_model *m, int node)
{
    const cvd_wn_config *wn = cvd_model_node_wavenet(m, node);
    char rf[32];
    int gated_any = 0;
    if (wn == NULL)
        return;
    thousands((double)cvd_wn_receptive_field(wn), rf, sizeof rf);
    printf("\n  WaveNet '%s' (node %d): %d layer array%s, receptive field %s %s\n",
           cvd_model_node_name(m, node), node, wn->n_arrays, wn->n_arrays == 1 ? "" : "s", rf,
           frames(cvd_wn_receptive_field(wn)));
    if (wn->prewarm)
        printf("    prewarmed (as NAM does) with %s %s of silence on start and reset\n", rf,
               frames(cvd_wn_receptive_field(wn)));
    for (int i = 0; i < wn->n_arrays; i++) {
        const cvd_wn_array *a = &wn->arrays[i];
        char lrf[32];
        long r = 1;
        for (int l = 0; l < a->n_layers; l++)
            r += (long)(a->layers[l].kernel_size - 1) * a->layers[l].dilation;
        thousands((double)r, lrf, sizeof lrf);
        printf("    array %d: %d layer%s, input %d, condition %d, channels %d, head %d (%s "
               "bias)%s%s; receptive field %s\n",
               i, a->n_layers, a->n_layers == 1 ? "" : "s", a->input_size, a->condition_size,
               a->channels, a->head_size, a->head_bias ? "with" : "no",
               a->residual ? "" : ", no residual", a->skip ? "" : ", head from the last layer only",
               lrf);
        print_layer_prop("kernel sizes", a, text_kernel, 1, 0);
        print_layer_prop("dilations", a, text_dilation, 1, 1);
        print_layer_prop("activation", a, text_activation, 0, 0);
        print_layer_prop("gating", a, text_gating, 0, 0);
        gated_any = 0;
        for (int l = 0; l < a->n_layers; l++)
            gated_any |= a->layers[l].gating != CVD_WN_GATING_NONE;
        if (gated_any)
            print_layer_prop("gate activ.", a, text_secondary, 0, 0);
    }
}

/* ---- one model ------------------------------------------------------------------------------ */

static int is_nam(const char *path)
{
    const size_t n = strlen(path);
    return n > 4 && strcasecmp(path + n - 4, ".nam") == 0;
}

static int show(const char *path, int block, const char *plot, const char *plot_data)
{
    cvd_model *m = NULL;
    cvd_net *net = NULL;
    cvd_err err = {0};
    char a[32], b[96];
    double rate, macs;
    long rf;

    if (cvd_model_load(path, &m, &err) < 0) {
        if (strstr(err.msg, path) != NULL)
            fprintf(stderr, PROG ": %s\n", err.msg);
        else
            fprintf(stderr, PROG ": %s: %s\n", path, err.msg);
        return 1;
    }
    rate = cvd_model_sample_rate(m);
    macs = cvd_model_macs_per_frame(m);
    rf = cvd_model_receptive_field(m);

    printf("%s\n", path);
    if (cvd_model_description(m)[0])
        printf("  \"%s\"\n", cvd_model_description(m));
    print_table(m);
    printf("\n");
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED) {
        const long w = cvd_model_window(m);
        printf("  mode               windowed: %s\n", cvd_model_mode_reason(m));
        printf("                     windows of %ld %s (the model's input length), hop %ld by "
               "default (convd-run --hop);\n"
               "                     one record of %d values per window\n",
               w, frames(w), w, cvd_model_out_channels(m));
    } else {
        printf("  mode               streaming: %s\n", cvd_model_mode_reason(m));
        if (cvd_model_input_length(m) > 0)
            printf("                     (the input's fixed length, %ld frames, does not matter to "
                   "the layers)\n",
                   cvd_model_input_length(m));
    }
    /* WaveNets in Keras's vocabulary: which nodes run fused, and why others do not */
    {
        const char *rep = cvd_model_fusion_report(m);
        int first = 1;
        while (*rep) {
            const char *nl = strchr(rep, '\n');
            int len = nl ? (int)(nl - rep) : (int)strlen(rep);
            printf("  %-19s%.*s\n", first ? "fusion" : "", len, rep);
            first = 0;
            rep += len + (nl != NULL);
        }
    }
    printf("  input channels     %d\n", cvd_model_in_channels(m));
    printf("  output channels    %d%s\n", cvd_model_out_channels(m),
           cvd_model_mode(m) == CVD_MODE_WINDOWED ? " (values per record)" : "");
    if (rate > 0)
        printf("  sample rate        %g Hz\n", rate);
    else
        printf("  sample rate        unknown (the file does not declare it)\n"
               "                     it runs at the rate of its stream; give the rate it was "
               "trained at\n"
               "                     with [model] rate = R, or convd-run --model-rate R\n");
    print_levels(m);
    thousands((double)rf, a, sizeof a);
    if (rate > 0)
        printf("  receptive field    %s %s (%.2f ms at %g Hz)\n", a, frames(rf),
               1000.0 * (double)rf / rate, rate);
    else
        printf("  receptive field    %s %s\n", a, frames(rf));
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED)
        printf("  latency            %d %s (a record comes with the last frame of its window)\n",
               cvd_model_latency(m), frames(cvd_model_latency(m)));
    else
        printf("  latency            %d %s\n", cvd_model_latency(m), frames(cvd_model_latency(m)));
    thousands(macs, a, sizeof a);
    if (rate > 0) /* what real time needs at the model's rate */
        printf("  multiply-adds      %s per frame: %.3f GFLOP/s at %g Hz\n", a,
               2.0 * macs * rate / 1e9, rate);
    else if (is_nam(path)) /* audio, at NAM's usual rate */
        printf("  multiply-adds      %s per frame: %.3f GFLOP/s at %g Hz, NAM's usual rate (the "
               "file gives none)\n",
               a, 2.0 * macs * DEFAULT_RATE / 1e9, DEFAULT_RATE);
    else /* a sensor model, say: no rate to speak of */
    {
        const double f = 2.0 * macs * 1000.0;
        printf("  multiply-adds      %s per frame; the rate is unknown (at 1000 frames/s: %.4g "
               "%sFLOP/s)\n",
               a,
               f >= 1e9   ? f / 1e9
               : f >= 1e6 ? f / 1e6
                          : f / 1e3,
               f >= 1e9   ? "G"
               : f >= 1e6 ? "M"
                          : "k");
    }
    thousands((double)cvd_model_param_count(m), a, sizeof a);
    printf("  parameters         %s\n", a);
    if (cvd_model_prewarm(m) > 0) {
        thousands((double)cvd_model_prewarm(m), a, sizeof a);
        printf("  prewarm            %s %s of silence on start and reset, as NAM core does\n", a,
               frames(cvd_model_prewarm(m)));
    }
    if (cvd_net_create(m, block, &net, &err) == CVD_OK) {
        printf("  state per stream   %s, for blocks of up to %d frames\n",
               bytes_text(cvd_net_state_bytes(net), b, sizeof b), block);
        cvd_net_destroy(net);
        /* on two threads ([model] threads = 2, convd-run --threads 2) */
        if (cvd_net_create_threads(m, block, 0, 2, &net, &err) == CVD_OK) {
            double cost[2];
            if (cvd_net_threads(net) == 2 && cvd_net_pipe_stats(net, NULL, NULL, cost) == 0)
                printf("  threads = 2        two pipeline stages of %.0f and %.0f multiply-adds "
                       "per frame;\n"
                       "                     latency %d %s (one block of %d more)\n",
                       cost[0], cost[1], cvd_net_latency(net), frames(cvd_net_latency(net)), block);
            else
                printf("  threads = 2        runs on one thread: %s\n", cvd_net_threads_note(net));
            cvd_net_destroy(net);
        }
    } else {
        printf("  state per stream   unknown: %s\n", err.msg);
    }
    print_long_kernels(m);
    for (int i = 1; i < cvd_model_node_count(m); i++)
        if (cvd_model_node_op(m, i) == CVD_NODE_WAVENET)
            print_wavenet(m, i);
    if (plot != NULL) {
        char summary[512];
        fflush(stdout);
        if (cvd_model_plot(m, path, plot, plot_data, summary, sizeof summary, &err) < 0) {
            fprintf(stderr, PROG ": %s: --plot %s: %s\n", path, plot, err.msg);
            cvd_model_unref(m);
            return 1;
        }
        printf("\n  plot               %s\n", summary);
    }
    cvd_model_unref(m);
    return 0;
}

int main(int argc, char **argv)
{
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    int n = 0, block = DEFAULT_BLOCK, rc = 0, only_paths = 0;
    const char *plot = NULL, *plot_data = NULL;

    if (paths == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *val = NULL;
        if (only_paths || s[0] != '-' || strcmp(s, "-") == 0) {
            paths[n++] = s;
        } else if (strcmp(s, "--") == 0) {
            only_paths = 1;
        } else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            usage(stdout);
            free(paths);
            return 0;
        } else if (strcmp(s, "--version") == 0) {
            printf(PROG " " CVD_VERSION "\n");
            free(paths);
            return 0;
        } else if (strcmp(s, "--block") == 0 || strncmp(s, "--block=", 8) == 0) {
            char *end;
            long v;
            val = s[7] == '=' ? s + 8 : i + 1 < argc ? argv[++i] : NULL;
            errno = 0;
            v = val ? strtol(val, &end, 10) : 0;
            if (val == NULL || errno || end == val || *end || v < 1 || v > (1 << 20)) {
                fprintf(stderr, PROG ": --block %s: must be an integer from 1 to %d\n",
                        val ? val : "(missing)", 1 << 20);
                free(paths);
                return 2;
            }
            block = (int)v;
        } else if (strcmp(s, "--plot") == 0 || strncmp(s, "--plot=", 7) == 0 ||
                   strcmp(s, "--plot-data") == 0 || strncmp(s, "--plot-data=", 12) == 0) {
            const int data = s[6] == '-';
            const size_t kl = data ? 11 : 6;
            val = s[kl] == '=' ? s + kl + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (val == NULL || val[0] == '\0') {
                fprintf(stderr, PROG ": %.*s needs a file (%s)\n", (int)kl, s,
                        data ? "the plotted numbers, csv" : "FILE.png or FILE.svg");
                free(paths);
                return 2;
            }
            if (data) {
                plot_data = val;
            } else {
                cvd_canvas_kind k;
                if (cvd_canvas_kind_of(val, &k) < 0) {
                    fprintf(stderr, PROG ": --plot %s: the picture is a .png or a .svg file\n",
                            val);
                    free(paths);
                    return 2;
                }
                plot = val;
            }
        } else {
            fprintf(stderr, PROG ": unknown option '%s'\n(" PROG " --help shows the usage)\n", s);
            free(paths);
            return 2;
        }
    }
    if (n == 0) {
        fprintf(stderr, PROG ": no MODEL given\n");
        usage(stderr);
        free(paths);
        return 2;
    }
    if ((plot != NULL || plot_data != NULL) && (n != 1 || plot == NULL)) {
        fprintf(stderr, PROG ": %s\n(" PROG " --help shows the usage)\n",
                plot == NULL ? "--plot-data goes with --plot" : "--plot draws one MODEL");
        free(paths);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        if (i > 0)
            printf("\n");
        fflush(stdout);
        if (show(paths[i], block, plot, plot_data) != 0)
            rc = 1;
        fflush(stdout);
    }
    free(paths);
    if (plot != NULL)
        cvd_canvas_shutdown();
    return rc;
}
