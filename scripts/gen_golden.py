#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Golden test vectors for convd's Conv1D family, from an independent implementation.

Reference outputs come from PyTorch (torch.nn.functional.conv1d / conv_transpose1d) in
float64, mapped onto Keras 3's semantics exactly as ../shared/KERAS_SPEC.md states them
(padding computed here and applied with F.pad; depthwise = grouped conv with groups=C;
separable = depthwise then 1x1). Every case is also recomputed by a naive numpy loop written
straight from the spec's formulas, and the two must agree (assert), as must the output
lengths and the spec's length formulas.

Usage (from the top of the tree; Debian's python3 with python3-torch, numpy):

    /usr/bin/python3 scripts/gen_golden.py            # writes tests/data/golden/*.txt
    /usr/bin/python3 scripts/gen_golden.py --out DIR  # elsewhere
    /usr/bin/python3 scripts/gen_golden.py --check    # regenerate in memory, compare

The output is deterministic (fixed seed): running it again rewrites identical files.

File format (one file per layer kind: conv1d.txt, conv1d_transpose.txt,
separable_conv1d.txt, depthwise_conv1d.txt). Plain ASCII, whitespace separated, readable
with fscanf alone:

    # comment lines (only at the top of the file)
    case <index> key=value key=value ...          one line, at most 1000 characters
    var <i> <rank> <d0> [<d1> [<d2>]] v v v ...   vars/<i> in Keras's layout, C order
    input <frames> <channels> v v v ...           the input, in the case's data_format layout
    offline <frames> <channels> v v v ...         what cvd_layer_forward() must return
    stream <frames> <channels> v v v ...          what process()+flush() must return
    end
    ...
    total <number of cases in this file>

The header names every Keras argument of the layer with Keras's names and Keras's string
values, in this order:
    class_name   Conv1D | Conv1DTranspose | SeparableConv1D | DepthwiseConv1D
    filters      (not for DepthwiseConv1D)
    kernel_size strides padding
    output_padding   (Conv1DTranspose only; an integer or null for None)
    data_format dilation_rate
    groups           (Conv1D only)
    depth_multiplier (SeparableConv1D, DepthwiseConv1D)
    activation use_bias (true|false)
followed by in_channels=C, n=<input frames> and offline_only=0|1. offline_only=1 (softmax
and log_softmax with channels_first, which act over the whole time axis) means the layer
cannot stream: such a case has no `stream` line.

Tensors are stored without the batch axis in the layer's data_format:
channels_last x[t][c] (frame after frame), channels_first x[c][t] (channel after channel).
Weights and inputs are float32 values (printed with %.9g, so they read back exactly); the
outputs are float64 results rounded to %.9g.

The stream reference equals the offline output except for padding="same" with strides > 1 on
Conv1D, DepthwiseConv1D and SeparableConv1D: a stream uses the steady-state left pad
max(0, floor((ek-s)/2)), which is the offline result of the input zero-extended at the end
to a multiple of s (same output count, ceil(n/s)).
"""

import argparse
import io
import math
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611

ACTIVATIONS = [
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "sigmoid",
    "hard_sigmoid", "tanh", "hard_tanh", "softplus", "softsign", "silu", "swish",
    "hard_silu", "hard_swish", "mish", "exponential", "log_sigmoid", "tanh_shrink",
    "hard_shrink", "soft_shrink", "squareplus", "softmax", "log_softmax",
]
AXIS_ACTIVATIONS = ("softmax", "log_softmax")

KINDS = [
    # class name, file stem
    ("Conv1D", "conv1d"),
    ("Conv1DTranspose", "conv1d_transpose"),
    ("SeparableConv1D", "separable_conv1d"),
    ("DepthwiseConv1D", "depthwise_conv1d"),
]

# ---- shapes and padding, straight from the spec -----------------------------------------


def ceil_div(a, b):
    return -(-a // b)


def ek_of(cfg):
    return cfg["dilation_rate"] * (cfg["kernel_size"] - 1) + 1


def conv_pads(cfg, n):
    """(left, right, output length) for Conv1D / Depthwise / Separable."""
    k, s, d = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    ek = d * (k - 1) + 1
    p = cfg["padding"]
    if p == "valid":
        length = (n - ek) // s + 1
        return 0, 0, length
    if p == "same":
        total = max(0, (ceil_div(n, s) - 1) * s + ek - n)
        left = total // 2
        return left, total - left, ceil_div(n, s)
    if p == "causal":
        return d * (k - 1), 0, ceil_div(n, s)
    raise ValueError(p)


def transpose_geometry(cfg, n):
    """(c_left, output length L) for Conv1DTranspose."""
    s = cfg["strides"]
    ek = ek_of(cfg)
    op = cfg["output_padding"]
    if cfg["padding"] == "valid":
        if op is None:
            op = max(ek, s) - ek
        return 0, (n - 1) * s + ek + op
    assert cfg["padding"] == "same"
    if op is None:
        return max((ek - s) // 2, 0), n * s
    return max((ek - ek % 2 - op) // 2, 0), (n - 1) * s + ek % 2 + op


def out_channels(cfg, c_in):
    if cfg["class_name"] == "DepthwiseConv1D":
        return c_in * cfg["depth_multiplier"]
    return cfg["filters"]


def var_shapes(cfg, c_in):
    k = cfg["kernel_size"]
    kind = cfg["class_name"]
    if kind == "Conv1D":
        shapes = [(k, c_in // cfg["groups"], cfg["filters"])]
    elif kind == "Conv1DTranspose":
        shapes = [(k, cfg["filters"], c_in)]
    elif kind == "DepthwiseConv1D":
        shapes = [(k, c_in, cfg["depth_multiplier"])]
    else:
        dm = cfg["depth_multiplier"]
        shapes = [(k, c_in, dm), (1, c_in * dm, cfg["filters"])]
    if cfg["use_bias"]:
        shapes.append((out_channels(cfg, c_in),))
    return shapes


# ---- activations --------------------------------------------------------------------------


def act_torch(name, y):
    """y: float64 tensor in the output's own layout (last axis = the softmax axis)."""
    if name == "linear":
        return y
    if name == "relu":
        return F.relu(y)
    if name == "relu6":
        return F.relu6(y)
    if name == "leaky_relu":
        return F.leaky_relu(y, 0.2)
    if name == "elu":
        return F.elu(y)
    if name == "selu":
        return F.selu(y)
    if name == "celu":
        return F.celu(y, 1.0)
    if name == "gelu":
        return F.gelu(y)  # exact (erf) form
    if name == "sigmoid":
        return torch.sigmoid(y)
    if name == "hard_sigmoid":
        return F.hardsigmoid(y)  # relu6(x+3)/6 == clip(x/6+0.5, 0, 1)
    if name == "tanh":
        return torch.tanh(y)
    if name == "hard_tanh":
        return F.hardtanh(y)
    if name == "softplus":
        return F.softplus(y, beta=1.0, threshold=1000.0)
    if name == "softsign":
        return F.softsign(y)
    if name in ("silu", "swish"):
        return F.silu(y)
    if name in ("hard_silu", "hard_swish"):
        return F.hardswish(y)
    if name == "mish":
        return F.mish(y)
    if name == "exponential":
        return torch.exp(y)
    if name == "log_sigmoid":
        return F.logsigmoid(y)
    if name == "tanh_shrink":
        return F.tanhshrink(y)
    if name == "hard_shrink":
        return F.hardshrink(y, 0.5)
    if name == "soft_shrink":
        return F.softshrink(y, 0.5)
    if name == "squareplus":
        return (y + torch.sqrt(y * y + 4.0)) / 2.0
    if name == "softmax":
        return F.softmax(y, dim=-1)
    if name == "log_softmax":
        return F.log_softmax(y, dim=-1)
    raise ValueError(name)


def act_naive(name, y):
    """The spec's formulas, element by element (numpy float64, last axis for softmax)."""
    if name in AXIS_ACTIVATIONS:
        out = np.empty_like(y)
        for idx in np.ndindex(*y.shape[:-1]):
            row = y[idx]
            m = max(row)
            e = [math.exp(v - m) for v in row]
            ssum = sum(e)
            if name == "softmax":
                out[idx] = [v / ssum for v in e]
            else:
                out[idx] = [v - m - math.log(ssum) for v in row]
        return out

    def sp(x):  # softplus, overflow-safe
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))

    def hsig(x):
        return min(max(x / 6.0 + 0.5, 0.0), 1.0)

    def sig(x):
        return 1.0 / (1.0 + math.exp(-x))

    f = {
        "linear": lambda x: x,
        "relu": lambda x: max(x, 0.0),
        "relu6": lambda x: min(max(x, 0.0), 6.0),
        "leaky_relu": lambda x: max(x, 0.2 * x),
        "elu": lambda x: x if x > 0 else math.exp(x) - 1.0,
        "selu": lambda x: 1.0507009873554805
        * (x if x > 0 else 1.6732632423543772 * (math.exp(x) - 1.0)),
        "celu": lambda x: max(0.0, x) + min(0.0, math.exp(x) - 1.0),
        "gelu": lambda x: 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))),
        "sigmoid": sig,
        "hard_sigmoid": hsig,
        "tanh": math.tanh,
        "hard_tanh": lambda x: min(max(x, -1.0), 1.0),
        "softplus": sp,
        "softsign": lambda x: x / (1.0 + abs(x)),
        "silu": lambda x: x * sig(x),
        "swish": lambda x: x * sig(x),
        "hard_silu": lambda x: x * hsig(x),
        "hard_swish": lambda x: x * hsig(x),
        "mish": lambda x: x * math.tanh(sp(x)),
        "exponential": math.exp,
        "log_sigmoid": lambda x: -sp(-x),
        "tanh_shrink": lambda x: x - math.tanh(x),
        "hard_shrink": lambda x: x if abs(x) > 0.5 else 0.0,
        "soft_shrink": lambda x: x - 0.5 if x > 0.5 else (x + 0.5 if x < -0.5 else 0.0),
        "squareplus": lambda x: (x + math.sqrt(x * x + 4.0)) / 2.0,
    }[name]
    return np.vectorize(f, otypes=[np.float64])(y)


