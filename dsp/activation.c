/* SPDX-License-Identifier: Apache-2.0 */
/* Keras's activations, by name, with Keras 3's formulas (../shared/KERAS_SPEC.md). */
#include "convd_dsp.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

static const char *const act_names[CVD_ACT_COUNT] = {
#define CVD__ACT_NAME(name, str) str,
    CVD_ACTIVATION_MAP(CVD__ACT_NAME)
#undef CVD__ACT_NAME
};

int cvd_activation_parse(const char *name, cvd_activation *out, cvd_err *err)
{
    if (name == NULL) {
        *out = CVD_ACT_LINEAR;
        return CVD_OK;
    }
    for (int i = 0; i < CVD_ACT_COUNT; i++) {
        if (strcmp(name, act_names[i]) == 0) {
            *out = (cvd_activation)i;
            return CVD_OK;
        }
    }
    return cvd_err_set(err, CVD_EINVAL,
                       "activation='%s': Could not interpret activation function identifier: %s",
                       name, name);
}

const char *cvd_activation_name(cvd_activation act)
{
    return (unsigned)act < CVD_ACT_COUNT ? act_names[act] : "?";
}

int cvd_activation_is_axis(cvd_activation act)
{
    return act == CVD_ACT_SOFTMAX || act == CVD_ACT_LOG_SOFTMAX;
}

static inline float softplusf(float x)
{
    /* log(1 + e^x) without overflow for large |x| */
    return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

static inline float sigmoidf(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static inline float hard_sigmoidf(float x)
{
    float y = x / 6.0f + 0.5f;
    return y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
}

void cvd_activation_apply(cvd_activation act, float *x, size_t n)
{
    size_t i;
    switch (act) {
    case CVD_ACT_LINEAR:
    case CVD_ACT_SOFTMAX:
    case CVD_ACT_LOG_SOFTMAX:
    case CVD_ACT_COUNT:
        break;
    case CVD_ACT_RELU:
        for (i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case CVD_ACT_RELU6:
        for (i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? (x[i] < 6.0f ? x[i] : 6.0f) : 0.0f;
        break;
    case CVD_ACT_LEAKY_RELU:
        for (i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.2f * x[i];
        break;
    case CVD_ACT_ELU:
        for (i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : expm1f(x[i]);
        break;
    case CVD_ACT_SELU:
        for (i = 0; i < n; i++)
            x[i] = 1.0507009873554805f * (x[i] > 0.0f ? x[i] : 1.6732632423543772f * expm1f(x[i]));
        break;
    case CVD_ACT_CELU:
        for (i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : expm1f(x[i]);
        break;
    case CVD_ACT_GELU:
        for (i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case CVD_ACT_SIGMOID:
        cvd_vsigmoid(x, n);
        break;
    case CVD_ACT_HARD_SIGMOID:
        for (i = 0; i < n; i++)
            x[i] = hard_sigmoidf(x[i]);
        break;
    case CVD_ACT_TANH:
        cvd_vtanh(x, n);
        break;
    case CVD_ACT_HARD_TANH:
        for (i = 0; i < n; i++)
            x[i] = x[i] < -1.0f ? -1.0f : (x[i] > 1.0f ? 1.0f : x[i]);
        break;
    case CVD_ACT_SOFTPLUS:
        for (i = 0; i < n; i++)
            x[i] = softplusf(x[i]);
        break;
    case CVD_ACT_SOFTSIGN:
        for (i = 0; i < n; i++)
            x[i] = x[i] / (1.0f + fabsf(x[i]));
        break;
    case CVD_ACT_SILU:
    case CVD_ACT_SWISH:
        for (i = 0; i < n; i++)
            x[i] = x[i] * sigmoidf(x[i]);
        break;
    case CVD_ACT_HARD_SILU:
    case CVD_ACT_HARD_SWISH:
        for (i = 0; i < n; i++)
            x[i] = x[i] * hard_sigmoidf(x[i]);
        break;
    case CVD_ACT_MISH:
        for (i = 0; i < n; i++)
            x[i] = x[i] * tanhf(softplusf(x[i]));
        break;
    case CVD_ACT_EXPONENTIAL:
        for (i = 0; i < n; i++)
            x[i] = expf(x[i]);
        break;
    case CVD_ACT_LOG_SIGMOID:
        for (i = 0; i < n; i++)
            x[i] = -softplusf(-x[i]);
        break;
    case CVD_ACT_TANH_SHRINK:
        for (i = 0; i < n; i++)
            x[i] = x[i] - tanhf(x[i]);
        break;
    case CVD_ACT_HARD_SHRINK:
        for (i = 0; i < n; i++)
            x[i] = fabsf(x[i]) > 0.5f ? x[i] : 0.0f;
        break;
    case CVD_ACT_SOFT_SHRINK:
        for (i = 0; i < n; i++)
            x[i] = x[i] > 0.5f ? x[i] - 0.5f : (x[i] < -0.5f ? x[i] + 0.5f : 0.0f);
        break;
    case CVD_ACT_SQUAREPLUS:
        for (i = 0; i < n; i++)
            x[i] = 0.5f * (x[i] + sqrtf(x[i] * x[i] + 4.0f));
        break;
    }
}

void cvd_activation_apply_axis(cvd_activation act, float *x, size_t count, size_t step, size_t len,
                               size_t stride)
{
    if (!cvd_activation_is_axis(act)) {
        /* element-wise: the axis does not matter, only which elements; in runs as long as
         * the layout allows, so the vectorised forms (tanh, sigmoid) see whole vectors rather
         * than one element at a time (a Conv1D's frames of F channels are one run) */
        if ((stride == 1 && step == len) || (step == 1 && stride == count))
            cvd_activation_apply(act, x, count * len);
        else if (stride == 1)
            for (size_t v = 0; v < count; v++)
                cvd_activation_apply(act, &x[v * step], len);
        else
            for (size_t v = 0; v < count; v++)
                for (size_t i = 0; i < len; i++)
                    cvd_activation_apply(act, &x[v * step + i * stride], 1);
        return;
    }
    for (size_t v = 0; v < count; v++) {
        float *p = x + v * step;
        if (len == 0)
            continue;
        float m = p[0];
        for (size_t i = 1; i < len; i++)
            if (p[i * stride] > m)
                m = p[i * stride];
        double sum = 0.0;
        for (size_t i = 0; i < len; i++)
            sum += exp((double)p[i * stride] - m);
        if (act == CVD_ACT_SOFTMAX) {
            for (size_t i = 0; i < len; i++)
                p[i * stride] = (float)(exp((double)p[i * stride] - m) / sum);
        } else {
            double lse = log(sum);
            for (size_t i = 0; i < len; i++)
                p[i * stride] = (float)((double)p[i * stride] - m - lse);
        }
    }
}
