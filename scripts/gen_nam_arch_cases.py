#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generate .nam test models of NAM's "Linear" and "ConvNet" architectures.

Usage:
    scripts/gen_nam_arch_cases.py [--out tests/data/nam]

Writes, beside gen_nam_cases.py's WaveNet cases (and reading their input_4k.f32):
    linear_*.nam, convnet_*.nam   models in the layout NAM's trainer exports (version,
                                  metadata, architecture, config, weights, sample_rate)
    NAME.out.f32                  scripts/nam_arch_reference.py's output for input_4k.f32
    bad/lstm.nam, bad/linear_*.nam, bad/convnet_*.nam   refusals
Deterministic (fixed seeds): re-running rewrites identical files.  Weights are float32
values written as the nearest doubles, as the trainer writes torch float32 tensors; the
head (ConvNet) or the response (Linear) is scaled so the output peaks near 0.6.
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nam_arch_reference as ref  # noqa: E402


def f32(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32)]


def nam(arch, config, weights, name, extra_meta=None):
    meta = {"name": name, "modeled_by": "convd scripts/gen_nam_arch_cases.py",
            "gear_type": "amp", "loudness": -20.0}
    if extra_meta:
        meta.update(extra_meta)
    return {"version": "0.5.4", "metadata": meta, "architecture": arch, "config": config,
            "weights": f32(weights), "sample_rate": 48000}


def linear_case(rng, R, bias, x, name):
    t = np.arange(R)
    h = rng.standard_normal(R) * np.exp(-t / (R / 5.0)) * 0.3
    h[0] += 0.5
    cfg = {"receptive_field": R, "bias": bias}
    w = list(h) + ([0.01] if bias else [])
    y = ref.linear(cfg, f32(w), x)
    s = 0.6 / np.max(np.abs(y))
    w = list(h * s) + ([0.01 * s] if bias else [])
    return nam("Linear", cfg, w, name)


def convnet_weights(rng, C, dil, bn, groups=1):
    w = []
    for i, d in enumerate(dil):
        ci = 1 if i == 0 else C
        fan = (ci // groups) * 2
        w += list(rng.uniform(-1, 1, C * (ci // groups) * 2) * np.sqrt(3.0 / fan))
        if not bn:
            w += list(rng.uniform(-0.2, 0.2, C))
        else:
            w += list(rng.uniform(-0.3, 0.3, C))      # running_mean
            w += list(rng.uniform(0.2, 1.5, C))       # running_var
            w += list(rng.uniform(0.5, 1.5, C))       # weight
            w += list(rng.uniform(-0.2, 0.2, C))      # bias
            w += [1e-5]                               # eps
    head = list(rng.uniform(-1, 1, C) / np.sqrt(C))
    return w, head, [0.02]


def convnet_case(rng, C, dil, bn, act, x, name, groups=1):
    cfg = {"channels": C, "dilations": dil, "batchnorm": bn, "activation": act}
    if groups != 1:
        cfg["groups"] = groups
    body, head, hb = convnet_weights(rng, C, dil, bn, groups)
    y = ref.convnet(cfg, f32(body + head + hb), x)
    # the output is head . z + hb: scale the head and its bias so it peaks near 0.6
    s = 0.6 / np.max(np.abs(y))
    return nam("ConvNet", cfg, body + [v * s for v in head] + [hb[0] * s], name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data", "nam"))
    a = ap.parse_args()
    out = a.out
    os.makedirs(os.path.join(out, "bad"), exist_ok=True)
    x = np.fromfile(os.path.join(out, "input_4k.f32"), dtype="<f4").astype(np.float64)

    rng = np.random.default_rng(20261206)
    cases = [
        linear_case(rng, 48, True, x, "linear_short_bias"),
        linear_case(rng, 6000, False, x, "linear_long_ir"),
        convnet_case(rng, 8, [1, 2, 4, 8, 16, 32], False, "Tanh", x, "convnet_tanh"),
        convnet_case(rng, 6, [1, 2, 4, 8, 16, 32, 64], True, "ReLU", x, "convnet_bn_relu"),
        convnet_case(rng, 4, [1, 3, 9, 27], True, "Fasttanh", x, "convnet_bn_fasttanh"),
        convnet_case(rng, 5, [2, 4, 8], False, {"type": "LeakyReLU", "negative_slope": 0.05}, x,
                     "convnet_leakyrelu_obj"),
        convnet_case(rng, 4, [1, 2, 4], False,
                     {"type": "PReLU", "negative_slopes": [0.1, 0.2, 0.3, 0.4]}, x,
                     "convnet_prelu"),
    ]
    for m in cases:
        name = m["metadata"]["name"]
        path = os.path.join(out, name + ".nam")
        with open(path, "w") as f:
            json.dump(m, f)
        y = ref.run(m, x)
        y.astype("<f4").tofile(os.path.join(out, name + ".out.f32"))
        print("%-26s %-8s %6d weights, peak %.3f" % (name, m["architecture"], len(m["weights"]),
                                                      np.max(np.abs(y))))

    # refusals
    good_lin = cases[0]
    bad = {}
    bad["lstm"] = {"version": "0.5.4", "architecture": "LSTM",
                   "config": {"input_size": 1, "hidden_size": 2, "num_layers": 1},
                   "weights": [0.0] * 40, "sample_rate": 48000}
    m = json.loads(json.dumps(good_lin))
    m["weights"] = m["weights"][:-2]
    bad["linear_weights_short"] = m
    m = json.loads(json.dumps(good_lin))
    m["config"]["in_channels"] = 2
    bad["linear_in2_out1"] = m
    m = json.loads(json.dumps(cases[2]))
    m["config"]["dilations"] = [1, 0, 4]
    bad["convnet_dilation_0"] = m
    m = json.loads(json.dumps(cases[2]))
    m["config"]["groups"] = 3
    bad["convnet_groups_3"] = m
    m = json.loads(json.dumps(cases[2]))
    m["config"]["activation"] = "Swish"
    bad["convnet_activation"] = m
    for name, m in bad.items():
        with open(os.path.join(out, "bad", name + ".nam"), "w") as f:
            json.dump(m, f)
    print("%d bad files" % len(bad))
    return 0


if __name__ == "__main__":
    sys.exit(main())
