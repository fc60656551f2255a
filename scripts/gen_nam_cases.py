#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generate small .nam WaveNet test models and their reference outputs.

Usage:
    scripts/gen_nam_cases.py [--out tests/data/nam]

Writes, under the output directory (default tests/data/nam beside this script's repo):
    input_4k.f32           4096 float32 LE samples shared by every case: silence, a
                           log sine sweep, silence, noise bursts, a full-scale 1 kHz
                           sine, silence (peak 1.0)
    NAME.nam               a WaveNet model in the JSON layout NAM's trainer exports
    NAME.out.f32           scripts/nam_reference.py's output for input_4k.f32 (after
                           NAM core's prewarm; float32 LE mono)
    bad/*.nam              malformed or unsupported files for loader tests
and prints a summary.  Everything is deterministic (fixed seeds); re-running rewrites
identical files.  Needs Debian's /usr/bin/python3 with numpy.  README.md in the output
directory is written by hand, not by this script.

Weights are drawn as float32 (what the trainer exports: torch float32 tensors turned
into JSON doubles), scaled by fan-in so activations stay in a useful range; head_scale
(the last weight, and config.head_scale) is then chosen so the output peaks near 0.6.
"""

import argparse
import copy
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nam_reference as ref  # noqa: E402

N_INPUT = 4096


# ------------------------------------------------------------------ input signal

def make_input():
    rng = np.random.default_rng(20240501)
    sr = 48000.0
    x = np.zeros(N_INPUT)
    # 256..2303: exponential sweep 40 Hz -> 12 kHz, amplitude 0.8, 32-sample fades
    n = 2048
    t = np.arange(n) / sr
    f0, f1, T = 40.0, 12000.0, n / sr
    k = np.log(f1 / f0)
    phase = 2 * np.pi * f0 * T / k * (np.exp(t / T * k) - 1.0)
    sweep = 0.8 * np.sin(phase)
    fade = np.ones(n)
    fade[:32] = np.linspace(0, 1, 32)
    fade[-32:] = np.linspace(1, 0, 32)
    x[256:256 + n] = sweep * fade
    # 2560..3327: three white-noise bursts of 160 samples, peaks 0.3, 0.7, 1.0
    for i, amp in enumerate((0.3, 0.7, 1.0)):
        s = 2560 + i * 256
        burst = rng.uniform(-1.0, 1.0, 160)
        burst /= np.max(np.abs(burst))
        x[s:s + 160] = amp * burst
    # 3328..3583: full-scale 1 kHz sine (starts at a zero crossing)
    m = 256
    x[3328:3328 + m] = np.sin(2 * np.pi * 1000.0 * np.arange(m) / sr)
    # 3584..4095: silence, to see the tail and the response to silence
    return x.astype(np.float32)


# ------------------------------------------------------------------ file layout

def la_old(input_size, channels, head_size, kernel_size, dilations, activation, gated, head_bias,
           condition_size=1):
    """A layer array in the 0.5.x trainer's key order."""
    return {"input_size": input_size, "condition_size": condition_size, "head_size": head_size,
            "channels": channels, "kernel_size": kernel_size, "dilations": list(dilations),
            "activation": activation, "gated": gated, "head_bias": head_bias}


def metadata(name, i):
    return {
        "date": {"year": 2024, "month": 5, "day": 1, "hour": 12, "minute": i, "second": 0},
        "loudness": -20.0 + 0.5 * i,
        "gain": 0.5,
        "name": name,
        "modeled_by": "convd scripts/gen_nam_cases.py",
        "gear_type": "amp",
        "gear_make": "convd",
        "gear_model": "synthetic test model",
        "tone_type": "crunch",
        "input_level_dbu": None,
        "output_level_dbu": None,
        "training": None,
    }


def nam_dict(name, i, layers, version="0.5.4", head_scale=0.02, sample_rate=48000.0,
             extra_config=None):
    cfg = {"layers": layers, "head": None, "head_scale": head_scale}
    if extra_config:
        cfg.update(extra_config)
    d = {"version": version, "metadata": metadata(name, i), "architecture": "WaveNet",
         "config": cfg, "weights": []}
    if sample_rate is not None:
        d["sample_rate"] = sample_rate
    return d


def weight_shapes(d):
    """(kind, count) for every tensor in file order, from the reference parser."""
    cfg = d["config"]
    out = []
    for i, la in enumerate(cfg["layers"]):
        a = ref.parse_array(la, i)
        C, B = a["channels"], a["bottleneck"]
        out.append(("rechannel", C * a["input_size"], a["input_size"]))
        for mode, K in zip(a["gating_modes"], a["kernel_sizes"]):
            Z = 2 * B if mode != "none" else B
            out.append(("conv_w", Z * C * K // a["groups_input"], C * K // a["groups_input"]))
            out.append(("conv_b", Z, 0))
            out.append(("mix_w", Z * a["condition_size"], a["condition_size"]))
            if a["layer1x1"]:
                out.append(("l1_w", C * B // a["layer1x1_groups"], B // a["layer1x1_groups"]))
                out.append(("l1_b", C, 0))
            if a["head1x1"]:
                out.append(("h1_w", a["head1x1_out"] * B, B))
                out.append(("h1_b", a["head1x1_out"], 0))
        hin = a["head1x1_out"] if a["head1x1"] else B
        out.append(("head_w", a["head_size"] * hin * a["head_kernel_size"],
                    hin * a["head_kernel_size"] * len(a["dilations"])))
        if a["head_bias"]:
            out.append(("head_b", a["head_size"], 0))
    return out


STD = {"rechannel": 0.8, "conv_w": 1.1, "conv_b": 0.25, "mix_w": 0.6, "l1_w": 0.6, "l1_b": 0.05,
       "h1_w": 1.0, "h1_b": 0.05, "head_w": 1.0, "head_b": 0.1}


# per-case multiplier on the dilated-conv weights, to push some activations further
# into their outer regions (e.g. Hardswish beyond +-3)
CONV_GAIN = {"three_arrays_mixed": 1.8, "new_blended_hardsig": 1.3}


def random_weights(d, seed, conv_gain=1.0):
    rng = np.random.default_rng(seed)
    parts = []
    for kind, n, fan_in in weight_shapes(d):
        std = STD[kind] / np.sqrt(fan_in) if fan_in else STD[kind]
        if kind == "conv_w":
            std *= conv_gain
        parts.append(rng.normal(0.0, std, n))
    return np.concatenate(parts).astype(np.float32)


def to_json_floats(a):
    # what torch's .tolist() + json.dump give: the double nearest each float32
    return [float(v) for v in np.asarray(a, dtype=np.float32)]


def finish(d, seed, x, peak=0.6, conv_gain=1.0):
    """Fill weights (random, then head_scale for the wanted peak)."""
    w = random_weights(d, seed, conv_gain)
    d["weights"] = to_json_floats(np.concatenate([w, [1.0]]))
    y1 = ref.process(ref.load_model(d), x)
    hs = np.float32(peak / max(np.max(np.abs(y1)), 1e-6))
    # keep head_scale short and float32-exact-ish for readability
    hs = np.float32(float("%.4g" % hs))
    d["weights"][-1] = float(hs)
    d["config"]["head_scale"] = float("%.4g" % hs)
    return d


# ------------------------------------------------------------------ cases

def cases():
    """(name, description, keys-note, dict) for every good case."""
    C = []
    pow2 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]

    def add(name, desc, forms, d):
        C.append((name, desc, forms, d))

    i = len(C)
    add("nano_tanh",
        "NAM 'nano' architecture: 2 arrays (4 ch -> head 2, 2 ch -> head 1), K=3, dilations "
        "1..512, Tanh, not gated, head_bias false then true; receptive field 4093 (the whole "
        "input); sample_rate written as an integer",
        "old keys (gated bool, head_size/head_bias)",
        nam_dict("nano_tanh", i, [la_old(1, 4, 2, 3, pow2, "Tanh", False, False),
                                  la_old(4, 2, 1, 3, pow2, "Tanh", False, True)],
                 sample_rate=48000))
    i = len(C)
    add("k1_relu_1ch",
        "1 array, 1 channel, K=1 (no history), dilations [1,1,1], ReLU, head_bias true",
        "old keys",
        nam_dict("k1_relu_1ch", i, [la_old(1, 1, 1, 1, [1, 1, 1], "ReLU", False, True)]))
    i = len(C)
    add("k2_gated_hardtanh",
        "1 array, 3 ch, K=2, dilations 1..32, gated (Hardtanh * sigmoid), head_bias false",
        "old keys, gated true",
        nam_dict("k2_gated_hardtanh", i,
                 [la_old(1, 3, 1, 2, [1, 2, 4, 8, 16, 32], "Hardtanh", True, False)]))
    i = len(C)
    add("k4_fasttanh_odd_dil",
        "1 array, 5 ch, K=4, non-power-of-two dilations [1,3,5,7,9], Fasttanh, head_bias true",
        "old keys",
        nam_dict("k4_fasttanh_odd_dil", i,
                 [la_old(1, 5, 1, 4, [1, 3, 5, 7, 9], "Fasttanh", False, True)]))
    i = len(C)
    add("k5_sigmoid_repeat_dil",
        "1 array, 6 ch, K=5, repeated dilations [2,2,3,3,6], Sigmoid, head_bias false",
        "old keys",
        nam_dict("k5_sigmoid_repeat_dil", i,
                 [la_old(1, 6, 1, 5, [2, 2, 3, 3, 6], "Sigmoid", False, False)]))
    i = len(C)
    add("two_arrays_gated_silu",
        "2 arrays, both gated: 8 ch K=3 dilations [1,2,4,8] SiLU head 4 (no bias), then 4 ch "
        "K=2 dilations [1,3,9,27] SiLU head 1 with bias",
        "old keys, gated true",
        nam_dict("two_arrays_gated_silu", i,
                 [la_old(1, 8, 4, 3, [1, 2, 4, 8], "SiLU", True, False),
                  la_old(8, 4, 1, 2, [1, 3, 9, 27], "SiLU", True, True)]))
    i = len(C)
    add("three_arrays_mixed",
        "3 arrays: 6 ch K=3 [1,2,4] Softsign head 5 (no bias); 5 ch K=2 [1,7,13] gated "
        "Hardswish head 3 (bias); 3 ch K=3 [2,4,8,16] LeakyReLU (name, slope 0.01) head 1 "
        "(bias); head accumulator and layer output chain through all three",
        "old keys",
        nam_dict("three_arrays_mixed", i,
                 [la_old(1, 6, 5, 3, [1, 2, 4], "Softsign", False, False),
                  la_old(6, 5, 3, 2, [1, 7, 13], "Hardswish", True, True),
                  la_old(5, 3, 1, 3, [2, 4, 8, 16], "LeakyReLU", False, True)]))
    i = len(C)
    add("leakyrelu_slope_obj",
        "1 array, 7 ch, K=3, dilations 1..64, activation object "
        "{type LeakyReLU, negative_slope 0.2}, head_bias true",
        "old keys + activation object",
        nam_dict("leakyrelu_slope_obj", i,
                 [la_old(1, 7, 1, 3, [1, 2, 4, 8, 16, 32, 64],
                         {"type": "LeakyReLU", "negative_slope": 0.2}, False, True)]))
    i = len(C)
    add("prelu_objs",
        "2 arrays: 4 ch K=3 [1,2,4,8] {PReLU negative_slope 0.25} head 2; 2 ch K=3 "
        "[1,5,25] gated {PReLU negative_slopes [0.1, 0.3]} (one slope per channel of the "
        "primary half) head 1 with bias.  (A single-slope PReLU is deliberately not used in "
        "a gated layer: NAM core 0.5.5 indexes its one-element slope list per channel there "
        "and reads past it.)",
        "old keys + activation objects (PReLU single and per-channel)",
        nam_dict("prelu_objs", i,
                 [la_old(1, 4, 2, 3, [1, 2, 4, 8], {"type": "PReLU", "negative_slope": 0.25},
                         False, False),
                  la_old(4, 2, 1, 3, [1, 5, 25],
                         {"type": "PReLU", "negative_slopes": [0.1, 0.3]}, True, True)]))
    i = len(C)
    add("leakyhardtanh",
        "2 arrays: 5 ch K=2 [1,2,4,8,16] LeakyHardtanh (name: -1..1, slopes 0.01) head 3; "
        "3 ch K=3 [1,3,9] {LeakyHardtanh min_val -0.5 max_val 0.8 min_slope 0.05 max_slope "
        "0.1} head 1 with bias",
        "old keys + activation object",
        nam_dict("leakyhardtanh", i,
                 [la_old(1, 5, 3, 2, [1, 2, 4, 8, 16], "LeakyHardtanh", False, False),
                  la_old(5, 3, 1, 3, [1, 3, 9],
                         {"type": "LeakyHardtanh", "min_val": -0.5, "max_val": 0.8,
                          "min_slope": 0.05, "max_slope": 0.1}, False, True)]))
    i = len(C)
    add("wide16_tanh",
        "1 array, 16 ch (the widest), K=2, dilations [1,6,36], Tanh, head_bias false",
        "old keys",
        nam_dict("wide16_tanh", i, [la_old(1, 16, 1, 2, [1, 6, 36], "Tanh", False, False)]))
    i = len(C)
    add("gated12_k3_softsign",
        "1 array, 12 ch, K=3, dilations [1,4], gated Softsign * sigmoid, head_bias true",
        "old keys, gated true",
        nam_dict("gated12_k3_softsign", i,
                 [la_old(1, 12, 1, 3, [1, 4], "Softsign", True, True)]))
    # ---- newer key forms
    i = len(C)
    add("new_gating_mode_head_obj",
        "2 arrays in newer keys: gating_mode 'gated' with secondary_activation 'Sigmoid' and "
        "a head object {out_channels 3, kernel_size 1, bias false}; then gating_mode 'none', "
        "head {out_channels 1, kernel_size 1, bias true}; Tanh / ReLU; version 0.6.0",
        "gating_mode (string), secondary_activation (string), head object",
        nam_dict("new_gating_mode_head_obj", i, [
            {"input_size": 1, "condition_size": 1,
             "head": {"out_channels": 3, "kernel_size": 1, "bias": False},
             "channels": 6, "kernel_size": 3, "dilations": [1, 2, 4, 8, 16],
             "activation": "Tanh", "gating_mode": "gated", "secondary_activation": "Sigmoid"},
            {"input_size": 6, "condition_size": 1,
             "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
             "channels": 3, "kernel_size": 2, "dilations": [1, 3, 9, 27],
             "activation": "ReLU", "gating_mode": "none"}], version="0.6.0"))
    i = len(C)
    add("new_blended",
        "1 array, 6 ch, K=3, dilations [1,2,4,8,16,32], gating_mode 'blended' with no "
        "secondary_activation (defaults to Sigmoid): a = s*tanh(z1) + (1-s)*z1, "
        "s = sigmoid(z2); head object with bias; version 0.6.0",
        "gating_mode blended, default secondary, head object",
        nam_dict("new_blended", i, [
            {"input_size": 1, "condition_size": 1,
             "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
             "channels": 6, "kernel_size": 3, "dilations": [1, 2, 4, 8, 16, 32],
             "activation": "Tanh", "gating_mode": "blended"}], version="0.6.0"))
    i = len(C)
    add("new_blended_hardsig",
        "1 array, 4 ch, K=2, dilations [1,2,3,5,8], gating_mode 'blended', activation "
        "{type Softsign}, secondary_activation {type Hardswish}; old head_size/head_bias "
        "keys with the new gating keys; version 0.6.0",
        "gating_mode blended, explicit secondary object, activation object for a plain name",
        nam_dict("new_blended_hardsig", i, [
            {"input_size": 1, "condition_size": 1, "head_size": 1, "head_bias": False,
             "channels": 4, "kernel_size": 2, "dilations": [1, 2, 3, 5, 8],
             "activation": {"type": "Softsign"}, "gating_mode": "blended",
             "secondary_activation": {"type": "Hardswish"}}], version="0.6.0"))
    i = len(C)
    add("new_per_layer_lists",
        "newest trainer style (version 0.7.0): kernel_sizes [1,2,3,4,5], per-layer activation "
        "list of objects (Tanh, ReLU, LeakyReLU 0.05, SiLU, Hardtanh with min/max), "
        "per-layer gating_mode [none, gated, blended, none, gated], per-layer "
        "secondary_activation [null, Sigmoid, Sigmoid, null, Softsign]; 5 ch; 2 arrays "
        "(second: 1 ch, K=3, [1,2], Fasttanh); head objects",
        "kernel_sizes, activation list, gating_mode list, secondary_activation list, head object",
        nam_dict("new_per_layer_lists", i, [
            {"input_size": 1, "condition_size": 1,
             "head": {"out_channels": 1, "kernel_size": 1, "bias": False},
             "channels": 5, "kernel_sizes": [1, 2, 3, 4, 5], "dilations": [1, 2, 3, 4, 5],
             "activation": [{"type": "Tanh"}, {"type": "ReLU"},
                            {"type": "LeakyReLU", "negative_slope": 0.05}, {"type": "SiLU"},
                            {"type": "Hardtanh", "min_val": -1.0, "max_val": 1.0}],
             "gating_mode": ["none", "gated", "blended", "none", "gated"],
             "secondary_activation": [None, {"type": "Sigmoid"}, {"type": "Sigmoid"}, None,
                                      {"type": "Softsign"}]},
            {"input_size": 5, "condition_size": 1,
             "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
             "channels": 1, "kernel_sizes": [3, 3], "dilations": [1, 2],
             "activation": [{"type": "Fasttanh"}, {"type": "Fasttanh"}],
             "gating_mode": ["none", "none"], "secondary_activation": [None, None]}],
            version="0.7.0"))
    return C


# ------------------------------------------------------------------ bad files

def bad_files(good):
    """(name, must-report, content) for the loader tests.  `good` maps name -> dict."""
    out = []
    base = good["k4_fasttanh_odd_dil"]
    text = json.dumps(base)

    def variant(fn):
        d = copy.deepcopy(base)
        fn(d)
        return json.dumps(d)

    out.append(("truncated_json", "JSON parse error (file ends inside the weights array)",
                text[:len(text) * 2 // 3]))
    out.append(("weights_too_few", "weight count mismatch: too few weights (expected %d, got %d)"
                % (len(base["weights"]), len(base["weights"]) - 3),
                variant(lambda d: d.__setitem__("weights", d["weights"][:-3]))))
    out.append(("weights_too_many", "weight count mismatch: too many weights (expected %d, got %d)"
                % (len(base["weights"]), len(base["weights"]) + 1),
                variant(lambda d: d["weights"].append(0.125))))
    out.append(("unknown_architecture", "unknown/unsupported architecture 'Transformer'",
                variant(lambda d: d.__setitem__("architecture", "Transformer"))))
    out.append(("unsupported_version", "unsupported version '0.9.0' (only 0.5.x-0.7.x)",
                variant(lambda d: d.__setitem__("version", "0.9.0"))))
    out.append(("version_not_semver", "unsupported/invalid version '0.5' (not M.m.p)",
                variant(lambda d: d.__setitem__("version", "0.5"))))

    def ks_mismatch(d):
        la = d["config"]["layers"][0]
        del la["kernel_size"]
        la["kernel_sizes"] = [4, 4, 4, 4]   # 4 entries, 5 dilations
    out.append(("dilations_length_mismatch",
                "per-layer list length mismatch: kernel_sizes has 4 entries, dilations has 5",
                variant(ks_mismatch)))

    def act_list_mismatch(d):
        d["config"]["layers"][0]["activation"] = ["Fasttanh", "Fasttanh"]
    out.append(("activation_list_mismatch",
                "per-layer list length mismatch: activation has 2 entries, dilations has 5",
                variant(act_list_mismatch)))
    out.append(("unknown_activation", "unknown activation 'Swish2'",
                variant(lambda d: d["config"]["layers"][0].__setitem__("activation", "Swish2"))))
    out.append(("negative_channels", "invalid channels -5 (must be a positive integer)",
                variant(lambda d: d["config"]["layers"][0].__setitem__("channels", -5))))
    out.append(("zero_dilation", "invalid dilation 0 (must be a positive integer)",
                variant(lambda d: d["config"]["layers"][0].__setitem__("dilations",
                                                                        [1, 3, 0, 7, 9]))))

    def not_numbers(d):
        d["weights"][10] = "0.5"
        d["weights"][11] = None
    out.append(("weights_not_numbers", "weights must be numbers (weights[10] is a string)",
                variant(not_numbers)))
    out.append(("bad_gating_mode", "invalid gating_mode 'sometimes'",
                variant(lambda d: d["config"]["layers"][0].update(
                    {"gating_mode": "sometimes"}))))

    # Valid for NAM core (weights consistent), but features convd does not support:
    def post_head(d):
        # post-stack head: Conv1d(1->2, k=2)+bias, then Conv1d(2->1, k=1)+bias, weights
        # after the layer arrays, before head_scale (as NAM core reads them)
        d["config"]["head"] = {"channels": 2, "out_channels": 1, "kernel_sizes": [2, 1],
                               "activation": "ReLU"}
        extra = [0.5, -0.25, 0.75, 0.1, 0.05, -0.05, 0.6, -0.4, 0.02]
        d["weights"] = d["weights"][:-1] + extra + d["weights"][-1:]
    out.append(("post_stack_head", "unsupported: non-null config.head (post-stack head); the "
                "file is valid for NAM core >= 0.5.5, weights include the head's 9 values",
                variant(post_head)))

    def bottleneck(d):
        # bottleneck 3 (channels 5): conv 5->3, mixin 1->3, layer1x1 3->5, head 3->1
        la = d["config"]["layers"][0]
        la["bottleneck"] = 3
        rng = np.random.default_rng(7)
        n = 5 * 1
        for _ in la["dilations"]:
            n += 3 * 5 * 4 + 3 + 3 + 5 * 3 + 5
        n += 3 + 1
        d["weights"] = to_json_floats(np.concatenate([rng.normal(0, 0.3, n),
                                                      [d["weights"][-1]]]))
    out.append(("bottleneck", "unsupported key: bottleneck (3 != channels 5); valid for NAM "
                "core (weights consistent with the bottleneck layout)", variant(bottleneck)))

    def head_k2(d):
        la = d["config"]["layers"][0]
        del la["head_size"], la["head_bias"]
        la["head"] = {"out_channels": 1, "kernel_size": 2, "bias": True}
        w = d["weights"]
        # head rechannel grows from [1][5] + bias to [1][5][2] + bias
        head = w[-7:-2]
        d["weights"] = w[:-7] + [v for h in head for v in (0.5 * h, h)] + w[-2:]
    out.append(("head_kernel_size_2", "unsupported: layer-array head.kernel_size 2 (only 1 is "
                "supported); valid for NAM core", variant(head_k2)))

    def film(d):
        # conv_pre_film on 5 channels with shift: per layer a 1x1 conv condition(1) -> 10
        # with bias (20 weights), stored after each layer's layer1x1 weights
        la = d["config"]["layers"][0]
        la["conv_pre_film"] = {"active": True, "shift": True, "groups": 1}
        w = d["weights"]
        per_layer = 5 * 5 * 4 + 5 + 5 + 25 + 5
        rng = np.random.default_rng(11)
        out_w = w[:5]
        for l in range(len(la["dilations"])):
            out_w += w[5 + per_layer * l:5 + per_layer * (l + 1)]
            out_w += to_json_floats(np.concatenate([1.0 + rng.normal(0, 0.1, 5),
                                                    rng.normal(0, 0.1, 5),
                                                    rng.normal(0, 0.05, 10)]))
        out_w += w[5 + per_layer * len(la["dilations"]):]
        d["weights"] = out_w
    out.append(("film_active", "unsupported key: conv_pre_film (FiLM) active; valid for NAM "
                "core (weights include the FiLM convs)", variant(film)))
    out.append(("condition_dsp", "unsupported: config.condition_dsp is not null",
                variant(lambda d: d["config"].__setitem__(
                    "condition_dsp", copy.deepcopy(good["k1_relu_1ch"])))))
    return out


# ------------------------------------------------------------------ main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "tests", "data", "nam"))
    args = ap.parse_args(argv)
    out = args.out
    os.makedirs(os.path.join(out, "bad"), exist_ok=True)

    x = make_input()
    x.astype("<f4").tofile(os.path.join(out, "input_4k.f32"))
    print("input_4k.f32: %d samples, peak %.3f" % (len(x), float(np.max(np.abs(x)))))

    good = {}
    total = 0
    for seed, (name, desc, forms, d) in enumerate(cases(), start=1000):
        finish(d, seed, x, conv_gain=CONV_GAIN.get(name, 1.0))
        path = os.path.join(out, name + ".nam")
        with open(path, "w") as f:
            json.dump(d, f)
        # the reference output is computed from the file just written
        m = ref.load_model(path)
        y = ref.process(m, x)
        y.astype("<f4").tofile(os.path.join(out, name + ".out.f32"))
        good[name] = d
        sz = os.path.getsize(path)
        total += sz + 4 * len(y)
        print("%-26s %5d weights %6d bytes  prewarm N=%-5d peak %.3f rms %.3f  [%s]"
              % (name, m["n_weights"], sz, m["prewarm_samples"], np.max(np.abs(y)),
                 np.sqrt(np.mean(y * y)), forms))

    for name, why, text in bad_files(good):
        path = os.path.join(out, "bad", name + ".nam")
        with open(path, "w") as f:
            f.write(text)
        total += len(text)
        try:
            ref.load_model(path)
            verdict = "LOADS in nam_reference.py"
        except (ref.ModelError, ValueError) as e:
            verdict = "refused: %s" % e
        print("bad/%-26s %s" % (name + ".nam", verdict))
    print("total data written: %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
