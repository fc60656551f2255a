#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Test models in convd's model JSON (docs/MODEL_FORMAT.md), with reference outputs.

Usage (from the top of the tree; Debian's python3 with numpy and python3-torch):

    scripts/gen_json_cases.py            # writes tests/data/json/
    scripts/gen_json_cases.py --out DIR  # elsewhere

Deterministic (fixed seeds): running it again rewrites identical files.

For every good case NAME it writes
    NAME.json          the model (weights inline, nested, in NAME.safetensors, or absent)
    NAME.in.f32        the input: frames x input channels, interleaved, float32 LE
    NAME.out.f32       the expected output (not for seeded models, whose weights only
                       convd's seeded initialiser knows), frames x output channels
and lists it in cases.txt, one line per case:
    NAME ref|seeded [lag=N]
`lag=N` (stride-1 chains only) is the model's latency: after n input frames a stream has
emitted n - N output frames.

Every refusal case goes to bad/: bad/NAME.json (plus the .safetensors it names), listed in
bad/expect.txt as `NAME.json<TAB>fragment<TAB>fragment...`: the loader must refuse the file
with a message holding the file's path and every fragment.

The expected outputs come from an implementation independent of convd: each layer's Keras
semantics from scripts/gen_golden.py (PyTorch conv1d / conv_transpose1d in float64, padding
computed from ../shared/KERAS_SPEC.md), Dense, activations and merges in numpy/torch here,
the graph walked here from the JSON, and the WaveNet computed here from NAM_FORMAT.md
(cross-checked against scripts/nam_reference.py wherever that covers the configuration).
The safetensors files are written here with struct/numpy.
"""

import argparse
import json
import math
import os
import random
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden  # noqa: E402  (per-layer Keras references)
import nam_reference  # noqa: E402  (NAM WaveNet reference, for cross-checks)

ALIASES = {"Convolution1D": "Conv1D", "Convolution1DTranspose": "Conv1DTranspose",
           "SeparableConvolution1D": "SeparableConv1D"}
CONV = ("Conv1D", "Conv1DTranspose", "SeparableConv1D", "DepthwiseConv1D")
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
          "Identity")

# ---------------------------------------------------------------- JSON text


def fmt_num(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "%.9g" % float(v)


def dump(v, top=False):
    """Compact JSON, floats as %.9g (exact for float32); top-level keys and layers on lines."""
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        return fmt_num(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, np.ndarray):
        return dump(v.tolist())
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(dump(x) for x in v) + "]"
    if isinstance(v, dict):
        if top:
            parts = []
            for k, x in v.items():
                if k == "layers":
                    parts.append('  "layers": [\n    ' + ",\n    ".join(dump(l) for l in x)
                                 + "\n  ]")
                else:
                    parts.append("  %s: %s" % (json.dumps(k), dump(x)))
            return "{\n" + ",\n".join(parts) + "\n}\n"
        return "{" + ", ".join("%s: %s" % (json.dumps(k), dump(x)) for k, x in v.items()) + "}"
    raise TypeError(type(v))


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def write_f32(path, a):
    np.asarray(a, dtype="<f4").tofile(path)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------- safetensors


def st_bytes(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, array of float64 values, shape). dtype F32/F64/F16/BF16."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, arr, shape in tensors:
        a = np.asarray(arr, dtype=np.float64).reshape(shape)
        if dt == "F32":
            b = a.astype("<f4").tobytes()
        elif dt == "F64":
            b = a.astype("<f8").tobytes()
        elif dt == "F16":
            with np.errstate(over="ignore"):  # infinities on purpose in a refusal case
                b = a.astype("<f2").tobytes()
        elif dt == "BF16":
            u = a.astype("<f4").view("<u4") >> 16
            b = u.astype("<u2").tobytes()
        elif dt == "I32":
            b = a.astype("<i4").tobytes()
        else:
            raise ValueError(dt)
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def st_round(a, dt):
    """The values a tensor of dtype dt holds."""
    a = np.asarray(a, dtype=np.float64)
    if dt == "F16":
        return a.astype(np.float16).astype(np.float64)
    if dt == "BF16":
        u = a.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
        return u.view(np.float32).astype(np.float64)
    return f32(a)


# ---------------------------------------------------------------- activations


def keras_act(name, y):
    """Keras activation by name on (T, C) float64 (softmax over channels)."""
    if name is None:
        return y
    return gen_golden.act_torch(name, torch.from_numpy(np.ascontiguousarray(y))).numpy()


def wn_act(spec, z):
    """A WaveNet activation (NAM's names and objects, or Keras's lower-case names) on (C, T)."""
    if isinstance(spec, str) and spec[0].islower():
        return keras_act(spec, z.T).T
    return nam_reference.make_activation(spec)(z)


# ---------------------------------------------------------------- WaveNet


def wn_arrays(cfg, in_ch):
    """The per-layer description of a WaveNet config (shorthand object or layer config)."""
    arrs = cfg["arrays"] if "arrays" in cfg else [cfg]
    out = []
    for i, a in enumerate(arrs):
        L = len(a["dilations"])

        def per(key, default):
            v = a.get(key, default)
            return list(v) if isinstance(v, list) else [v] * L
        if "gating" in a:
            gat = per("gating", "none")
        else:
            gat = ["gated" if a.get("gated", False) else "none"] * L
        hs = a.get("head_size", arrs[i + 1]["channels"] if i + 1 < len(arrs) else 1)
        out.append({
            "C": a["channels"], "in": in_ch if i == 0 else arrs[i - 1]["channels"], "cond": in_ch,
            "layers": list(zip(per("kernel_size", None), a["dilations"], gat,
                               per("activation", "Tanh"), per("secondary_activation", "Sigmoid"))),
            "H": hs, "head_bias": a.get("head_bias", True), "residual": a.get("residual", True),
            "skip": a.get("skip", True)})
    return out


def wn_count(arrays):
    n = 0
    for a in arrays:
        C = a["C"]
        n += C * a["in"]
        for (K, d, g, act, sec) in a["layers"]:
            Z = C if g == "none" else 2 * C
            n += Z * C * K + Z + Z * a["cond"] + C * C + C
        n += a["H"] * C + (a["H"] if a["head_bias"] else 0)
    return n + 1


def causal(x, W, d):
    """x (I, T), W (O, I, K): tap k reads x[t - (K-1-k) d]."""
    O, I, K = W.shape
    T = x.shape[1]
    pad = (K - 1) * d
    xp = np.concatenate([np.zeros((I, pad)), x], axis=1)
    y = np.zeros((O, T))
    for k in range(K):
        y += W[:, :, k] @ xp[:, k * d:k * d + T]
    return y


def wn_forward(arrays, w, x, prewarm=False):
    """x (T, Cin) -> (T, H), NAM's computation with convd's residual/skip switches."""
    w = np.asarray(w, dtype=np.float64)
    if prewarm:
        rf = 1 + sum((K - 1) * d for a in arrays for (K, d, g, act, sec) in a["layers"])
        x = np.concatenate([np.zeros((rf, x.shape[1])), x])
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        v = w[pos[0]:pos[0] + n].reshape(shape)
        pos[0] += n
        return v
    cond = x.T
    layer_in, head_prev = x.T, None
    for a in arrays:
        C = a["C"]
        h = take(C, a["in"]) @ layer_in
        acc = np.zeros((C, x.shape[0])) if head_prev is None else head_prev.copy()
        L = len(a["layers"])
        for l, (K, d, g, act, sec) in enumerate(a["layers"]):
            Z = C if g == "none" else 2 * C
            Wc, bc, Wm = take(Z, C, K), take(Z), take(Z, a["cond"])
            W1, b1 = take(C, C), take(C)
            z = causal(h, Wc, d) + bc[:, None] + Wm @ cond
            if g == "none":
                av = wn_act(act, z)
            else:
                gate = wn_act(sec, z[C:])
                av = wn_act(act, z[:C]) * gate if g == "gated" else \
                    gate * wn_act(act, z[:C]) + (1.0 - gate) * z[:C]
            if a["skip"] or l == L - 1:
                acc = acc + av
            r = W1 @ av + b1[:, None]
            h = h + r if a["residual"] else r
        Wh = take(a["H"], C)
        head_prev = Wh @ acc + (take(a["H"])[:, None] if a["head_bias"] else 0.0)
        layer_in = h
    scale = take(1)[0]
    assert pos[0] == len(w), (pos[0], len(w))
    y = (scale * head_prev).T
    return y[rf:] if prewarm else y


def nam_crosscheck(cfg, w, x, prewarm=False):
    """Compare wn_forward with scripts/nam_reference.py where it applies (mono, residual,
    skip, NAM activation names)."""
    arrs = cfg["arrays"] if "arrays" in cfg else [cfg]
    if x.shape[1] != 1 or any(not a.get("residual", True) or not a.get("skip", True)
                              for a in arrs):
        return False
    layers = []
    A = wn_arrays(cfg, 1)
    for a, src in zip(A, arrs):
        acts = [act for (K, d, g, act, sec) in a["layers"]]
        if any(isinstance(s, str) and s[0].islower() for s in acts):
            return False
        layers.append({
            "input_size": a["in"], "condition_size": 1, "channels": a["C"],
            "kernel_sizes": [K for (K, d, g, act, sec) in a["layers"]],
            "dilations": [d for (K, d, g, act, sec) in a["layers"]],
            "activation": acts,
            "gating_mode": [g for (K, d, g, act, sec) in a["layers"]],
            "secondary_activation": [sec for (K, d, g, act, sec) in a["layers"]],
            "head_size": a["H"], "head_bias": a["head_bias"]})
    nam = {"version": "0.5.4", "architecture": "WaveNet",
           "config": {"layers": layers, "head": None, "head_scale": 1.0},
           "weights": [float(v) for v in w]}
    model = nam_reference.load_model(nam)
    ref = nam_reference.process(model, x[:, 0], prewarm=prewarm)
    mine = wn_forward(A, w, x, prewarm=prewarm)[:, 0]
    err = np.max(np.abs(ref - mine))
    assert err < 1e-7 * max(1.0, np.max(np.abs(ref))), err
    return True


# ---------------------------------------------------------------- the graph


def golden_cfg(cls, c):
    """A JSON config as scripts/gen_golden.py's cfg (Keras's defaults filled in)."""
    def one(v, default):
        if v is None:
            return default
        return v[0] if isinstance(v, list) else v
    return {
        "class_name": cls,
        "filters": c.get("filters"),
        "kernel_size": one(c.get("kernel_size"), None),
        "strides": one(c.get("strides"), 1),
        "padding": c.get("padding", "valid").lower(),
        "data_format": c.get("data_format") or "channels_last",
        "dilation_rate": one(c.get("dilation_rate"), 1),
        "groups": c.get("groups", 1),
        "depth_multiplier": c.get("depth_multiplier", 1),
        "output_padding": one(c.get("output_padding"), None),
        "activation": c.get("activation") or "linear",
        "use_bias": c.get("use_bias", True),
    }


def layer_name(layers, i):
    return layers[i]["name"]


def var_shapes(layer, c_in):
    cls = ALIASES.get(layer["class_name"], layer["class_name"])
    c = layer.get("config", {})
    if cls in CONV:
        return [tuple(s) for s in gen_golden.var_shapes(golden_cfg(cls, c), c_in)]
    if cls == "Dense":
        return [(c_in, c["units"])] + ([(c["units"],)] if c.get("use_bias", True) else [])
    if cls == "WaveNet":
        return [(wn_count(wn_arrays(c, c_in)),)]
    return []


def run_layer(layer, xs, W):
    """One layer on its inputs xs (list of (T, C) arrays) with weights W (list of arrays)."""
    cls = ALIASES.get(layer["class_name"], layer["class_name"])
    c = layer.get("config", {})
    if cls in CONV:
        g = golden_cfg(cls, c)
        y, _ = gen_golden.forward_torch(g, xs[0].shape[1], W, xs[0])
        return y.T if g["data_format"] == "channels_first" else y
    if cls == "Dense":
        y = xs[0] @ W[0] + (W[1][None, :] if len(W) > 1 else 0.0)
        return keras_act(c.get("activation"), y)
    if cls == "Activation":
        return keras_act(c.get("activation"), xs[0])
    if cls == "WaveNet":
        return wn_forward(wn_arrays(c, xs[0].shape[1]), W[0], xs[0], c.get("prewarm", False))
    if cls in ("Add", "Average"):
        y = sum(xs)
        return y / len(xs) if cls == "Average" else y
    if cls == "Subtract":
        return xs[0] - xs[1]
    if cls == "Multiply":
        y = xs[0]
        for v in xs[1:]:
            y = y * v
        return y
    if cls == "Maximum":
        return np.maximum.reduce(xs)
    if cls == "Minimum":
        return np.minimum.reduce(xs)
    if cls == "Concatenate":
        return np.concatenate(xs, axis=1)
    if cls == "Identity":
        return xs[0]
    raise ValueError(cls)


def inputs_of(layers, i):
    l = layers[i]
    if "inputs" in l:
        v = l["inputs"]
        return [v] if isinstance(v, str) else list(v)
    if i == 0 or layers[i - 1]["class_name"] == "InputLayer":
        return ["input"]
    return [layers[i - 1]["name"]]


SNAKE = {"Conv1D": "conv1d", "Conv1DTranspose": "conv1d_transpose",
         "SeparableConv1D": "separable_conv1d", "DepthwiseConv1D": "depthwise_conv1d",
         "InputLayer": "input_layer", "WaveNet": "wavenet"}


def keras_names(layers):
    """Each layer's name: its own, or Keras's default (conv1d, conv1d_1, dense, ...)."""
    taken = {l["name"] for l in layers if "name" in l}
    count, out = {}, []
    for l in layers:
        if "name" in l:
            out.append(l["name"])
            continue
        cls = ALIASES.get(l["class_name"], l["class_name"])
        stem = SNAKE.get(cls, cls.lower())
        k = count.get(stem, 0)
        while True:
            cand = stem if k == 0 else "%s_%d" % (stem, k)
            k += 1
            if cand not in taken:
                break
        count[stem] = k
        taken.add(cand)
        out.append(cand)
    return out


def run_graph(model, x, weights, rng=None):
    """The model's output for x (T, Cin). weights: name -> list of arrays; missing ones are
    drawn from rng (float32 values) and stored."""
    if "wavenet" in model:
        layers = [{"class_name": "WaveNet", "name": "wavenet", "config": model["wavenet"]}]
        out_name = "wavenet"
    else:
        layers = [dict(l, name=n) for l, n in zip(model["layers"], keras_names(model["layers"]))]
        out_name = model.get("output", layers[-1]["name"])
    by_name = {l["name"]: i for i, l in enumerate(layers)}
    vals = {"input": x}
    for l in layers:
        if l["class_name"] == "InputLayer":
            vals[l["name"]] = x

    def value(name):
        if name in vals:
            return vals[name]
        i = by_name[name]
        l = layers[i]
        xs = [value(n) for n in inputs_of(layers, i)]
        if name not in weights:
            weights[name] = [draw(rng, l, s) for s in var_shapes(l, xs[0].shape[1])]
        vals[name] = run_layer(l, xs, weights[name])
        return vals[name]
    return value(out_name)


def draw(rng, layer, shape):
    cls = ALIASES.get(layer["class_name"], layer["class_name"])
    if cls == "WaveNet":
        w = rng.normal(0.0, 0.35, size=shape)
        w[-1] = 0.5  # head scale
        return f32(w)
    if len(shape) == 1:
        return f32(rng.normal(0.0, 0.2, size=shape))
    fan_in = int(np.prod(shape[:-1]))
    if cls == "Conv1DTranspose":
        fan_in = shape[0] * shape[2]
    return f32(rng.normal(0.0, 1.0 / math.sqrt(fan_in), size=shape))


# ---------------------------------------------------------------- writing a case


def layer_names(model):
    if "wavenet" in model:
        return ["wavenet"]
    return keras_names(model["layers"])


def signal(rng, n, ch):
    """Random input: noise with a few silent and loud stretches."""
    x = rng.uniform(-1.0, 1.0, size=(n, ch))
    x[n // 5:n // 5 + n // 16] = 0.0
    x[n // 2:n // 2 + 8] *= 1.8
    return f32(x)


def model_in_channels(model):
    """input_channels, or the channels an InputLayer's batch_shape names, or 1."""
    if "input_channels" in model:
        return model["input_channels"]
    for l in model.get("layers", []):
        shape = l.get("config", {}).get("batch_shape")
        if l["class_name"] == "InputLayer" and shape:
            cf = any(m.get("config", {}).get("data_format") == "channels_first"
                     for m in model["layers"])
            return shape[1] if cf else shape[2]
    return 1


class Writer:
    def __init__(self, out):
        self.out = out
        self.cases = []
        self.bad = []
        os.makedirs(os.path.join(out, "bad"), exist_ok=True)

    def path(self, *p):
        return os.path.join(self.out, *p)

    def case(self, cname, model, n, seed, mode="inline", st_dtypes=None, lag=None,
             seeded=False, metadata=None):
        """mode: inline | nested | safetensors; st_dtypes: layer name -> dtype for the file;
        seeded: weights absent for every layer not in `keep` (model['_keep'])."""
        rng = np.random.default_rng(seed)
        x = signal(rng, n, model_in_channels(model))
        weights = {}
        y = run_graph(model, x, weights, rng)
        st = []
        m = json.loads(json.dumps(model))  # a copy to fill
        keep = model.get("_keep")
        m.pop("_keep", None)
        layers = [m] if "wavenet" in m else m["layers"]
        for name in layer_names(model):
            W = weights.get(name)
            if not W:
                continue  # the input, merges, activations
            if seeded and (keep is None or name not in keep):
                continue
            where = "file" if mode == "safetensors" or (st_dtypes and name in st_dtypes) \
                else mode
            if where == "file":
                dt = (st_dtypes or {}).get(name, "F32")
                W = weights[name] = [st_round(v, dt) for v in W]
                for k, v in enumerate(W):
                    st.append(("%s/%d" % (name, k), dt, v, v.shape))
            else:
                if "wavenet" in m:
                    m["weights"] = W[0].ravel() if mode != "nested" else [W[0].ravel()]
                else:
                    l = layers[layer_names(model).index(name)]
                    l["weights"] = [v.ravel() if mode != "nested" else v for v in W]
        if st:
            m["weights_file"] = cname + ".safetensors"
            with open(self.path(cname + ".safetensors"), "wb") as f:
                f.write(st_bytes(st, metadata=metadata))
        # the reference with the stored (rounded) weights
        y = run_graph(model, x, weights)
        write_text(self.path(cname + ".json"), dump(m, top=True))
        write_f32(self.path(cname + ".in.f32"), x)
        if not seeded:
            write_f32(self.path(cname + ".out.f32"), y)
        flags = ["seeded" if seeded else "ref"]
        if lag is not None:
            flags.append("lag=%d" % lag)
        self.cases.append("%s %s" % (cname, " ".join(flags)))
        return y

    def bad_case(self, name, model, *fragments, text=None, st=None):
        """A refused file: model (a dict) or raw text; st: bytes of its safetensors file."""
        fn = name + ".json"
        if text is None:
            text = dump(model, top=True)
        write_text(self.path("bad", fn), text)
        if st is not None:
            with open(self.path("bad", name + ".safetensors"), "wb") as f:
                f.write(st)
        for fr in fragments:
            assert "\t" not in fr and "\n" not in fr
        self.bad.append("\t".join((fn,) + fragments))

    def finish(self):
        write_text(self.path("cases.txt"), "".join(c + "\n" for c in self.cases))
        write_text(self.path("bad", "expect.txt"), "".join(c + "\n" for c in self.bad))


# ---------------------------------------------------------------- the cases


def L(cls, name=None, inputs=None, **config):
    d = {"class_name": cls}
    if name is not None:
        d["name"] = name
    if config:
        d["config"] = config
    if inputs is not None:
        d["inputs"] = inputs
    return d


def top(layers=None, **kw):
    m = {"format": "convd-model", "version": 1}
    m.update(kw)
    if layers is not None:
        m["layers"] = layers
    return m


def good_cases(w):
    # 1. a Sequential chain, weights inline (flat), Keras's training keys present
    w.case("seq_chain", top([
        L("InputLayer", "in", batch_shape=[None, None, 2], dtype="float32", sparse=False),
        L("Conv1D", "c1", filters=4, kernel_size=3, padding="causal", dilation_rate=2,
          activation="tanh", kernel_initializer={"class_name": "GlorotUniform", "config": {}},
          bias_regularizer=None, trainable=True, dtype="float32"),
        L("Conv1D", "c2", filters=6, kernel_size=[5], strides=[1], padding="Same",
          dilation_rate=[1], activation="relu", use_bias=True, groups=1, data_format=None),
        L("DepthwiseConv1D", "dw", kernel_size=3, padding="same", dilation_rate=2,
          depth_multiplier=2, activation="softsign"),
        L("SeparableConv1D", "sep", filters=3, kernel_size=3, padding="valid",
          activation="sigmoid", depthwise_initializer="glorot_uniform"),
        L("Dense", "d1", units=2, lora_rank=None),
        L("Activation", "act", activation="gelu"),
    ], name="seq_chain", description="a Sequential chain", sample_rate=48000), n=300,
        seed=1, lag=2 + 2 + 2)

    # 2. nested weights, grouped conv, no-bias layers, unnamed layers (Keras's default names)
    w.case("seq_nested", top([
        L("Conv1D", None, filters=6, kernel_size=3, groups=2, padding="causal",
          activation="elu"),
        L("Conv1D", None, filters=4, kernel_size=2, padding="causal", use_bias=False,
          activation="leaky_relu"),
        L("Dense", None, units=3, activation="selu", use_bias=False),
        L("Dense", None, units=2),
    ], input_channels=4), n=200, seed=2, mode="nested", lag=0)

    # 3. a gated WaveNet in Keras's vocabulary, layers listed out of order, named inputs
    C, dil = 6, [1, 2, 4, 8]
    ls = [L("Conv1D", "rechannel", "input", filters=C, kernel_size=1, use_bias=False)]
    h = "rechannel"
    skips = []
    for i, d in enumerate(dil):
        ls.append(L("Conv1D", "f%d" % i, [h], filters=C, kernel_size=3, padding="causal",
                    dilation_rate=d, activation="tanh"))
        ls.append(L("Conv1D", "g%d" % i, [h], filters=C, kernel_size=3, padding="causal",
                    dilation_rate=d, activation="sigmoid"))
        ls.append(L("Multiply", "a%d" % i, ["f%d" % i, "g%d" % i]))
        ls.append(L("Conv1D", "s%d" % i, ["a%d" % i], filters=C, kernel_size=1))
        skips.append("s%d" % i)
        if i + 1 < len(dil):
            if i % 2:
                ls.append(L("Dense", "r%d" % i, ["a%d" % i], units=C))
            else:
                ls.append(L("Conv1D", "r%d" % i, ["a%d" % i], filters=C, kernel_size=1))
            ls.append(L("Add", "h%d" % (i + 1), [h, "r%d" % i]))
            h = "h%d" % (i + 1)
    ls.append(L("Add", "skips", skips))
    ls.append(L("Activation", "skips_act", ["skips"], activation="relu"))
    ls.append(L("Dense", "head", ["skips_act"], units=1))
    random.Random(3).shuffle(ls)
    w.case("keras_wavenet_gated", top(ls, output="head", description="gated WaveNet, Keras "
                                      "layers"), n=400, seed=3, lag=0)

    # 4. branches of different latencies and lengths merging
    w.case("branches", top([
        L("Conv1D", "same5", "input", filters=4, kernel_size=5, padding="same"),
        L("Conv1D", "causal3", "input", filters=4, kernel_size=3, padding="causal",
          activation="tanh"),
        L("Add", "add1", ["same5", "causal3"]),
        L("Conv1D", "valid3", "input", filters=3, kernel_size=3, padding="valid"),
        L("Conv1D", "u", "input", filters=3, kernel_size=2, dilation_rate=2, padding="valid",
          activation="relu"),
        L("Conv1D", "u_same", "u", filters=5, kernel_size=5, padding="same"),
        L("Concatenate", "cat", ["valid3", "u_same"], axis=-1),
        L("Dense", "cat_d", "cat", units=4, activation="tanh"),
        L("Conv1D", "add1_v", "add1", filters=4, kernel_size=3, padding="valid"),
        L("Subtract", "sub", ["cat_d", "add1_v"]),
        L("Maximum", "mx", ["sub", "add1_v"]),
        L("Minimum", "mn", ["sub", "cat_d"]),
        L("Average", "avg", ["mx", "mn", "sub"]),
        L("Identity", "out", "avg"),
    ], input_channels=2, output="out"), n=256, seed=4, mode="safetensors")

    # 5. strided and transposed layers in a chain (input length a multiple of the strides)
    w.case("strided", top([
        L("Conv1D", "down", filters=4, kernel_size=4, strides=2, padding="same",
          activation="tanh"),
        L("Conv1D", "mid", filters=4, kernel_size=3, padding="causal"),
        L("DepthwiseConv1D", "dw", kernel_size=3, strides=2, dilation_rate=2, padding="same"),
        L("Conv1DTranspose", "up", filters=3, kernel_size=4, strides=2, padding="same",
          activation="relu"),
        L("SeparableConv1D", "sep", filters=2, kernel_size=3, strides=2, padding="valid",
          depth_multiplier=2),
        L("Conv1DTranspose", "up3", filters=2, kernel_size=3, strides=3, padding="valid",
          output_padding=1),
        L("Dense", "out", units=1),
    ]), n=240, seed=5)

    # 6. a strided round trip merged with a full-rate branch
    w.case("stride_roundtrip", top([
        L("Conv1D", "down", "input", filters=3, kernel_size=3, strides=2, padding="same"),
        L("Conv1DTranspose", "up", "down", filters=3, kernel_size=3, strides=2,
          padding="same", activation="tanh"),
        L("Conv1D", "direct", "input", filters=3, kernel_size=3, padding="causal"),
        L("Add", "sum", ["up", "direct"]),
    ], input_channels=2), n=200, seed=6)

    # 7. a channels_first model: every layer says so; Concatenate on axis 1
    cf = "channels_first"
    w.case("channels_first", top([
        L("InputLayer", "x", batch_shape=[None, 2, None]),
        L("Conv1D", "c1", "x", filters=3, kernel_size=3, padding="same", data_format=cf),
        L("Conv1D", "c2", "x", filters=2, kernel_size=2, padding="causal", data_format=cf,
          activation="tanh"),
        L("Concatenate", "cat", ["c1", "c2"], axis=1),
        L("DepthwiseConv1D", "dw", "cat", kernel_size=3, padding="same", data_format=cf),
        L("Multiply", "mul", ["dw", "cat"]),
        L("Activation", "act", "mul", activation="tanh"),
        L("Conv1DTranspose", "up", "act", filters=2, kernel_size=4, strides=2,
          padding="same", data_format=cf),
    ]), n=160, seed=7)

    # 8. safetensors with F64, F16 and BF16 tensors and __metadata__
    w.case("safetensors_mixed", top([
        L("Conv1D", "c1", filters=5, kernel_size=3, padding="causal", activation="tanh"),
        L("SeparableConv1D", "sep", filters=4, kernel_size=3, padding="same"),
        L("Dense", "d", units=2),
    ], input_channels=3), n=200, seed=8,
        st_dtypes={"c1": "F64", "sep": "F16", "d": "BF16"},
        metadata={"format": "pt", "source": "gen_json_cases.py"}, lag=1)

    # 9. the WaveNet shorthand, NAM's standard first array, weights in safetensors
    std = {"channels": 16, "kernel_size": 3, "dilations": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
           "activation": "Tanh", "gated": False, "residual": True, "skip": True,
           "head_size": 1, "head_bias": True}
    wavenet_case(w, "wavenet_standard", top(None, input_channels=1, sample_rate=48000,
                                            wavenet=std), n=2048, seed=9, mode="safetensors",
                 lag=0)

    # 10. two arrays (the second gated, LeakyReLU with a slope), inline flat
    wavenet_case(w, "wavenet_arrays", top(None, wavenet={"arrays": [
        {"channels": 8, "kernel_size": 3, "dilations": [1, 2, 4, 8, 16], "activation": "tanh",
         "head_size": 4, "head_bias": False},
        {"channels": 4, "kernel_size": 2, "dilations": [1, 3, 9], "gated": True,
         "activation": {"type": "LeakyReLU", "negative_slope": 0.1}, "head_size": 1,
         "head_bias": True}]}), n=1024, seed=10, lag=0)

    # 11. per-layer lists, blended and gated layers, NAM's object activations; nested form
    wavenet_case(w, "wavenet_blended", top(None, wavenet={
        "channels": 5, "kernel_size": [3, 2, 4, 3], "dilations": [1, 2, 5, 3],
        "activation": ["Tanh", "Fasttanh",
                       {"type": "LeakyHardtanh", "min_val": -0.8, "max_val": 0.9,
                        "min_slope": 0.05, "max_slope": 0.02}, "Softsign"],
        "gating": ["none", "gated", "blended", "blended"],
        "secondary_activation": ["Sigmoid", "Sigmoid", "Hardtanh", "Sigmoid"],
        "head_size": 2, "head_bias": True}), n=512, seed=11, mode="nested")

    # 12. residual and skip off, two input channels (convd's extensions; own reference)
    wavenet_case(w, "wavenet_plain", top(None, input_channels=2, wavenet={"arrays": [
        {"channels": 6, "kernel_size": 3, "dilations": [1, 2, 4], "activation": "ReLU",
         "residual": False, "skip": False, "head_size": 3},
        {"channels": 3, "kernel_size": 3, "dilations": [1, 2], "gating": "gated",
         "activation": "SiLU", "skip": False, "head_size": 2,
         "input_size": 6, "condition_size": 2}]}), n=400, seed=12)

    # 13. a WaveNet layer inside a Keras graph
    w.case("wavenet_in_graph", top([
        L("Conv1D", "pre", "input", filters=3, kernel_size=1),
        {"class_name": "WaveNet", "name": "wn", "inputs": ["pre"], "config": {
            "channels": 4, "kernel_size": 3, "dilations": [1, 2, 4, 8], "activation": "Tanh",
            "gating": "gated", "head_size": 2}},
        L("Conv1D", "bypass", "input", filters=2, kernel_size=3, padding="causal"),
        L("Add", "sum", ["wn", "bypass"]),
        L("Dense", "out", "sum", units=1, activation="tanh"),
    ], input_channels=2), n=300, seed=13, lag=0)

    # 14. NAM's prewarm switched on
    wavenet_case(w, "wavenet_prewarm", top(None, wavenet={
        "channels": 4, "kernel_size": 3, "dilations": [1, 2, 4, 8, 16], "activation": "Tanh",
        "head_size": 1, "prewarm": True}), n=256, seed=14, lag=0)

    # 15. seeded: no weights at all; partial weights; the WaveNet shorthand without weights
    w.case("seeded_layers", top([
        L("Conv1D", "c1", filters=4, kernel_size=3, padding="causal", activation="tanh"),
        L("Conv1D", "c2", "input", filters=4, kernel_size=5, padding="same"),
        L("Add", "s", ["c1", "c2"]),
        L("Dense", "d", "s", units=1),
    ], seed=11), n=200, seed=15, seeded=True)
    w.case("seeded_partial", dict(top([
        L("Conv1D", "c1", filters=4, kernel_size=3, padding="causal", activation="tanh"),
        L("Conv1D", "c2", filters=4, kernel_size=3, padding="causal"),
        L("Dense", "d", units=1),
    ], seed=5), _keep=["c1", "d"]), n=200, seed=16, seeded=True, st_dtypes={"d": "F32"})
    w.case("seeded_wavenet", top(None, seed=7, wavenet=dict(std, dilations=[1, 2, 4, 8])),
           n=300, seed=17, seeded=True)


def wavenet_case(w, name, model, n, seed, **kw):
    """A WaveNet shorthand case, its reference also checked against nam_reference.py."""
    y = w.case(name, model, n, seed, **kw)
    x = np.fromfile(w.path(name + ".in.f32"), dtype="<f4").astype(np.float64)
    x = x.reshape(-1, model_in_channels(model))
    wts = json.loads(open(w.path(name + ".json")).read()).get("weights")
    if wts is None:
        # weights in the safetensors file: read them back through our own writer's layout
        raw = open(w.path(name + ".safetensors"), "rb").read()
        hl = struct.unpack("<Q", raw[:8])[0]
        hdr = json.loads(raw[8:8 + hl])
        b, e = hdr["wavenet/0"]["data_offsets"]
        wts = np.frombuffer(raw[8 + hl + b:8 + hl + e], dtype="<f4").astype(np.float64)
    wts = np.asarray(wts, dtype=np.float64).ravel()
    if nam_crosscheck(model["wavenet"], wts, x, prewarm=model["wavenet"].get("prewarm", False)):
        print("  %s: matches scripts/nam_reference.py" % name)
    return y


# ---------------------------------------------------------------- refusals


def bad_cases(w):
    conv = L("Conv1D", "c1", filters=4, kernel_size=3, padding="causal")
    W3 = [[0.1] * 12, [0.0] * 4]

    def one(name, layer, *fr, **kw):
        w.bad_case(name, top([layer], **kw), *fr)

    w.bad_case("syntax_error", None, "line 3", "column", "invalid JSON",
               text='{"format": "convd-model", "version": 1,\n "layers": [\n  {"class_name": '
                    '"Conv1D",, }\n ]}\n')
    w.bad_case("duplicate_key", None, "line 1", "duplicate",
               text='{"format": "convd-model", "version": 1, "version": 1, "layers": []}\n')
    w.bad_case("nan_literal", None, "invalid JSON", "line 2",
               text='{"format": "convd-model", "version": 1,\n "layers": [{"class_name": '
                    '"Dense", "config": {"units": 1}, "weights": [[NaN], [0]]}]}\n')
    w.bad_case("not_object", None, "top level must be an object", text="[1, 2, 3]\n")
    w.bad_case("wrong_format", {"format": "keras", "version": 1, "layers": []},
               "format='keras'", "convd-model")
    w.bad_case("wrong_version", {"format": "convd-model", "version": 2, "layers": [conv]},
               "version=2")
    w.bad_case("no_layers", top(), "layers: missing")
    w.bad_case("empty_layers", top([]), "layers=[]", "at least one layer")
    w.bad_case("unknown_top_key", top([conv], weigths_file="x.safetensors"),
               "weigths_file", "unknown key")
    one("unknown_class", {"class_name": "MyCustomLayer", "name": "custom_1",
                          "config": {"units": 3}},
        "layers[0] (custom_1)", "class_name='MyCustomLayer'", "unknown layer class")
    one("lstm_class", {"class_name": "LSTM", "config": {"units": 3}},
        "layers[0]", "class_name='LSTM'", "a recurrent layer")
    w.bad_case("missing_input", top([conv, L("Add", "sum", ["c1", "nope"])]),
               "layers[1] (sum)", "inputs[1]='nope'", "no layer has that name")
    w.bad_case("cycle", top([L("Conv1D", "a", ["b"], filters=2, kernel_size=1),
                             L("Conv1D", "b", ["a"], filters=2, kernel_size=1)]),
               "cycle", "a -> b -> a", "inputs[0]='a'")
    w.bad_case("self_cycle", top([L("Add", "a", ["input", "a"])]),
               "layers[0] (a)", "inputs[1]='a'", "cycle: a -> a")
    one("weights_count", dict(conv, weights=[[0.1] * 11, [0.0] * 4]),
        "layers[0] (c1): weights[0]", "11 values", "(3, 1, 4)")
    one("weights_vars", dict(conv, weights=[[0.1] * 12]),
        "layers[0] (c1): weights", "1 variables given", "Conv1D has 2")
    one("weights_nested", dict(conv, weights=[[[[0.1] * 4], [[0.1] * 3], [[0.1] * 4]],
                                              [0.0] * 4]),
        "weights[0][1][0]", "must be a list of 4")
    one("weights_string", dict(conv, weights=[W3[0], [0.0, 0.0, "abc", 0.0]]),
        "weights[1][2]='abc'", "must be a number")
    one("weights_overflow", dict(conv, weights=[W3[0][:5] + [1e39] + W3[0][6:], W3[1]]),
        "weights[0][5]=1e+39", "not a finite float32")
    one("weights_not_list", dict(conv, weights={"kernel": 1}),
        "layers[0] (c1): weights=", "must be a list")
    one("negative_filters", L("Conv1D", "c1", filters=-3, kernel_size=3),
        "layers[0] (c1): config.filters=-3", "must be >= 1")
    one("huge_filters", L("Conv1D", "c1", filters=2000000000, kernel_size=3),
        "layers[0] (c1): config", "filters=2000000000", "too large")
    one("huge_kernel", L("Conv1D", "c1", filters=4096, kernel_size=100000),
        "layers[0] (c1): config", "kernel_size=100000", "more than")
    one("int_overflow", L("Conv1D", "c1", filters=4, kernel_size=99999999999),
        "config.kernel_size=99999999999", "must be <=")
    w.bad_case("latency_overflow", top([
        L("Conv1DTranspose", "t%d" % i, filters=1, kernel_size=1, strides=1 << 20,
          output_padding=0) for i in range(3)]),
        "layers[1] (t1): config", "strides=1048576", "latency would exceed")
    one("strides_dilation", L("Conv1D", "conv1d_2", filters=4, kernel_size=3, strides=2,
                              dilation_rate=2),
        "layers[0] (conv1d_2): config", "strides=2 with dilation_rate=2")
    one("bad_padding", L("Conv1D", "c1", filters=4, kernel_size=3, padding="full"),
        "layers[0] (c1): config", "padding='full'")
    one("causal_transpose", L("Conv1DTranspose", "t", filters=4, kernel_size=3,
                              padding="causal"),
        "layers[0] (t): config", "padding='causal'")
    one("bad_activation", L("Conv1D", "c1", filters=4, kernel_size=3, activation="swishy"),
        "layers[0] (c1): config", "Could not interpret activation function identifier: swishy")
    one("activation_object", L("Dense", "d", units=2, activation={"class_name": "ReLU"}),
        "config.activation=", "must be the name of a Keras activation")
    one("unknown_config_key", L("Conv1D", "c1", filters=4, kernel_size=3, paddings="same"),
        "layers[0] (c1): config.paddings", "unknown key for Conv1D")
    one("groups_on_dense", L("Dense", "d", units=4, groups=2),
        "config.groups", "unknown key for Dense")
    one("lora", L("Dense", "d", units=4, lora_rank=4),
        "config.lora_rank=4", "LoRA")
    one("kernel_string", L("Conv1D", "c1", filters=4, kernel_size="3"),
        "config.kernel_size='3'", "must be an integer")
    one("kernel_tuple2", L("Conv1D", "c1", filters=4, kernel_size=[3, 3]),
        "config.kernel_size=[3, 3]", "list of one integer")
    one("missing_filters", L("Conv1D", "c1", kernel_size=3),
        "config.filters: missing")
    one("output_padding", L("Conv1DTranspose", "t", filters=2, kernel_size=3, strides=2,
                            output_padding=2),
        "layers[0] (t): config", "output_padding=2", "strides=2")
    one("groups_divide", L("Conv1D", "c1", filters=4, kernel_size=3, groups=3),
        "filters=4", "groups=3")
    w.bad_case("concat_axis", top([conv, L("Conv1D", "c2", "input", filters=2, kernel_size=1),
                                   L("Concatenate", "cat", ["c1", "c2"], axis=1)]),
               "layers[2] (cat): config.axis=1", "channels only")
    w.bad_case("mixed_format", top([
        L("Conv1D", "a", filters=2, kernel_size=1, data_format="channels_first"),
        L("Conv1D", "b", filters=2, kernel_size=1, data_format="channels_last")]),
        "layers[1] (b): config.data_format='channels_last'", "channels_first",
        "layers[0] (a)")
    w.bad_case("format_omitted", top([
        L("Conv1D", "a", filters=2, kernel_size=1, data_format="channels_first"),
        L("Conv1D", "b", filters=2, kernel_size=1)]),
        "layers[1] (b): config.data_format: absent, so channels_last", "layers[0] (a)")
    w.bad_case("format_top_mismatch", top([
        L("Conv1D", "a", filters=2, kernel_size=1, data_format="channels_last")],
        data_format="channels_first"),
        "layers[0] (a): config.data_format='channels_last'", "top-level data_format")
    w.bad_case("dense_channels_first", top([
        L("Conv1D", "a", filters=2, kernel_size=1, data_format="channels_first"),
        L("Dense", "d", units=2)]), "layers[1] (d)", "Dense acts on the last axis")
    w.bad_case("softmax_channels_first", top([
        L("Conv1D", "a", filters=2, kernel_size=1, data_format="channels_first"),
        L("Activation", "sm", activation="softmax")]),
        "layers[1] (sm): config.activation='softmax'", "time")
    w.bad_case("merge_channels", top([conv, L("Conv1D", "c2", "input", filters=3, kernel_size=1),
                                      L("Add", "sum", ["c1", "c2"])]),
               "layers[2] (sum)", "3 channels")
    w.bad_case("subtract_three", top([conv, L("Subtract", "sub", ["c1", "c1", "input"])]),
               "layers[1] (sub): inputs=['c1', 'c1', 'input']", "exactly 2 inputs, 3 given")
    w.bad_case("add_one_input", top([conv, L("Add", "sum")]),
               "layers[1] (sum): inputs", "2 to 64 inputs, 1 given")
    w.bad_case("unused_layer", top([conv, L("Conv1D", "lost", "input", filters=2,
                                            kernel_size=1),
                                    L("Dense", "d", "c1", units=1)]),
               "layers[1] (lost)", "does not depend on this layer")
    w.bad_case("duplicate_name", top([conv, dict(conv, inputs=["c1"])]),
               "layers[1] (c1): name='c1'", "layers[0] has that name")
    w.bad_case("reserved_name", top([L("Conv1D", "input", filters=2, kernel_size=1)]),
               "name='input'", "reserved")
    w.bad_case("output_missing", top([conv], output="zzz"), "output='zzz'", "no layer")
    w.bad_case("output_input", top([L("InputLayer", "x"), conv], output="x"),
               "output='x'", "model input")
    w.bad_case("input_shape_mismatch", top([L("InputLayer", "x", batch_shape=[None, None, 3]),
                                            conv], input_channels=2),
               "layers[0] (x): config.batch_shape=[null, null, 3]", "input_channels is 2")
    w.bad_case("two_input_layers", top([L("InputLayer", "x"), L("InputLayer", "y"), conv]),
               "layers[1] (y)", "second InputLayer")
    w.bad_case("inputs_type", top([dict(conv, inputs=[3])]),
               "layers[0] (c1): inputs[0]=3", "must be a layer name")
    w.bad_case("layer_not_object", top([conv, "Dense"]), "layers[1]='Dense'",
               "must be an object")
    w.bad_case("config_type", top([dict(conv, config=[1])]), "layers[0] (c1): config=[1]",
               "must be an object")
    w.bad_case("inbound_nodes", top([dict(conv, inbound_nodes=[])]), "inbound_nodes",
               "\"inputs\"")
    w.bad_case("top_weights_layers", top([conv], weights=[1, 2]), "weights",
               "\"wavenet\" shorthand")
    w.bad_case("seed_negative", top([conv], seed=-1), "seed=-1", "must be >= 0")
    w.bad_case("channels_zero", top([conv], input_channels=0), "input_channels=0",
               "must be >= 1")
    w.bad_case("sample_rate", top([conv], sample_rate="fast"), "sample_rate='fast'")

    # WaveNet
    wn = {"channels": 4, "kernel_size": 3, "dilations": [1, 2, 4, 8]}
    w.bad_case("wn_dilation_zero", top(wavenet=dict(wn, dilations=[1, 2, 0, 8])),
               "wavenet.dilations[2]=0", "must be in 1..")
    w.bad_case("wn_dilation_huge", top(wavenet=dict(wn, dilations=[1, 2, 2**31, 8])),
               "wavenet.dilations[2]=2147483648")
    w.bad_case("wn_too_many_layers", top(wavenet=dict(wn, dilations=[1] * 49)),
               "wavenet.dilations=", "49 layers")
    w.bad_case("wn_channels_huge", top(wavenet=dict(wn, channels=100000)),
               "wavenet.channels=100000", "must be <= 4096")
    w.bad_case("wn_activation", top(wavenet=dict(wn, activation="Foo")),
               "wavenet.activation", "Foo")
    w.bad_case("wn_activation_param", top(wavenet=dict(wn, activation={"type": "Tanh",
                                                                        "slope": 1})),
               "wavenet.activation.slope=1", "not a parameter of Tanh")
    w.bad_case("wn_gating", top(wavenet=dict(wn, gating="sometimes")),
               "wavenet.gating='sometimes'", "blended")
    w.bad_case("wn_list_len", top(wavenet=dict(wn, kernel_size=[3, 3])),
               "wavenet.kernel_size=[3, 3]", "one entry per dilation (4)")
    w.bad_case("wn_chain", top(wavenet={"arrays": [dict(wn, head_size=4),
                                                   dict(wn, channels=3)]}),
               "wavenet.arrays[1].channels=3", "arrays[0].head_size=4")
    w.bad_case("wn_input_size", top(wavenet=dict(wn, input_size=2)),
               "wavenet.input_size=2", "must be 1")
    w.bad_case("wn_weights", top(wavenet=wn, weights=[0.5] * 10),
               "weights=(an array of 10)", "variable 0 has shape")
    w.bad_case("wn_both", dict(top([conv]), wavenet=wn), "not both")
    w.bad_case("wn_unknown_key", top(wavenet=dict(wn, bottleneck=2)),
               "wavenet.bottleneck", "unknown key")
    w.bad_case("wn_arrays_keys", top(wavenet={"arrays": [wn], "channels": 4}),
               "wavenet.channels", "unknown key")
    w.bad_case("wn_prelu_slopes", top(wavenet=dict(wn, activation={
        "type": "PReLU", "negative_slopes": [0.1, 0.2, 0.3]})), "PReLU", "3 slopes")

    # safetensors
    conv_w = [np.full((3, 1, 4), 0.1), np.zeros(4)]
    good = [("c1/0", "F32", conv_w[0], (3, 1, 4)), ("c1/1", "F32", conv_w[1], (4,))]

    def st(name, data, *fr, layers=None, wf=None):
        m = top(layers or [conv], weights_file=wf or (name + ".safetensors"))
        w.bad_case(name, m, *fr, st=data)

    full = st_bytes(good)
    st("st_missing_file", None, "weights_file 'nowhere.safetensors'", "cannot read",
       "No such file", wf="nowhere.safetensors")
    st("st_truncated", full[:-7], "weights_file 'st_truncated.safetensors'", "tensor 'c1/1'",
       "past the end")
    st("st_short", full[:5], "weights_file", "5 bytes", "too short")
    st("st_header_len", struct.pack("<Q", 1 << 40) + full[8:], "header length 1099511627776",
       "exceeds")
    hl = struct.unpack("<Q", full[:8])[0]
    st("st_header_json", full[:8] + b"{" * hl + full[8 + hl:], "header: column")
    st("st_dtype", st_bytes([("c1/0", "I32", conv_w[0], (3, 1, 4)), good[1]]),
       "tensor 'c1/0'", "dtype='I32'")
    st("st_shape", st_bytes([("c1/0", "F32", np.zeros(15), (3, 1, 5)), good[1]]),
       "tensor 'c1/0': shape=[3, 1, 5]", "variable 0 has shape (3, 1, 4)")
    nanw = conv_w[0].copy().ravel()
    nanw[7] = np.nan
    st("st_nan", st_bytes([("c1/0", "F32", nanw, (3, 1, 4)), good[1]]),
       "tensor 'c1/0'", "value 7 is not a finite float32")
    st("st_inf_f16", st_bytes([("c1/0", "F16", np.full(12, 1e6), (3, 1, 4)), good[1]]),
       "tensor 'c1/0'", "value 0 is not a finite")
    st("st_unknown_tensor", st_bytes(good + [("c9/0", "F32", np.zeros(2), (2,))]),
       "tensor 'c9/0'", "no layer is named 'c9'")
    st("st_bad_name", st_bytes([("c1.weight", "F32", conv_w[0], (3, 1, 4))]),
       "tensor 'c1.weight'", "<layer name>/<variable index>")
    st("st_var_index", st_bytes(good + [("c1/2", "F32", np.zeros(2), (2,))]),
       "tensor 'c1/2'", "has 2 variables")
    st("st_partial_layer", st_bytes(good[:1]), "no tensor 'c1/1'", "all of a layer's")
    hdr = {"c1/0": {"dtype": "F32", "shape": [3, 1, 4], "data_offsets": [0, 48]},
           "c1/1": {"dtype": "F32", "shape": [4], "data_offsets": [32, 48]}}
    h = json.dumps(hdr).encode()
    st("st_overlap", struct.pack("<Q", len(h)) + h + bytes(48), "overlap")
    hdr["c1/1"]["data_offsets"] = [48, 60]
    h = json.dumps(hdr).encode()
    st("st_size_mismatch", struct.pack("<Q", len(h)) + h + bytes(60),
       "tensor 'c1/1': data_offsets=[48, 60]", "12 bytes, but 4 values of F32 take 16")
    hdr["c1/1"]["data_offsets"] = [60, 48]
    h = json.dumps(hdr).encode()
    st("st_offsets_order", struct.pack("<Q", len(h)) + h + bytes(64),
       "data_offsets=[60, 48]", "begin <= end")
    st("st_both", full, "tensor 'c1/0'", "inline weights too",
       layers=[dict(conv, weights=[[0.1] * 12, [0.0] * 4])])
    st("st_not_object", st_bytes([]).replace(b"{}", b"[]"), "not a JSON object")
    st("st_merge_var", st_bytes(good + [("sum/0", "F32", np.zeros(4), (4,))]),
       "tensor 'sum/0'", "(Add) has 0 variables",
       layers=[conv, L("Conv1D", "c2", "input", filters=4, kernel_size=1),
               L("Add", "sum", ["c1", "c2"])])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/json")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # start clean: every generated file goes (README.md stays)
    for d in (args.out, os.path.join(args.out, "bad")):
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith((".json", ".f32", ".safetensors", ".txt")):
                    os.remove(os.path.join(d, f))
    w = Writer(args.out)
    good_cases(w)
    bad_cases(w)
    w.finish()
    print("%d cases, %d refusals in %s" % (len(w.cases), len(w.bad), args.out))


if __name__ == "__main__":
    main()
