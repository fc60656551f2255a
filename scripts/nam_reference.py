#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Independent reference implementation of Neural Amp Modeler's WaveNet (.nam files).

Usage:
    scripts/nam_reference.py MODEL.nam IN.f32 OUT.f32 [--block N] [--no-prewarm]
    scripts/nam_reference.py --check MODEL.nam IN.f32 EXPECTED.f32 [--tol 1e-4]

IN.f32 / OUT.f32 are raw float32 little-endian mono.  The whole signal is computed
offline with numpy in float64; the result is written as float32.  Written from
shared/NAM_FORMAT.md and from reading how NeuralAmpModelerCore v0.5.5 (NAM core)
behaves; none of its code is reused.  Uses Debian's /usr/bin/python3 (numpy).

Loading
-------
Top level: {"version", "architecture": "WaveNet", "config", "weights", "sample_rate",
"metadata"}.  version must parse as M.m.p with 0.5.0 <= version < 0.8.0 (NAM core
accepts 0.5.x..0.7.x).  config: "layers" (list of layer arrays), "head" (must be null:
the post-stack head is not implemented here), "head_scale" (ignored: see below),
"in_channels" (default 1; only 1 is supported), no "condition_dsp".

Layer-array keys, both spellings NAM core reads:
  input_size, condition_size, channels (C), dilations (one per layer, sets the layer
  count L);
  kernel_size (int, same for all layers) or kernel_sizes (list, one per layer);
  activation: a name, an object {"type": NAME, params...}, or a list of either (one per
    layer);
  gating: "gated": bool (old), or "gating_mode": "none"|"gated"|"blended" or a list of
    those (one per layer) -- gating_mode wins when both are given; secondary_activation
    (name/object, or a list, one per layer) is the gate/blend activation, default Sigmoid;
  head: old form head_size + head_bias (head rechannel is 1x1), or newer form
    "head": {"out_channels", "kernel_size", "bias", optional "head_dilation"};
  optional newer keys, also implemented: bottleneck (B, default C), layer1x1
    {"active", "groups"} (default active), head1x1 {"active", "out_channels", "groups"}
    (default inactive), groups_input, groups_input_mixin (default 1).
  FiLM keys (conv_pre_film, ...) must be absent, false or {"active": false}; a
  "slimmable" object is refused.

Activations (float64 here, float32 in NAM core):
  Tanh       tanh(x) (exact; NAM core can globally swap it for Fasttanh, not done here)
  Hardtanh   clamp(x, -1, 1) (NAM core ignores min_val/max_val in the object form the
             newest trainer writes; so does this script)
  Fasttanh   x*(2.45550750702956 + 2.45550750702956*|x| + (0.893229853513558
                 + 0.821226666969744*|x|)*x^2)
             / (2.44506634652299 + (2.44506634652299 + x^2)*|x + 0.814642734961073*x*|x||)
  ReLU       max(x, 0)
  LeakyReLU  x if x > 0 else s*x; s = "negative_slope" of the object form, default 0.01
  PReLU      as LeakyReLU, s = "negative_slope" (one value) or "negative_slopes" (one per
             channel of the tensor it is applied to, channel = row), default 0.01.
             (NAM core 0.5.5 mishandles a single-slope PReLU in a gated/blended layer:
             it indexes the one-element list per channel and reads past it.  Here one
             slope applies to every channel, as in the trainer.)
  Sigmoid    1/(1+exp(-x))
  SiLU       x*sigmoid(x)
  Hardswish  x*clamp(x+3, 0, 6)/6
  LeakyHardtanh  x inside [min_val, max_val]; below: min_val + (x-min_val)*min_slope;
             above: max_val + (x-max_val)*max_slope; defaults -1, 1, 0.01, 0.01
             ("LeakyHardTanh" is accepted as a spelling too)
  Softsign   x/(1+|x|)

