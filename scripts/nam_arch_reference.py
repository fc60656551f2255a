#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Independent reference of Neural Amp Modeler's "Linear" and "ConvNet" architectures.

Usage:
    scripts/nam_arch_reference.py MODEL.nam IN.f32 OUT.f32
    scripts/nam_arch_reference.py --check MODEL.nam IN.f32 EXPECTED.f32 [--tol 1e-5]

IN.f32 / OUT.f32 are raw float32 little-endian mono.  The whole signal is computed offline
with numpy in float64 and written as float32.  Written from reading how
NeuralAmpModelerCore (NAM/linear.cpp, NAM/convnet.cpp, NAM/conv1d.cpp) computes these
models and how NAM's trainer (nam/models/linear.py, nam/models/conv_net.py) exports them;
none of their code is reused.  Debian's /usr/bin/python3 with numpy.

Top level: {"version" (0.5.x..0.7.x), "architecture": "Linear" | "ConvNet", "config",
"weights", "sample_rate", "metadata"}.

Linear
------
config: receptive_field (R), bias (bool), in_channels and out_channels (default 1; NAM
core runs each of min(in, out) channels through the same response and zeroes the others;
this script, like convd, takes in == out only), implementation ("auto"/"direct"/"fft":
how NAM core computes it, not what).
weights: R values, then the bias if bias.  NAM core's rule (its own test: weights
[0.5, -0.25, 0.125] and input [1, 2, 3, 4] give [0.5, 0.75, 1.125, 1.5]):

    y[t] = bias + sum_{m < R} w[m] x[t - m]        x[t < 0] = 0

i.e. the weights are the impulse response, w[0] on the newest sample.  (NAM's trainer
builds Linear as a torch Conv1d, which correlates: trained as it is, its exported weights
would play time-reversed in NAM core.  Files are played as NAM core plays them, here too.)

ConvNet
-------
config: channels (C), dilations (list, one block each), batchnorm (bool), activation (a
name or an object, as WaveNet layers have them), groups (default 1), in_channels and
out_channels (default 1).
Block i (input channels Ci: in_channels for the first, C after): a causal Conv1d of
kernel 2, dilation d_i, Ci -> C in `groups` groups, with bias unless batchnorm:

    z[t] = W[:, :, 0] x[t - d_i] + W[:, :, 1] x[t] (+ b)      (per group)

then, with batchnorm, z = (z - running_mean) / sqrt(running_var + eps) * weight + bias,
then the activation.  The head: y = H z + h (C -> out_channels).
Weights, in order: for each block: conv weight (C, Ci/groups, 2) in C order, conv bias (C)
if not batchnorm; with batchnorm: running_mean (C), running_var (C), weight (C), bias (C),
eps (one value); then the head's weight (out_channels, C) and bias (out_channels).
NAM core prewarms a ConvNet with 1 + sum(dilations) zero samples, so the histories hold
the model's response to silence (biases and batch norm make that nonzero); done here by
running that many zeros first.

Activations are nam_reference.py's (Tanh, Hardtanh, Fasttanh, ReLU, LeakyReLU, PReLU,
Sigmoid, SiLU, Hardswish, LeakyHardtanh, Softsign).
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nam_reference as wn  # noqa: E402  (activations, version check)


class RefError(Exception):
    pass


def _take(w, pos, n, what):
    if pos + n > len(w):
        raise RefError("weights: %s needs %d more values, %d left" % (what, n, len(w) - pos))
    return w[pos:pos + n], pos + n


def check_version(v):
    try:
        wn.parse_version(v)
    except wn.ModelError as e:
        raise RefError(str(e))


def linear(cfg, w, x):
    R = int(cfg["receptive_field"])
    bias = bool(cfg["bias"])
    cin, cout = int(cfg.get("in_channels", 1)), int(cfg.get("out_channels", 1))
    if cin != 1 or cout != 1:
        raise RefError("this script runs mono Linear models")
    if len(w) != R + (1 if bias else 0):
        raise RefError("weights: %d values, Linear needs %d" % (len(w), R + bias))
    h = np.asarray(w[:R], dtype=np.float64)
    b = float(w[R]) if bias else 0.0
    y = np.convolve(x, h)[: len(x)] + b
    return y


