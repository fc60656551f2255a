#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A NAM WaveNet (.nam) written again in Keras's Functional vocabulary, as a .keras file.

Usage (from the top of the tree; Debian's /usr/bin/python3 with numpy and python3-h5py):

    scripts/gen_keras_nam.py [IN.nam [OUT.keras]]

Defaults: ../shared/models/nam/wavenet_a1_standard.nam (NAM's standard model) into
tests/data/keras/nam/wavenet_a1_standard.keras. The graph is the one
scripts/gen_keras_cases.py's wavenet_graph() writes (per layer array: a rechannel 1x1
without bias; per layer a dilated causal Conv1D, or a filter and a gate multiplied, plus the
condition's 1x1 mixin, then the Activation; the residual 1x1 and Add; the activations added
as skips after the previous array's head; a head 1x1; NAM's head scale as a Rescaling), with
the .nam's weights moved into Keras's layouts. The file is written exactly as
gen_keras_cases.py writes Keras 3 files (write_keras). convd recognises the graph when it
loads it and runs it on the same fused WaveNet kernels as the .nam (dsp/fuse.c); the Keras
model has no prewarm, so both agree once the receptive field has passed (tests/test_fuse.c),
and tests/bench/bench_nam.c times the two side by side.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_keras_cases as gk  # noqa: E402
import keras_reference as kr  # noqa: E402

ACTS = {"Tanh": "tanh", "Sigmoid": "sigmoid", "ReLU": "relu", "SiLU": "silu",
        "Hardswish": "hard_swish", "Hardtanh": "hard_tanh", "Softsign": "softsign"}


def convert(nam):
    cfg = nam["config"]
    if nam.get("architecture") != "WaveNet" or cfg.get("head") is not None:
        raise SystemExit("only NAM WaveNets without a post-head are converted")
    arrays = []
    gated = None
    for L in cfg["layers"]:
        if L.get("gated") not in (gated, None) and gated is not None:
            raise SystemExit("mixed gating across arrays is not converted")
        gated = bool(L.get("gated"))
        arrays.append((L["channels"], L["head_size"], tuple(L["dilations"]), L["kernel_size"],
                       bool(L["head_bias"])))
    act = cfg["layers"][0]["activation"]
    if isinstance(act, dict) or act not in ACTS:
        raise SystemExit("activation %r is not converted" % (act,))
    scale = float(cfg["head_scale"])
    g = gk.wavenet_graph(channels_in=cfg["layers"][0]["input_size"], arrays=arrays,
                         gated=gated, act=ACTS[act], mixin=True, rechannel=True, scale=scale)
    w = np.asarray(nam["weights"], dtype=np.float32).astype(np.float64)
    pos = 0
    weights = {}

    def take(n):
        nonlocal pos
        v = w[pos:pos + n]
        if v.size != n:
            raise SystemExit("the .nam has too few weights")
        pos += n
        return v

    names = {gk.kr.name_of(L) for L in g.layers}
    for ai, L in enumerate(cfg["layers"]):
        C, cin, cond, H, K = (L["channels"], L["input_size"], L["condition_size"],
                              L["head_size"], L["kernel_size"])
        Z = 2 * C if gated else C
        # rechannel [C][in] -> Keras (1, in, C)
        weights["a%d_rechannel" % ai] = [take(C * cin).reshape(C, cin).T[None]]
        nl = len(L["dilations"])
        for li in range(nl):
            conv = take(Z * C * K).reshape(Z, C, K)   # [Z][C][K] -> Keras (K, C, Z)
            bias = take(Z)
            mix = take(Z * cond).reshape(Z, cond)     # [Z][cond] -> Keras (1, cond, Z)
            res = take(C * C).reshape(C, C)           # [C][C] -> Keras (1, C, C)
            rb = take(C)
            parts = (("filter", 0), ("gate", C)) if gated else (("conv", 0),)
            for tag, o in parts:
                pre = "a%d_l%d_%s" % (ai, li, tag)
                weights[pre] = [conv[o:o + C].transpose(2, 1, 0), bias[o:o + C]]
                weights[pre + "_mixin"] = [mix[o:o + C].T[None]]
            if "a%d_l%d_res" % (ai, li) in names:
                weights["a%d_l%d_res" % (ai, li)] = [res.T[None], rb]
        head = [take(H * C).reshape(H, C).T[None]]
        if L["head_bias"]:
            head.append(take(H))
        weights["a%d_head" % ai] = head
    take(1)  # the head scale: the Rescaling's argument
    if pos != w.size:
        raise SystemExit("the .nam has %d weights, the configuration %d" % (w.size, pos))
    return kr.Model(g.config("nam_wavenet"), weights)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        HERE, "..", "..", "shared", "models", "nam", "wavenet_a1_standard.nam")
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        HERE, "..", "tests", "data", "keras", "nam", "wavenet_a1_standard.keras")
    with open(src) as f:
        nam = json.load(f)
    model = convert(nam)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    gk.write_keras(dst, model)
    print("wrote %s (%d layers) from %s" % (dst, len(model.layers), src))


if __name__ == "__main__":
    main()