# ---- reference 1: PyTorch -----------------------------------------------------------------


def forward_torch(cfg, c_in, weights, x_cl, dtype=np.float64):
    """x_cl: (n, C) float64, channels-last. Returns the output in the case's data_format
    layout (channels_last (L, F), channels_first (F, L)), and the pre-activation
    (channels-last) for the threshold checks."""
    kind = cfg["class_name"]
    n = x_cl.shape[0]
    k, s, d = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    x = torch.from_numpy(np.ascontiguousarray(x_cl.T, dtype=dtype)).unsqueeze(0)  # (1, C, n)
    w = [torch.from_numpy(np.asarray(v, dtype=dtype)) for v in weights]
    bias = w[-1] if cfg["use_bias"] else None

    if kind == "Conv1DTranspose":
        c_left, length = transpose_geometry(cfg, n)
        wt = w[0].permute(2, 1, 0).contiguous()  # (k, F, C) -> (C, F, k)
        full = F.conv_transpose1d(x, wt, stride=s, dilation=d)
        assert full.shape[-1] == (n - 1) * s + ek_of(cfg)
        # y[o] = full[o + c_left], zero past the end of full.
        need = c_left + length
        if need > full.shape[-1]:
            full = F.pad(full, (0, need - full.shape[-1]))
        y = full[..., c_left:c_left + length]
        if bias is not None:
            y = y + bias.view(1, -1, 1)
    else:
        left, right, length = conv_pads(cfg, n)
        xp = F.pad(x, (left, right))
        if kind == "Conv1D":
            wt = w[0].permute(2, 1, 0).contiguous()  # (k, C/G, F) -> (F, C/G, k)
            y = F.conv1d(xp, wt, bias=bias, stride=s, dilation=d, groups=cfg["groups"])
        else:
            dm = cfg["depth_multiplier"]
            # (k, C, dm) -> (C, dm, k) -> (C*dm, 1, k): output channel c*dm + m.
            wd = w[0].permute(1, 2, 0).reshape(c_in * dm, 1, k)
            if kind == "DepthwiseConv1D":
                y = F.conv1d(xp, wd, bias=bias, stride=s, dilation=d, groups=c_in)
            else:
                z = F.conv1d(xp, wd, stride=s, dilation=d, groups=c_in)
                wp = w[1][0].T.contiguous().unsqueeze(-1)  # (1, C*dm, F) -> (F, C*dm, 1)
                y = F.conv1d(z, wp, bias=bias)
    y = y[0]  # (F, L)
    assert y.shape[-1] == length, (cfg, n, y.shape, length)
    pre = y.T.numpy().copy()
    if cfg["data_format"] == "channels_last":
        y = y.T
    y = act_torch(cfg["activation"], y)
    return y.contiguous().numpy(), pre


