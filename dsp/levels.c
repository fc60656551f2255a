/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Levels: a model's calibration metadata, the gains NAM's plugin derives from it, plain
 * gains, and a soft limiter for the output.
 *
 * NAM's rules (NeuralAmpModelerPlugin, _SetInputGain and _SetOutputGain), in dB:
 *   input gain  = the user's input gain
 *                 + (interface level - the model's input_level_dbu), when input calibration
 *                   is on and the model declares its input level
 *   output gain = the user's output gain
 *                 + (-18 - loudness), "normalized", when the model declares its loudness
 *                 + (output_level_dbu - interface level), "calibrated", when it declares its
 *                   output level
 * where the interface level is the dBu of a full-scale sample at the audio interface's input
 * (NAM's "InputCalibrationLevel", 12 dBu by default).
 */
#include "graph_internal.h"

#include <math.h>
#include <string.h>

void cvd_model_set_levels(cvd_model *m, const cvd_levels *lv)
{
    if (lv)
        m->levels = *lv;
    else
        memset(&m->levels, 0, sizeof m->levels);
}

void cvd_model_get_levels(const cvd_model *m, cvd_levels *lv)
{
    *lv = m->levels;
}

void cvd_levels_of_chain(cvd_model *const *models, int n, cvd_levels *out)
{
    memset(out, 0, sizeof *out);
    if (n <= 0)
        return;
    /* the input level belongs to the model the interface feeds */
    if (models[0]->levels.has_input_level) {
        out->has_input_level = 1;
        out->input_level_dbu = models[0]->levels.input_level_dbu;
    }
    /* loudness and output level: the last model that declares them (an amp before a
     * cabinet IR: the amp's, as NAM's plugin applies it) */
    for (int i = n - 1; i >= 0; i--)
        if (models[i]->levels.has_loudness) {
            out->has_loudness = 1;
            out->loudness = models[i]->levels.loudness;
            break;
        }
    for (int i = n - 1; i >= 0; i--)
        if (models[i]->levels.has_output_level) {
            out->has_output_level = 1;
            out->output_level_dbu = models[i]->levels.output_level_dbu;
            break;
        }
}

double cvd_input_gain_db(const cvd_levels *lv, double gain_db, int calibrate, double interface_dbu)
{
    if (calibrate && lv && lv->has_input_level)
        gain_db += interface_dbu - lv->input_level_dbu;
    return gain_db;
}

double cvd_output_gain_db(const cvd_levels *lv, double gain_db, cvd_output_mode mode,
                          double interface_dbu)
{
    if (lv == NULL)
        return gain_db;
    switch (mode) {
    case CVD_OUTPUT_NORMALIZED:
        if (lv->has_loudness)
            gain_db += CVD_NAM_TARGET_LOUDNESS_DB - lv->loudness;
        break;
    case CVD_OUTPUT_CALIBRATED:
        if (lv->has_output_level)
            gain_db += lv->output_level_dbu - interface_dbu;
        break;
    case CVD_OUTPUT_RAW:
        break;
    }
    return gain_db;
}

float cvd_db_to_gain(double db)
{
    return (float)pow(10.0, db / 20.0);
}

void cvd_gain_apply(float *x, size_t n, float gain)
{
    if (gain == 1.0f)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] *= gain;
}

/* ---- the limiter ---------------------------------------------------------------------------- */

/*
 * Per frame, p = the largest |sample| over the channels. Below the knee nothing happens;
 * above it the frame's gain target maps p onto a soft curve that approaches the ceiling and
 * never reaches it:  soft(p) = knee + (ceiling - knee) tanh((p - knee) / (ceiling - knee)),
 * which meets the identity with slope 1 at the knee. The gain falls to a lower target at once
 * (no frame ever exceeds the ceiling) and recovers towards 1 with the release time constant,
 * so a loud passage is turned down smoothly instead of clipped sample by sample. A sample
 * that is not a finite number becomes 0 (a model gone wrong must not reach the speakers).
 */
void cvd_limiter_init(cvd_limiter *l, double rate, double ceiling_db, double release_ms)
{
    if (!(rate > 0))
        rate = 48000;
    if (!(ceiling_db <= 0) || ceiling_db < -60)
        ceiling_db = CVD_LIMITER_CEILING_DB;
    if (!(release_ms > 0))
        release_ms = CVD_LIMITER_RELEASE_MS;
    l->ceiling = cvd_db_to_gain(ceiling_db);
    l->knee = cvd_db_to_gain(ceiling_db - 6.0);
    l->release = (float)exp(-1.0 / (release_ms * 1e-3 * rate));
    cvd_limiter_reset(l);
}

void cvd_limiter_reset(cvd_limiter *l)
{
    l->gain = 1.0f;
}

void cvd_limiter_process(cvd_limiter *l, float *x, int frames, int channels)
{
    const float knee = l->knee, span = l->ceiling - l->knee, rel = l->release;
    float g = l->gain;
    for (int t = 0; t < frames; t++) {
        float *fr = x + (size_t)t * channels, p = 0;
        for (int c = 0; c < channels; c++) {
            if (!isfinite(fr[c]))
                fr[c] = 0.0f;
            float a = fabsf(fr[c]);
            if (a > p)
                p = a;
        }
        float target = 1.0f;
        if (p > knee)
            target = (knee + span * tanhf((p - knee) / span)) / p;
        if (target < g)
            g = target;
        else
            g = target + (g - target) * rel;
        if (g != 1.0f)
            for (int c = 0; c < channels; c++)
                fr[c] *= g;
    }
    l->gain = g;
}

float cvd_limiter_gain(const cvd_limiter *l)
{
    return l->gain;
}