Weight order (flat "weights" list, consumed front to back; NAM core's order)
--------------------------------------------------------------------------
Z = 2B when the layer is gated or blended, else B.  A conv weight [O][I/g][K] is
flattened with O outermost and the kernel tap K innermost; with g groups, output rows
g*O/g.. read input columns g*I/g.. (block diagonal), which is PyTorch's layout.
For each layer array:
  rechannel            W [C][input_size]                   (no bias)
  for each layer l:
    dilated conv       W [Z][C/groups_input][K_l], bias [Z]
    input mixin        W [Z][condition_size/groups_input_mixin]   (no bias)
    layer1x1 (if active)  W [C][B/g], bias [C]
    head1x1 (if active)   W [H1][B/g], bias [H1]
  head rechannel       W [head_size][Hin][Kh], bias [head_size] only if head_bias
                       (Hin = H1 if head1x1 is active, else B)
then head_scale (one float).  The count must match exactly.  The last weight is the
head_scale NAM core uses; config.head_scale is ignored.

Computation
-----------
x = input (1 x T), c = condition = the raw input.  Causal convolution with K taps and
dilation d: out[t] = bias + sum_k W[:, :, k] @ in[t - (K-1-k)*d] (tap 0 is the oldest).
Array i:
  h = rechannel(x_i)           x_0 = raw input; x_i = array i-1's h after its last layer
  acc = 0 for array 0; for i > 0, acc = array i-1's head-rechannel output (which already
        includes array i-1's head bias; each head bias is added once, by its own array)
  for each layer: z = conv(h) + mixin(c)
     none:    a = act(z)
     gated:   a = act(z[:B]) * act2(z[B:])       (first B rows primary, last B the gate)
     blended: g = act2(z[B:]); a = g*act(z[:B]) + (1-g)*z[:B]
     acc += head1x1(a) if head1x1 active else a
     h = h + layer1x1(a) if layer1x1 active else h
  head_i = head_rechannel(acc)  (causal conv, kernel Kh, dilation head_dilation)
output = head_scale * head_last   (row 0 for a mono model)

Prewarm (start-up state)
------------------------
NAM core fills every convolution's history with zeros when it is (re)sized, then
"prewarms": it runs N zero samples through the model, where
  N = 1 + sum over arrays of ( sum over layers (K_l-1)*d_l + (Kh-1)*head_dilation ),
i.e. the receptive field.  It feeds them in whole blocks of the host's maximum block
size B (64 for the shared reference), so ceil(N/B)*B zeros actually pass through.
This script simulates exactly that: it prepends ceil(N/B)*B zeros to the input, runs
from an all-zero history, and drops the outputs of the prewarm part.  Because the
network has no feedback and a finite receptive field, any number of prewarm zeros
>= N-1 leaves exactly the same state (every history holds the network's constant
response to silence), so --block does not change the result.  (Later resets in NAM
core reuse a cached copy of that same state.)  --no-prewarm runs from all-zero history
instead (not what NAM core does).
"""

import argparse
import json
import math
import re
import sys

import numpy as np

# ---------------------------------------------------------------- activations

ACT_NAMES = ("Tanh", "Hardtanh", "Fasttanh", "ReLU", "LeakyReLU", "PReLU", "Sigmoid",
             "SiLU", "Hardswish", "LeakyHardtanh", "Softsign")


class ModelError(Exception):
    pass


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _fasttanh(x):
    ax = np.abs(x)
    x2 = x * x
    num = x * (2.45550750702956 + 2.45550750702956 * ax
               + (0.893229853513558 + 0.821226666969744 * ax) * x2)
    den = 2.44506634652299 + (2.44506634652299 + x2) * np.abs(x + 0.814642734961073 * x * ax)
    return num / den


def make_activation(spec):
    """Return f(z) for an activation spec (a name or an object); z is (channels, T)."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        if not isinstance(spec.get("type"), str):
            raise ModelError("activation object without a string 'type'")
        name, params = spec["type"], spec
    else:
        raise ModelError("activation must be a name or an object, got %r" % (spec,))
    if name == "LeakyHardTanh":
        name = "LeakyHardtanh"
    if name not in ACT_NAMES:
        raise ModelError("unknown activation %r" % (name,))

    def num(key, default):
        v = params.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ModelError("activation %s: %s must be a number" % (name, key))
        return float(v)

    if name == "Tanh":
        return np.tanh
    if name == "Hardtanh":
        return lambda z: np.clip(z, -1.0, 1.0)
    if name == "Fasttanh":
        return _fasttanh
    if name == "ReLU":
        return lambda z: np.maximum(z, 0.0)
    if name == "LeakyReLU":
        s = num("negative_slope", 0.01)
        return lambda z: np.where(z > 0.0, z, s * z)
    if name == "PReLU":
        if "negative_slope" in params:
            slopes = np.array([num("negative_slope", 0.01)])
        elif "negative_slopes" in params:
            v = params["negative_slopes"]
            if not isinstance(v, list) or not v or not all(
                    isinstance(a, (int, float)) and not isinstance(a, bool) for a in v):
                raise ModelError("PReLU negative_slopes must be a non-empty list of numbers")
            slopes = np.array(v, dtype=np.float64)
        else:
            slopes = np.array([0.01])

        def prelu(z):
            if len(slopes) == 1:
                s = slopes[0]
            elif len(slopes) == z.shape[0]:
                s = slopes[:, None]
            else:
                raise ModelError("PReLU has %d slopes for %d channels" % (len(slopes), z.shape[0]))
            return np.where(z > 0.0, z, s * z)
        prelu.n_slopes = len(slopes)
        return prelu
    if name == "Sigmoid":
        return _sigmoid
    if name == "SiLU":
        return lambda z: z * _sigmoid(z)
    if name == "Hardswish":
        return lambda z: z * np.clip(z + 3.0, 0.0, 6.0) / 6.0
    if name == "LeakyHardtanh":
        lo, hi = num("min_val", -1.0), num("max_val", 1.0)
        slo, shi = num("min_slope", 0.01), num("max_slope", 0.01)
        return lambda z: np.where(z < lo, (z - lo) * slo + lo,
                                  np.where(z > hi, (z - hi) * shi + hi, z))
    if name == "Softsign":
        return lambda z: z / (1.0 + np.abs(z))
    raise AssertionError(name)


# ---------------------------------------------------------------- loading

def _int(d, key, where, default=None, minimum=1):
    if key not in d:
        if default is None:
            raise ModelError("%s: missing %r" % (where, key))
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ModelError("%s: %r must be an integer" % (where, key))
    if v < minimum:
        raise ModelError("%s: %r must be >= %d, got %d" % (where, key, minimum, v))
    return v


def _bool(d, key, where, default=None):
    if key not in d:
        if default is None:
            raise ModelError("%s: missing %r" % (where, key))
        return default
    if not isinstance(d[key], bool):
        raise ModelError("%s: %r must be true or false" % (where, key))
    return d[key]


def _per_layer(value, n, where, key):
    if isinstance(value, list):
        if len(value) != n:
            raise ModelError("%s: %s has %d entries for %d layers" % (where, key, len(value), n))
        return list(value)
    return [value] * n


FILM_KEYS = ("conv_pre_film", "conv_post_film", "input_mixin_pre_film", "input_mixin_post_film",
             "activation_pre_film", "activation_post_film", "layer1x1_post_film",
             "head1x1_post_film")


def parse_array(la, i):
    where = "layer array %d" % i
    if not isinstance(la, dict):
        raise ModelError("%s: not an object" % where)
    a = {}
    a["input_size"] = _int(la, "input_size", where)
    a["condition_size"] = _int(la, "condition_size", where)
    C = a["channels"] = _int(la, "channels", where)
    a["bottleneck"] = _int(la, "bottleneck", where, default=C)
    dil = la.get("dilations")
    if not isinstance(dil, list) or not dil:
        raise ModelError("%s: dilations must be a non-empty list" % where)
    for d in dil:
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ModelError("%s: dilations must be positive integers" % where)
    L = len(dil)
    a["dilations"] = list(dil)
    if "kernel_size" in la and "kernel_sizes" in la:
        raise ModelError("%s: both kernel_size and kernel_sizes" % where)
    if "kernel_sizes" in la:
        ks = la["kernel_sizes"]
        if not isinstance(ks, list) or len(ks) != L:
            raise ModelError("%s: kernel_sizes must be a list with one entry per dilation" % where)
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ModelError("%s: kernel sizes must be positive integers" % where)
        a["kernel_sizes"] = list(ks)
    else:
        a["kernel_sizes"] = [_int(la, "kernel_size", where)] * L
    if "activation" not in la:
        raise ModelError("%s: missing 'activation'" % where)
    a["activations"] = [make_activation(s) for s in _per_layer(la["activation"], L, where, "activation")]

    # gating
    if "gating_mode" in la:
        modes = _per_layer(la["gating_mode"], L, where, "gating_mode")
        for m in modes:
            if m not in ("none", "gated", "blended"):
                raise ModelError("%s: invalid gating_mode %r" % (where, m))
    elif "gated" in la:
        modes = ["gated" if _bool(la, "gated", where) else "none"] * L
    else:
        modes = ["none"] * L
    # secondary activation: absent -> Sigmoid; present, it is parsed for every gated or
    # blended layer (a null there is an error, as in NAM core; "none" layers may hold null)
    if "secondary_activation" in la:
        secs = _per_layer(la["secondary_activation"], L, where, "secondary_activation")
    else:
        secs = ["Sigmoid"] * L
    a["gating_modes"] = modes
    a["secondary"] = [make_activation(s) if m != "none" else None for m, s in zip(modes, secs)]

    # head rechannel
    if la.get("head") is not None:
        h = la["head"]
        if not isinstance(h, dict):
            raise ModelError("%s: 'head' must be an object" % where)
        a["head_size"] = _int(h, "out_channels", where + " head")
        a["head_kernel_size"] = _int(h, "kernel_size", where + " head")
        a["head_bias"] = _bool(h, "bias", where + " head")
        a["head_dilation"] = _int(h, "head_dilation", where + " head", default=1)
    elif "head_size" in la:
        a["head_size"] = _int(la, "head_size", where)
        a["head_bias"] = _bool(la, "head_bias", where)
        a["head_kernel_size"] = 1
        a["head_dilation"] = 1
    else:
        raise ModelError("%s: needs head_size/head_bias or a head object" % where)

    # optional newer blocks
    l1 = la.get("layer1x1", {"active": True, "groups": 1})
    if not isinstance(l1, dict):
        raise ModelError("%s: layer1x1 must be an object" % where)
    a["layer1x1"] = _bool(l1, "active", where + " layer1x1", default=True)
    a["layer1x1_groups"] = _int(l1, "groups", where + " layer1x1", default=1)
    h1 = la.get("head1x1", {"active": False})
    if not isinstance(h1, dict):
        raise ModelError("%s: head1x1 must be an object" % where)
    a["head1x1"] = _bool(h1, "active", where + " head1x1", default=False)
    a["head1x1_out"] = _int(h1, "out_channels", where + " head1x1", default=C)
    a["head1x1_groups"] = _int(h1, "groups", where + " head1x1", default=1)
    a["groups_input"] = _int(la, "groups_input", where, default=1)
    a["groups_input_mixin"] = _int(la, "groups_input_mixin", where, default=1)
    if not a["layer1x1"] and a["bottleneck"] != C:
        raise ModelError("%s: layer1x1 inactive needs bottleneck == channels" % where)
    for k in FILM_KEYS:
        v = la.get(k, False)
        if v is False or v is None or (isinstance(v, dict) and v.get("active", True) is False):
            continue
        raise ModelError("%s: FiLM (%s) is not supported" % (where, k))
    if la.get("slimmable") not in (None, False, {}):
        raise ModelError("%s: slimmable layer arrays are not supported" % where)
    return a


def parse_version(v):
    if not isinstance(v, str) or not re.fullmatch(r"\d+\.\d+\.\d+", v):
        raise ModelError("version must be a string M.m.p, got %r" % (v,))
    t = tuple(int(p) for p in v.split("."))
    if not ((0, 5, 0) <= t < (0, 8, 0)):
        raise ModelError("unsupported version %s (need 0.5.x to 0.7.x)" % v)
    return t


class _Reader:
    def __init__(self, w):
        self.w = w
        self.i = 0

    def take(self, *shape):
        n = int(np.prod(shape))
        if self.i + n > len(self.w):
            raise ModelError("too few weights: the model needs more than the %d given" % len(self.w))
        out = self.w[self.i:self.i + n].reshape(shape)
        self.i += n
        return out

    def conv(self, out_ch, in_ch, k, bias, groups=1):
        """A (possibly grouped) conv weight stored [out][in/groups][k] -> full [out][in][k]."""
        if in_ch % groups or out_ch % groups:
            raise ModelError("channels %d->%d not divisible by groups %d" % (in_ch, out_ch, groups))
        wg = self.take(out_ch, in_ch // groups, k)
        W = np.zeros((out_ch, in_ch, k))
        opg, ipg = out_ch // groups, in_ch // groups
        for g in range(groups):
            W[g * opg:(g + 1) * opg, g * ipg:(g + 1) * ipg, :] = wg[g * opg:(g + 1) * opg]
        b = self.take(out_ch) if bias else None
        return W, b


def load_model(path_or_dict):
    """Parse a .nam file (path or already-loaded dict) into a model dict."""
    if isinstance(path_or_dict, dict):
        d = path_or_dict
    else:
        with open(path_or_dict) as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ModelError("not valid JSON: %s" % e)
    if not isinstance(d, dict):
        raise ModelError("top level is not an object")
    parse_version(d.get("version"))
    if d.get("architecture") != "WaveNet":
        raise ModelError("unsupported architecture %r" % (d.get("architecture"),))
    cfg = d.get("config")
    if not isinstance(cfg, dict):
        raise ModelError("config must be an object")
    if cfg.get("head") is not None:
        raise ModelError("a post-stack 'head' is not supported")
    if cfg.get("condition_dsp") is not None:
        raise ModelError("condition_dsp is not supported")
    if _int(cfg, "in_channels", "config", default=1) != 1:
        raise ModelError("only in_channels 1 is supported")
    if not isinstance(cfg.get("layers"), list) or not cfg["layers"]:
        raise ModelError("config.layers must be a non-empty list")
    arrays = [parse_array(la, i) for i, la in enumerate(cfg["layers"])]
    w = d.get("weights")
    if not isinstance(w, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in w):
        raise ModelError("weights must be a list of numbers")
    # NAM core keeps weights as float32
    w = np.asarray(w, dtype=np.float32).astype(np.float64)

    # consistency between arrays
    for i, a in enumerate(arrays):
        if a["condition_size"] != 1:
            raise ModelError("layer array %d: condition_size must be 1 (in_channels)" % i)
        if i == 0 and a["input_size"] != 1:
            raise ModelError("layer array 0: input_size must be 1")
        if i > 0:
            p = arrays[i - 1]
            if a["input_size"] != p["channels"]:
                raise ModelError("layer array %d: input_size %d != channels %d of array %d"
                                 % (i, a["input_size"], p["channels"], i - 1))
            hin = a["head1x1_out"] if a["head1x1"] else a["bottleneck"]
            if a["channels"] != p["head_size"] or hin != p["head_size"]:
                raise ModelError("layer array %d: channels %d / head input %d != head_size %d of array %d"
                                 % (i, a["channels"], hin, p["head_size"], i - 1))
    if arrays[-1]["head_size"] < 1:
        raise ModelError("bad head_size")

    r = _Reader(w)
    for a in arrays:
        C, B = a["channels"], a["bottleneck"]
        a["rechannel"], _ = r.conv(C, a["input_size"], 1, False)
        a["layers"] = []
        for l, (d_, K, mode) in enumerate(zip(a["dilations"], a["kernel_sizes"], a["gating_modes"])):
            Z = 2 * B if mode != "none" else B
            lay = {"d": d_, "K": K, "mode": mode, "act": a["activations"][l], "act2": a["secondary"][l]}
            lay["conv_w"], lay["conv_b"] = r.conv(Z, C, K, True, a["groups_input"])
            lay["mix_w"], _ = r.conv(Z, a["condition_size"], 1, False, a["groups_input_mixin"])
            if a["layer1x1"]:
                lay["l1_w"], lay["l1_b"] = r.conv(C, B, 1, True, a["layer1x1_groups"])
            if a["head1x1"]:
                lay["h1_w"], lay["h1_b"] = r.conv(a["head1x1_out"], B, 1, True, a["head1x1_groups"])
            a["layers"].append(lay)
        hin = a["head1x1_out"] if a["head1x1"] else B
        a["head_w"], a["head_b"] = r.conv(a["head_size"], hin, a["head_kernel_size"], a["head_bias"])
    head_scale = r.take(1)[0]
    if r.i != len(w):
        raise ModelError("too many weights: the model uses %d of the %d given" % (r.i, len(w)))
    rf = 0
    for a in arrays:
        rf += sum((K - 1) * d_ for K, d_ in zip(a["kernel_sizes"], a["dilations"]))
        rf += (a["head_kernel_size"] - 1) * a["head_dilation"]
    return {"arrays": arrays, "head_scale": float(head_scale), "n_weights": len(w),
            "prewarm_samples": 1 + rf, "sample_rate": d.get("sample_rate")}


# ---------------------------------------------------------------- computation

def causal_conv(x, W, b, d):
    """x (I, T), W (O, I, K): out[:, t] = b + sum_k W[:, :, k] @ x[:, t-(K-1-k)*d], zero history."""
    O, I, K = W.shape
    T = x.shape[1]
    pad = (K - 1) * d
    xp = np.concatenate([np.zeros((I, pad)), x], axis=1) if pad else x
    out = np.zeros((O, T))
    for k in range(K):
        s = k * d  # xp index t + k*d == x index t - (K-1-k)*d
        out += W[:, :, k] @ xp[:, s:s + T]
    if b is not None:
        out += b[:, None]
    return out


def _check_prelu(f, rows):
    n = getattr(f, "n_slopes", 1)
    if n not in (1, rows):
        raise ModelError("PReLU has %d slopes but is applied to %d channels" % (n, rows))


def run_arrays(model, x):
    """x: 1-D float64 signal from a zero state. Returns (head_size, T) of the last array, scaled."""
    x = np.asarray(x, dtype=np.float64)[None, :]
    cond = x
    layer_in, head_prev = x, None
    for a in model["arrays"]:
        B = a["bottleneck"]
        h = causal_conv(layer_in, a["rechannel"], None, 1)
        acc = np.zeros((a["head1x1_out"] if a["head1x1"] else B, x.shape[1])) if head_prev is None \
            else head_prev.copy()
        for lay in a["layers"]:
            z = causal_conv(h, lay["conv_w"], lay["conv_b"], lay["d"])
            z += causal_conv(cond, lay["mix_w"], None, 1)
            if lay["mode"] == "none":
                _check_prelu(lay["act"], z.shape[0])
                act = lay["act"](z)
            else:
                _check_prelu(lay["act"], B)
                _check_prelu(lay["act2"], B)
                top, bot = z[:B], z[B:]
                g = lay["act2"](bot)
                if lay["mode"] == "gated":
                    act = lay["act"](top) * g
                else:  # blended
                    act = g * lay["act"](top) + (1.0 - g) * top
            if "h1_w" in lay:
                acc += causal_conv(act, lay["h1_w"], lay["h1_b"], 1)
            else:
                acc += act
            if "l1_w" in lay:
                h = h + causal_conv(act, lay["l1_w"], lay["l1_b"], 1)
        head_prev = causal_conv(acc, a["head_w"], a["head_b"], a["head_dilation"])
        layer_in = h
    return model["head_scale"] * head_prev


def prewarm_length(model, block=64):
    """Zero samples NAM core actually runs at prewarm: whole blocks covering N."""
    n = model["prewarm_samples"]
    block = max(int(block), 1)
    return int(math.ceil(n / block)) * block


def process(model, signal, block=64, prewarm=True):
    """Model output (float64, 1-D, channel 0) for `signal`, after NAM core's prewarm."""
    sig = np.asarray(signal, dtype=np.float32).astype(np.float64)
    p = prewarm_length(model, block) if prewarm else 0
    full = np.concatenate([np.zeros(p), sig])
    y = run_arrays(model, full)
    return y[0, p:]


def main(argv=None):
    ap = argparse.ArgumentParser(description="NAM WaveNet reference (float64 numpy)")
    ap.add_argument("model")
    ap.add_argument("input", help="float32 LE mono input")
    ap.add_argument("output", help="float32 LE mono output to write (with --check: expected)")
    ap.add_argument("--block", type=int, default=64,
                    help="host block size used for prewarm rounding (result does not depend on it)")
    ap.add_argument("--no-prewarm", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="compare with OUTPUT instead of writing it; exit 1 if max abs error > --tol")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args(argv)
    try:
        model = load_model(args.model)
    except ModelError as e:
        print("%s: %s" % (args.model, e), file=sys.stderr)
        return 2
    x = np.fromfile(args.input, dtype="<f4")
    pw = 0 if args.no_prewarm else prewarm_length(model, args.block)
    y = process(model, x, block=args.block, prewarm=not args.no_prewarm)
    if args.check:
        ref = np.fromfile(args.output, dtype="<f4").astype(np.float64)
        if len(ref) != len(y):
            print("length mismatch: %d vs %d" % (len(y), len(ref)), file=sys.stderr)
            return 1
        err = float(np.max(np.abs(y - ref))) if len(y) else 0.0
        print("max abs error %.3g over %d samples (prewarm %d zeros, N=%d)"
              % (err, len(y), pw, model["prewarm_samples"]))
        return 0 if err <= args.tol else 1
    y.astype("<f4").tofile(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