# ---- reference 2: naive loops from the spec's formulas ------------------------------------


def forward_naive(cfg, c_in, weights, x_cl):
    kind = cfg["class_name"]
    n = x_cl.shape[0]
    k, s, d = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    ek = d * (k - 1) + 1
    K = np.asarray(weights[0], dtype=np.float64)
    if kind == "Conv1DTranspose":
        fo = cfg["filters"]
        full = np.zeros(((n - 1) * s + ek, fo))
        for i in range(n):
            for j in range(k):
                for f in range(fo):
                    full[i * s + j * d, f] += sum(x_cl[i, c] * K[j, f, c] for c in range(c_in))
        c_left, length = transpose_geometry(cfg, n)
        y = np.zeros((length, fo))
        for o in range(length):
            if o + c_left < full.shape[0]:
                y[o] = full[o + c_left]
    else:
        left, right, length = conv_pads(cfg, n)
        xp = np.concatenate([np.zeros((left, c_in)), x_cl, np.zeros((right, c_in))])
        if kind == "Conv1D":
            fo, g_n = cfg["filters"], cfg["groups"]
            cg, fg = c_in // g_n, fo // g_n
            y = np.zeros((length, fo))
            for o in range(length):
                for f in range(fo):
                    g = f // fg
                    acc = 0.0
                    for j in range(k):
                        for c in range(cg):
                            acc += xp[o * s + j * d, g * cg + c] * K[j, c, f]
                    y[o, f] = acc
        else:
            dm = cfg["depth_multiplier"]
            y = np.zeros((length, c_in * dm))
            for o in range(length):
                for c in range(c_in):
                    for m in range(dm):
                        y[o, c * dm + m] = sum(
                            xp[o * s + j * d, c] * K[j, c, m] for j in range(k))
            if kind == "SeparableConv1D":
                P = np.asarray(weights[1], dtype=np.float64)[0]
                y = np.array([[sum(y[o, q] * P[q, f] for q in range(c_in * dm))
                               for f in range(cfg["filters"])] for o in range(length)])
                y = y.reshape(length, cfg["filters"])
    if cfg["use_bias"]:
        y = y + np.asarray(weights[-1], dtype=np.float64)[None, :]
    if cfg["data_format"] == "channels_first":
        y = y.T
    return act_naive(cfg["activation"], np.ascontiguousarray(y))


