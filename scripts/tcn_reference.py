#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""An independent numpy reference of keras-tcn's TCN layer (github.com/philipperemy/keras-tcn).

Written from the library's documented behaviour (its README and tcn/tcn.py's docstrings and
structure: residual blocks of two dilated Conv1Ds with optional normalisation, the activation
again after them, a 1x1 matching convolution when the channels change, the residual sum through
the activation, the skip connections summed, one frame when return_sequences is False), in
float64, without Keras, TensorFlow or convd's code. scripts/keras_reference.py calls it for the
TCN layers of a model; scripts/gen_tcn_cases.py writes the test files.

    from tcn_reference import tcn_forward, keras3_weights, keras2_weights
    w = keras3_weights(h5["layers/tcn"], config)    # the layer's weights, per residual block
    y = tcn_forward(config, w, x)                    # x: (steps, channels)

The weights of a block are a dict: conv0, conv1 and (when the channels change) match, each
(kernel (k, C, F), bias (F,)); norm0, norm1 (BatchNormalization: gamma, beta, moving mean,
moving variance; LayerNormalization: gamma, beta) with use_batch_norm / use_layer_norm; with
use_weight_norm the kernels are tensorflow-addons' g * v / |v| already.
"""

import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden  # noqa: E402  (Keras's activations by name, from ../shared/KERAS_SPEC.md)
import torch  # noqa: E402

DEFAULTS = dict(nb_filters=64, kernel_size=3, nb_stacks=1, dilations=[1, 2, 4, 8, 16, 32],
                padding="causal", use_skip_connections=True, dropout_rate=0.0,
                return_sequences=False, activation="relu", kernel_initializer="he_normal",
                use_batch_norm=False, use_layer_norm=False, use_weight_norm=False,
                go_backwards=False, return_state=False)


def options(config):
    o = dict(DEFAULTS)
    o.update({k: v for k, v in config.items() if k in DEFAULTS})
    if isinstance(o["dilations"], int):
        o["dilations"] = [o["dilations"]]
    return o


def block_plan(config, in_channels):
    """[(dilation, filters, has matching conv)] for every residual block, in order."""
    o = options(config)
    plan, c = [], in_channels
    for _ in range(o["nb_stacks"]):
        for i, d in enumerate(o["dilations"]):
            f = o["nb_filters"][i] if isinstance(o["nb_filters"], list) else o["nb_filters"]
            plan.append((d, f, f != c))
            c = f
    return plan


def act(name, x):
    return gen_golden.act_torch(name or "linear", torch.from_numpy(np.ascontiguousarray(x))).numpy()


def conv(x, kernel, bias, d, padding):
    """Conv1D, stride 1, dilation d: causal pads d(k-1) zeros on the left; same pads
    floor(d(k-1)/2) on the left and the rest on the right."""
    k = kernel.shape[0]
    total = d * (k - 1)
    left = total if padding == "causal" else total // 2
    xp = np.pad(x, ((left, total - left), (0, 0)))
    n = x.shape[0]
    y = np.zeros((n, kernel.shape[2])) + bias
    for j in range(k):
        y += xp[j * d:j * d + n] @ kernel[j]
    return y


def norm(x, w, kind):
    eps = 1e-3  # Keras's default for both
    if kind == "batch":
        gamma, beta, mean, var = w
        return (x - mean) / np.sqrt(var + eps) * gamma + beta
    gamma, beta = w
    m = x.mean(axis=-1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * gamma + beta


def tcn_forward(config, weights, x):
    """The TCN on one input x (steps, channels); weights: one dict per residual block."""
    o = options(config)
    if o["go_backwards"]:
        raise ValueError("go_backwards: not modelled here (convd refuses it)")
    kind = "batch" if o["use_batch_norm"] else "layer" if o["use_layer_norm"] else None
    a = o["activation"]
    x = np.asarray(x, dtype=np.float64)
    plan = block_plan(config, x.shape[1])
    assert len(plan) == len(weights), (len(plan), len(weights))
    skips = []
    for (d, f, has_match), w in zip(plan, weights):
        assert has_match == ("match" in w), "a matching conv where the channels do not change"
        x1 = x
        for k in (0, 1):
            x1 = conv(x1, *w["conv%d" % k], d, o["padding"])
            if kind:
                x1 = norm(x1, w["norm%d" % k], kind)
            x1 = act(a, x1)  # then SpatialDropout1D: nothing at inference
        x1 = act(a, x1)  # Act_Conv_Blocks
        x2 = conv(x, *w["match"], 1, "same") if has_match else x
        x = act(a, x2 + x1)  # Act_Res_Block
        skips.append(x1)
    if o["use_skip_connections"]:
        x = sum(skips)
    if not o["return_sequences"]:
        x = x[-1] if o["padding"] == "causal" else x[x.shape[0] // 2]
    return x


def weight_norm(v, g):
    """tensorflow-addons' WeightNormalization: g * v / |v|, the norm over all but the last
    axis (tf.nn.l2_normalize, epsilon 1e-12)."""
    v = np.asarray(v, dtype=np.float64)
    n = np.sqrt(np.maximum((v ** 2).sum(axis=(0, 1)), 1e-12))
    return v / n * np.asarray(g, dtype=np.float64)


def _f64(d):
    return np.asarray(d, dtype=np.float64)


def n_blocks(config):
    o = options(config)
    return o["nb_stacks"] * len(o["dilations"])


def keras3_weights(group, config):
    """Keras 3's layout under the TCN's group (layers/tcn): residual_block_<b>/conv1D_0/vars/0,
    ..., the norm layers under batch_norm_layers/batch_normalization[_1] (layer_norm_layers/
    layer_normalization[_1]), or, as keras-tcn before 3.5.5 left them, as
    batch_normalization_<N> in the order of N."""
    o = options(config)
    out = []
    for b in range(n_blocks(config)):
        blk = group["residual_block_%d" % b]
        w = {}
        for k in (0, 1):
            v = blk["conv1D_%d/vars" % k]
            w["conv%d" % k] = (_f64(v["0"]), _f64(v["1"]))
        if len(blk.get("matching_conv1D/vars", {})) > 0:
            v = blk["matching_conv1D/vars"]
            w["match"] = (_f64(v["0"]), _f64(v["1"]))
        if o["use_batch_norm"] or o["use_layer_norm"]:
            lst, stem = (("batch_norm_layers", "batch_normalization") if o["use_batch_norm"]
                         else ("layer_norm_layers", "layer_normalization"))
            if lst in blk:
                groups = [blk["%s/%s" % (lst, stem)], blk["%s/%s_1" % (lst, stem)]]
            else:
                found = sorted((int(m.group(1) or 0), n) for n in blk
                               for m in [re.fullmatch(stem + r"(?:_(\d+))?", n)] if m)
                groups = [blk[n] for _, n in found]
            for k in (0, 1):
                v = groups[k]["vars"]
                w["norm%d" % k] = [_f64(v[str(i)]) for i in range(len(v))]
        out.append(w)
    return out


def keras2_weights(group, names, config):
    """Keras 2's layout: the layer's weight_names, [model/]tcn/residual_block_<b>/<scope>/<var>:0
    with the scopes keras-tcn opens (conv1D_<k>, matching_conv1D, norm_<k>); tensorflow-addons'
    weight normalization adds g (and initialized, and a data_dep_init copy) under conv1D_<k>."""
    o = options(config)
    by = {}
    for n in names:
        parts = n.split("/")
        if "data_dep_init" in parts:
            continue
        b = next(int(p[15:]) for p in parts if re.fullmatch(r"residual_block_\d+", p))
        scope = next(p for p in reversed(parts[:-1])
                     if p in ("conv1D_0", "conv1D_1", "matching_conv1D", "norm_0", "norm_1"))
        by[(b, scope, parts[-1].split(":")[0])] = _f64(group[n])
    out = []
    for b in range(n_blocks(config)):
        w = {}
        for k in (0, 1):
            kern = by[(b, "conv1D_%d" % k, "kernel")]
            if o["use_weight_norm"]:
                if (b, "conv1D_%d" % k, "initialized") in by:
                    assert by[(b, "conv1D_%d" % k, "initialized")] != 0
                kern = weight_norm(kern, by[(b, "conv1D_%d" % k, "g")])
            w["conv%d" % k] = (kern, by[(b, "conv1D_%d" % k, "bias")])
            if o["use_batch_norm"]:
                w["norm%d" % k] = [by[(b, "norm_%d" % k, v)]
                                   for v in ("gamma", "beta", "moving_mean", "moving_variance")]
            elif o["use_layer_norm"]:
                w["norm%d" % k] = [by[(b, "norm_%d" % k, v)] for v in ("gamma", "beta")]
        if (b, "matching_conv1D", "kernel") in by:
            w["match"] = (by[(b, "matching_conv1D", "kernel")], by[(b, "matching_conv1D", "bias")])
        out.append(w)
    return out