def activation(spec, channels):
    try:
        f = wn.make_activation(spec)
    except wn.ModelError as e:
        raise RefError(str(e))
    n = getattr(f, "n_slopes", 1)
    if n not in (1, channels):
        raise RefError("PReLU has %d slopes for %d channels" % (n, channels))
    return f


def convnet(cfg, w, x):
    C = int(cfg["channels"])
    dil = [int(d) for d in cfg["dilations"]]
    bn = bool(cfg["batchnorm"])
    groups = int(cfg.get("groups", 1))
    cin, cout = int(cfg.get("in_channels", 1)), int(cfg.get("out_channels", 1))
    if cin != 1:
        raise RefError("this script runs mono-input ConvNets")
    act = activation(cfg["activation"], C)
    prewarm = 1 + sum(dil)
    T = len(x) + prewarm
    h = np.zeros((1, T))
    h[0, prewarm:] = x
    pos = 0
    for i, d in enumerate(dil):
        ci = cin if i == 0 else C
        if ci % groups or C % groups:
            raise RefError("groups %d do not divide %d -> %d" % (groups, ci, C))
        W, pos = _take(w, pos, C * (ci // groups) * 2, "block %d conv" % i)
        W = np.asarray(W, dtype=np.float64).reshape(C, ci // groups, 2)
        z = np.zeros((C, T))
        og, ig = C // groups, ci // groups
        past = np.zeros((ci, T))
        past[:, d:] = h[:, : T - d]
        for g in range(groups):
            rows = slice(g * og, (g + 1) * og)
            cols = slice(g * ig, (g + 1) * ig)
            z[rows] = W[rows, :, 0] @ past[cols] + W[rows, :, 1] @ h[cols]
        if not bn:
            b, pos = _take(w, pos, C, "block %d bias" % i)
            z += np.asarray(b, dtype=np.float64)[:, None]
        else:
            mean, pos = _take(w, pos, C, "block %d running_mean" % i)
            var, pos = _take(w, pos, C, "block %d running_var" % i)
            gam, pos = _take(w, pos, C, "block %d weight" % i)
            bet, pos = _take(w, pos, C, "block %d bias" % i)
            eps, pos = _take(w, pos, 1, "block %d eps" % i)
            mean, var, gam, bet = (np.asarray(v, dtype=np.float64) for v in (mean, var, gam, bet))
            z = (z - mean[:, None]) / np.sqrt(var[:, None] + float(eps[0])) * gam[:, None] + bet[:, None]
        h = act(z)
    H, pos = _take(w, pos, cout * C, "head weight")
    hb, pos = _take(w, pos, cout, "head bias")
    if pos != len(w):
        raise RefError("weights: %d values, ConvNet uses %d" % (len(w), pos))
    y = np.asarray(H, dtype=np.float64).reshape(cout, C) @ h + np.asarray(hb, dtype=np.float64)[:, None]
    if cout != 1:
        raise RefError("this script writes mono output")
    return y[0, prewarm:]


def weight_count(arch, cfg):
    if arch == "Linear":
        return int(cfg["receptive_field"]) + (1 if cfg["bias"] else 0)
    C, groups = int(cfg["channels"]), int(cfg.get("groups", 1))
    cin, cout = int(cfg.get("in_channels", 1)), int(cfg.get("out_channels", 1))
    n = 0
    for i, _ in enumerate(cfg["dilations"]):
        ci = cin if i == 0 else C
        n += C * (ci // groups) * 2
        n += 4 * C + 1 if cfg["batchnorm"] else C
    return n + cout * C + cout


def run(model, x):
    check_version(model.get("version"))
    arch = model.get("architecture")
    cfg = model["config"]
    w = model["weights"]
    if arch == "Linear":
        return linear(cfg, w, x)
    if arch == "ConvNet":
        return convnet(cfg, w, x)
    raise RefError("architecture %r: this script runs Linear and ConvNet" % arch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    a = ap.parse_args()
    with open(a.model) as f:
        model = json.load(f)
    x = np.fromfile(a.input, dtype="<f4").astype(np.float64)
    y = run(model, x)
    if a.check:
        want = np.fromfile(a.output, dtype="<f4").astype(np.float64)
        err = np.max(np.abs(want - y)) if len(want) == len(y) else np.inf
        print("%s: max abs error %.3g" % (a.model, err))
        return 0 if err <= a.tol else 1
    y.astype("<f4").tofile(a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