# ---- case generation ----------------------------------------------------------------------


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def divisors(m):
    return [v for v in range(1, m + 1) if m % v == 0]


def pick_s_d(rng, kind, allow_both):
    mode = rng.choice(["plain", "strided", "strided", "dilated", "dilated"]
                      + (["both", "both"] if allow_both else []))
    s = d = 1
    if mode in ("strided", "both"):
        s = rng.choice([2, 2, 3, 3, 4])
    if mode in ("dilated", "both"):
        d = rng.choice([2, 2, 3])
    return s, d


def random_case(rng, kind, activation, data_format):
    """A random valid configuration for `kind`; returns (cfg, in_channels, n)."""
    while True:
        cfg = {"class_name": kind}
        if kind == "Conv1D":
            c_in = rng.randint(1, 8)
            groups = rng.choice(divisors(c_in)) if rng.random() < 0.45 else 1
            filters = groups * rng.randint(1, max(1, 8 // groups))
            s, d = pick_s_d(rng, kind, False)
            padding = rng.choice(["valid", "same", "same", "causal"])
        elif kind == "Conv1DTranspose":
            c_in = rng.randint(1, 8)
            filters = rng.randint(1, 8)
            s, d = pick_s_d(rng, kind, False)
            padding = rng.choice(["valid", "same"])
        else:
            c_in = rng.randint(1, 8)
            dm = rng.choice([1, 1, 2, 3]) if c_in <= 4 else rng.choice([1, 1, 2])
            filters = rng.randint(1, 8)
            s, d = pick_s_d(rng, kind, True)
            padding = rng.choice(["valid", "same", "same"])
        k = rng.choice([1, 2, 3, 3, 4, 5, 5, 6, 7])
        cfg["filters"] = None
        if kind != "DepthwiseConv1D":
            cfg["filters"] = filters
        cfg["kernel_size"] = k
        cfg["strides"] = s
        cfg["padding"] = padding
        if kind == "Conv1DTranspose":
            cfg["output_padding"] = None if rng.random() < 0.5 else rng.randint(0, s - 1)
        cfg["data_format"] = data_format
        cfg["dilation_rate"] = d
        if kind == "Conv1D":
            cfg["groups"] = groups
        if kind in ("SeparableConv1D", "DepthwiseConv1D"):
            cfg["depth_multiplier"] = dm
        cfg["activation"] = activation
        cfg["use_bias"] = rng.random() < 0.75
        ek = ek_of(cfg)
        n_max = 40 if kind != "Conv1DTranspose" else max(1, min(40, 96 // s))
        if padding == "valid" and kind != "Conv1DTranspose":
            if ek > n_max:
                continue
            n = rng.randint(ek, n_max)
        else:
            n = rng.randint(1, n_max)
        return cfg, c_in, n


def edge_cases(kind):
    """Hand-picked configurations: (overrides, in_channels, n)."""
    base = {"class_name": kind, "filters": 3, "kernel_size": 3, "strides": 1,
            "padding": "same", "data_format": "channels_last", "dilation_rate": 1,
            "activation": "linear", "use_bias": True}
    if kind == "Conv1D":
        base["groups"] = 1
    if kind == "Conv1DTranspose":
        base["output_padding"] = None
    if kind in ("SeparableConv1D", "DepthwiseConv1D"):
        base["depth_multiplier"] = 2
    if kind == "DepthwiseConv1D":
        base["filters"] = None
    out = []

    def add(c_in, n, **kw):
        cfg = dict(base)
        cfg.update(kw)
        out.append((cfg, c_in, n))

    pads = ["valid", "same", "causal"] if kind == "Conv1D" else ["valid", "same"]
    for p in pads:
        for df in ("channels_last", "channels_first"):
            # n = 1 (valid needs kernel_size 1 for that)
            add(2, 1, padding=p, data_format=df, kernel_size=1 if p == "valid" else 3,
                activation="tanh")
            # kernel_size 1, longer input
            add(3, 9, padding=p, data_format=df, kernel_size=1, activation="relu")
    if kind != "Conv1DTranspose":
        # valid output length exactly 1: n = ek, and strided n in [ek, ek+s-1]
        add(2, 5, padding="valid", kernel_size=5, activation="sigmoid")
        add(2, 7, padding="valid", kernel_size=3, dilation_rate=3, activation="elu")
        add(3, 6, padding="valid", kernel_size=4, strides=3, activation="gelu",
            data_format="channels_first")
        add(1, 4, padding="valid", kernel_size=4, strides=2, activation="softmax",
            data_format="channels_first")
        # same, strided, n < s and n = 1
        add(2, 1, padding="same", kernel_size=4, strides=3, activation="selu")
        add(2, 2, padding="same", kernel_size=5, strides=4, activation="mish")
        # strided same: n mod s = 0, 1, 2 for k=5, s=3 (the spec's example) and even/odd
        # total padding
        for n in (7, 8, 9, 10):
            add(2, n, padding="same", kernel_size=5, strides=3, activation="linear")
        for n in (10, 11):
            add(2, n, padding="same", kernel_size=4, strides=2, activation="relu6")
        for n in (13, 14, 15, 16):
            add(3, n, padding="same", kernel_size=6, strides=4, activation="hard_silu",
                data_format="channels_first" if n % 2 else "channels_last")
        if kind == "Conv1D":
            add(4, 12, padding="causal", kernel_size=3, strides=2, groups=2, filters=4,
                activation="leaky_relu")
            add(6, 10, padding="same", kernel_size=3, groups=3, filters=6,
                activation="log_softmax", data_format="channels_first")
        else:
            add(3, 13, padding="same", kernel_size=3, strides=2, dilation_rate=2,
                activation="silu")
            add(2, 20, padding="valid", kernel_size=3, strides=3, dilation_rate=3,
                activation="softplus", data_format="channels_first")
    else:
        # same, even ek, op = 0, n = 1: output length 0
        add(2, 1, padding="same", kernel_size=2, strides=2, output_padding=0,
            activation="relu")
        add(2, 1, padding="same", kernel_size=4, strides=3, output_padding=0,
            activation="linear", data_format="channels_first")
        add(2, 1, padding="same", kernel_size=2, dilation_rate=3, strides=1,
            output_padding=0, activation="tanh")  # ek = 4
        # same, odd/even ek, every op
        for op in (0, 1, 2):
            add(3, 5, padding="same", kernel_size=4, strides=3, output_padding=op,
                activation="hard_tanh")
            add(3, 5, padding="valid", kernel_size=3, strides=3, output_padding=op,
                activation="softsign", data_format="channels_first")
        add(2, 4, padding="same", kernel_size=5, strides=2, activation="celu")
        add(2, 4, padding="same", kernel_size=1, strides=4, activation="squareplus")
        add(2, 4, padding="valid", kernel_size=2, strides=4, activation="exponential")
        add(2, 6, padding="same", kernel_size=3, dilation_rate=2, activation="softmax",
            data_format="channels_first")
        add(4, 6, padding="valid", kernel_size=3, dilation_rate=3, activation="log_softmax")
    return out


def make_weights(rng_np, cfg, c_in):
    shapes = var_shapes(cfg, c_in)
    gain = float(rng_np.choice([0.7, 1.0, 1.5, 2.5]))
    if cfg["activation"] == "exponential":
        gain = min(gain, 1.5)
    ws = []
    for shp in shapes:
        if len(shp) == 1:
            ws.append(f32(rng_np.normal(0.0, 0.4, size=shp)))
        else:
            if cfg["class_name"] == "Conv1DTranspose":
                fan_in = shp[0] * shp[2]
            else:
                fan_in = shp[0] * shp[1]
            if cfg["class_name"] == "SeparableConv1D" and shp[0] == 1 and len(ws) == 1:
                fan_in = shp[1]
            ws.append(f32(rng_np.normal(0.0, gain / math.sqrt(fan_in), size=shp)))
    return ws


def stream_reference(cfg, c_in, weights, x_cl):
    """What process()+flush() must produce (see the module doc)."""
    s, n = cfg["strides"], x_cl.shape[0]
    if (cfg["class_name"] != "Conv1DTranspose" and cfg["padding"] == "same" and s > 1
            and n % s != 0):
        n2 = ceil_div(n, s) * s
        xz = np.concatenate([x_cl, np.zeros((n2 - n, c_in))])
        y, pre = forward_torch(cfg, c_in, weights, xz)
        # The steady-state left pad is what that offline run used.
        ek = ek_of(cfg)
        left, _, length = conv_pads(cfg, n2)
        assert left == max(0, (ek - s) // 2)
        assert length == ceil_div(n, s)
        return y, pre
    return forward_torch(cfg, c_in, weights, x_cl)


def near_threshold(cfg, pre):
    """hard_shrink jumps at |x| = 0.5: keep pre-activations away from it so float32 cannot
    land on the other side."""
    if cfg["activation"] != "hard_shrink":
        return False
    return bool(np.any(np.abs(np.abs(pre) - 0.5) < 1e-3))


def build_cases(kind, count, rng, rng_np):
    cases = []
    specs = []
    # Activations cycle so that each appears count/27 times per kind; the data format
    # alternates between cycles so softmax/log_softmax land in both.
    for i in range(count):
        act = ACTIVATIONS[i % len(ACTIVATIONS)]
        df = ["channels_last", "channels_first"][(i % len(ACTIVATIONS) + i // len(ACTIVATIONS)) % 2]
        specs.append(("random", act, df))
    for cfg, c_in, n in edge_cases(kind):
        specs.append(("edge", cfg, c_in, n))
    for spec in specs:
        for _attempt in range(100):
            if spec[0] == "random":
                cfg, c_in, n = random_case(rng, kind, spec[1], spec[2])
            else:
                cfg, c_in, n = dict(spec[1]), spec[2], spec[3]
            ws = make_weights(rng_np, cfg, c_in)
            x = f32(rng_np.normal(0.0, 1.0, size=(n, c_in)))
            y_off, pre_off = forward_torch(cfg, c_in, ws, x)
            y_str, pre_str = stream_reference(cfg, c_in, ws, x)
            if near_threshold(cfg, pre_off) or near_threshold(cfg, pre_str):
                continue
            break
        else:
            raise RuntimeError("could not draw a case away from thresholds")
        offline_only = (cfg["activation"] in AXIS_ACTIVATIONS
                        and cfg["data_format"] == "channels_first")
        cases.append({"cfg": cfg, "c_in": c_in, "n": n, "weights": ws, "x": x,
                      "offline": y_off, "stream": None if offline_only else y_str,
                      "offline_only": offline_only})
    return cases


# ---- checks -------------------------------------------------------------------------------


def check_case(case):
    cfg, c_in, n = case["cfg"], case["c_in"], case["n"]
    f_out = out_channels(cfg, c_in)
    if cfg["class_name"] == "Conv1DTranspose":
        c_left, length = transpose_geometry(cfg, n)
        # Conv1DTranspose is the adjoint of a conv from L frames to n frames with left pad
        # c_left: with same padding, that pad is the usual floor(total/2) of such a conv.
        s, ek = cfg["strides"], ek_of(cfg)
        if cfg["padding"] == "same":
            total = max(0, (n - 1) * s + ek - length)
            assert c_left == total // 2, (cfg, n)
            assert (length + total - ek) // s + 1 == n, (cfg, n)
        assert cfg["padding"] in ("valid", "same")
        assert cfg["output_padding"] is None or cfg["output_padding"] < cfg["strides"]
    else:
        length = conv_pads(cfg, n)[2]
        assert cfg["padding"] != "causal" or cfg["class_name"] == "Conv1D"
    if cfg["class_name"] in ("Conv1D", "Conv1DTranspose"):
        assert cfg["strides"] == 1 or cfg["dilation_rate"] == 1
    if cfg["class_name"] == "Conv1D":
        assert c_in % cfg["groups"] == 0 and cfg["filters"] % cfg["groups"] == 0
    assert length >= 0
    if cfg["padding"] == "valid" and cfg["class_name"] != "Conv1DTranspose":
        assert length >= 1
    want_shape = (length, f_out) if cfg["data_format"] == "channels_last" else (f_out, length)
    assert case["offline"].shape == want_shape, (cfg, case["offline"].shape, want_shape)
    if case["stream"] is not None:
        assert case["stream"].shape == want_shape, (cfg, case["stream"].shape, want_shape)
    # Independent recomputation.
    naive = forward_naive(cfg, c_in, case["weights"], case["x"])
    assert naive.shape == case["offline"].shape
    scale = max(1.0, float(np.max(np.abs(naive))) if naive.size else 1.0)
    err = float(np.max(np.abs(naive - case["offline"]))) if naive.size else 0.0
    assert err <= 1e-12 * scale, (cfg, c_in, n, err)


def float32_error(case):
    """Max |float32 torch - float64 reference| / max(1, max|ref|): what a float32
    implementation can expect (reported, to justify the C test's tolerance)."""
    ref = case["offline"]
    if ref.size == 0:
        return 0.0
    y32, _ = forward_torch(case["cfg"], case["c_in"], case["weights"], case["x"],
                           dtype=np.float32)
    return float(np.max(np.abs(y32.astype(np.float64) - ref))) / max(
        1.0, float(np.max(np.abs(ref))))


def check_coverage(all_cases):
    acts = {}
    for c in all_cases:
        cfg = c["cfg"]
        acts.setdefault(cfg["activation"], set()).add(cfg["data_format"])
    counts = {a: sum(1 for c in all_cases if c["cfg"]["activation"] == a) for a in ACTIVATIONS}
    for a in ACTIVATIONS:
        assert counts[a] >= 8, (a, counts[a])
        assert acts[a] == {"channels_last", "channels_first"}, (a, acts[a])
    assert len(all_cases) >= 320
    for kind, _ in KINDS:
        cs = [c for c in all_cases if c["cfg"]["class_name"] == kind]
        cfgs = [c["cfg"] for c in cs]

        def any_(pred):
            return any(pred(c) for c in cs)
        for df in ("channels_last", "channels_first"):
            assert any(cf["data_format"] == df for cf in cfgs)
        pads = ["valid", "same"] + (["causal"] if kind == "Conv1D" else [])
        for p in pads:
            for df in ("channels_last", "channels_first"):
                assert any(cf["padding"] == p and cf["data_format"] == df for cf in cfgs), \
                    (kind, p, df)
            assert any(cf["padding"] == p and cf["strides"] > 1 for cf in cfgs), (kind, p)
            assert any(cf["padding"] == p and cf["dilation_rate"] > 1 for cf in cfgs), (kind, p)
        assert any(cf["use_bias"] for cf in cfgs) and any(not cf["use_bias"] for cf in cfgs)
        assert any_(lambda c: c["n"] == 1)
        assert any(cf["kernel_size"] == 1 for cf in cfgs)
        if kind == "Conv1D":
            assert sum(1 for cf in cfgs if cf["groups"] > 1) >= 10
        if kind in ("SeparableConv1D", "DepthwiseConv1D"):
            assert sum(1 for cf in cfgs if cf["depth_multiplier"] > 1) >= 10
            assert sum(1 for cf in cfgs if cf["strides"] > 1 and cf["dilation_rate"] > 1) >= 5
        if kind == "Conv1DTranspose":
            for p in ("valid", "same"):
                assert any(cf["padding"] == p and cf["output_padding"] is None for cf in cfgs)
                assert any(cf["padding"] == p and cf["output_padding"] is not None
                           and cf["output_padding"] > 0 for cf in cfgs)
                assert any(cf["padding"] == p and cf["output_padding"] == 0 for cf in cfgs)
            assert any_(lambda c: c["offline"].size == 0 and c["cfg"]["padding"] == "same")
            assert any_(lambda c: c["cfg"]["padding"] == "same" and ek_of(c["cfg"]) % 2 == 0
                        and c["cfg"]["output_padding"] is None and c["cfg"]["strides"] > 1)
        else:
            # valid with output length exactly 1, with and without strides
            assert any_(lambda c: c["cfg"]["padding"] == "valid"
                        and conv_pads(c["cfg"], c["n"])[2] == 1 and c["cfg"]["strides"] == 1)
            assert any_(lambda c: c["cfg"]["padding"] == "valid"
                        and conv_pads(c["cfg"], c["n"])[2] == 1 and c["cfg"]["strides"] > 1)
            # strided same: several n mod s, odd and even total padding
            mods = set()
            parity = set()
            for c in cs:
                cf = c["cfg"]
                if cf["padding"] == "same" and cf["strides"] > 1:
                    s = cf["strides"]
                    mods.add((s, c["n"] % s))
                    total = max(0, (ceil_div(c["n"], s) - 1) * s + ek_of(cf) - c["n"])
                    parity.add(total % 2)
            for s in (2, 3, 4):
                for r in range(s):
                    assert (s, r) in mods, (kind, s, r, sorted(mods))
            assert parity == {0, 1}, (kind, parity)
            # the stream reference really differs from the offline one somewhere
            assert any_(lambda c: c["stream"] is not None and c["offline"].shape[0] > 0
                        and not np.allclose(c["stream"], c["offline"]))
    assert any(c["offline_only"] for c in all_cases)


# ---- output -------------------------------------------------------------------------------


def fmt_vals(a):
    return " ".join("%.9g" % v for v in np.asarray(a, dtype=np.float64).ravel())


def header(index, case):
    cfg = case["cfg"]
    kind = cfg["class_name"]
    keys = ["class_name"]
    if kind != "DepthwiseConv1D":
        keys.append("filters")
    keys += ["kernel_size", "strides", "padding"]
    if kind == "Conv1DTranspose":
        keys.append("output_padding")
    keys += ["data_format", "dilation_rate"]
    if kind == "Conv1D":
        keys.append("groups")
    if kind in ("SeparableConv1D", "DepthwiseConv1D"):
        keys.append("depth_multiplier")
    keys += ["activation", "use_bias"]

    def val(v):
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        return str(v)
    parts = ["%s=%s" % (key, val(cfg[key])) for key in keys]
    parts += ["in_channels=%d" % case["c_in"], "n=%d" % case["n"],
              "offline_only=%d" % int(case["offline_only"])]
    line = "case %d %s" % (index, " ".join(parts))
    assert len(line) < 1000
    return line


def tensor_line(tag, a, data_format):
    a = np.asarray(a)
    if data_format == "channels_last":
        frames, chans = a.shape
    else:
        chans, frames = a.shape
    return "%s %d %d %s" % (tag, frames, chans, fmt_vals(a)) if a.size else \
        "%s %d %d" % (tag, frames, chans)


def write_kind(stem, kind, cases):
    out = io.StringIO()
    out.write("# convd golden vectors for %s, written by scripts/gen_golden.py (seed %d).\n"
              % (kind, SEED))
    out.write("# Format: see the top of scripts/gen_golden.py. Do not edit by hand.\n")
    for i, c in enumerate(cases):
        df = c["cfg"]["data_format"]
        out.write(header(i, c) + "\n")
        for vi, w in enumerate(c["weights"]):
            out.write("var %d %d %s %s\n" % (vi, w.ndim, " ".join(str(v) for v in w.shape),
                                             fmt_vals(w)))
        x = c["x"] if df == "channels_last" else c["x"].T
        out.write(tensor_line("input", x, df) + "\n")
        out.write(tensor_line("offline", c["offline"], df) + "\n")
        if c["stream"] is not None:
            out.write(tensor_line("stream", c["stream"], df) + "\n")
        out.write("end\n")
    out.write("total %d\n" % len(cases))
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="output folder (default tests/data/golden)")
    ap.add_argument("--check", action="store_true",
                    help="compare with the files on disk instead of writing")
    args = ap.parse_args()
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = args.out or os.path.join(top, "tests", "data", "golden")

    torch.set_default_dtype(torch.float64)
    rng = random.Random(SEED)
    rng_np = np.random.default_rng(SEED)
    per_kind = {"Conv1D": 81, "Conv1DTranspose": 81, "SeparableConv1D": 81,
                "DepthwiseConv1D": 81}
    all_cases = []
    texts = {}
    worst = 0.0
    for kind, stem in KINDS:
        cases = build_cases(kind, per_kind[kind], rng, rng_np)
        for c in cases:
            check_case(c)
            worst = max(worst, float32_error(c))
        all_cases += cases
        texts[stem] = write_kind(stem, kind, cases)
    check_coverage(all_cases)

    total_bytes = sum(len(t) for t in texts.values())
    assert total_bytes < 3_000_000, total_bytes
    status = 0
    for kind, stem in KINDS:
        path = os.path.join(out_dir, stem + ".txt")
        if args.check:
            with open(path) as fh:
                if fh.read() != texts[stem]:
                    print("gen_golden: %s differs from a fresh run" % path, file=sys.stderr)
                    status = 1
        else:
            os.makedirs(out_dir, exist_ok=True)
            with open(path, "w") as fh:
                fh.write(texts[stem])
    for kind, stem in KINDS:
        print("%-16s %3d cases" % (kind, sum(1 for c in all_cases
                                             if c["cfg"]["class_name"] == kind)))
    print("total            %3d cases, %d bytes; worst float32 error %.3g (relative to "
          "max(1, max|y|))" % (len(all_cases), total_bytes, worst))
    return status


if __name__ == "__main__":
    sys.exit(main())
