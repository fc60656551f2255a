#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""An independent reference for Keras model files: what Keras's model.predict computes.

Reads a Keras file without Keras or TensorFlow (zipfile, h5py, json) and computes the model in
float64 with numpy and PyTorch, written from Keras 3's definitions (../shared/KERAS_SPEC.md for
the convolutions, through scripts/gen_golden.py; the other layers here), never from convd's C
code. Used by scripts/gen_keras_cases.py to make the expected outputs of tests/data/keras/.

    from keras_reference import load, predict, windows
    model = load("model.keras")                       # or "model.h5", or (config.json, w.h5)
    y = predict(model, x)                             # x: one input tensor, no batch axis
    records = windows(model, frames, hop)             # a windowed model over a signal

Tensors are in Keras's own layout without the batch axis: (steps, channels) for
channels_last models, (channels, steps) for channels_first ones. windows() takes the signal as
frames x channels (what convd reads) and returns one flattened output tensor per window.

Command line: keras_reference.py MODEL IN.f32 OUT.f32 [--hop N] [--stream]
  runs MODEL on IN.f32 (frames x channels, float32) and writes OUT.f32.
"""

import io
import json
import re
import sys
import zipfile

import h5py
import numpy as np
import torch

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import gen_golden  # noqa: E402  (the Conv1D family, from the spec, in PyTorch float64)
import tcn_reference  # noqa: E402  (keras-tcn's TCN layer)

CONV = ("Conv1D", "Conv1DTranspose", "SeparableConv1D", "DepthwiseConv1D")
ALIASES = {"Convolution1D": "Conv1D", "Convolution1DTranspose": "Conv1DTranspose",
           "SeparableConvolution1D": "SeparableConv1D", "MaxPool1D": "MaxPooling1D",
           "AvgPool1D": "AveragePooling1D", "GlobalMaxPool1D": "GlobalMaxPooling1D",
           "GlobalAvgPool1D": "GlobalAveragePooling1D"}
IDENTITY = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
            "ActivityRegularization", "Identity")


def to_snake_case(name):
    """keras.src.utils.naming.to_snake_case"""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


# ---------------------------------------------------------------- reading files


class Model:
    def __init__(self, config, weights):
        self.config = config          # the Keras model config (dict)
        self.weights = weights        # layer name -> list of numpy arrays (Keras's order)
        cfg = config["config"]
        self.layers = cfg if isinstance(cfg, list) else cfg["layers"]
        self.functional = config["class_name"] in ("Functional", "Model")
        self.data_format = "channels_last"
        for L in self.layers:
            df = L["config"].get("data_format")
            if cls_of(L) in CONV + ("MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D",
                                    "GlobalAveragePooling1D") and df:
                self.data_format = df
                break
        shape = None
        for L in self.layers:
            c = L["config"]
            for k in ("batch_shape", "batch_input_shape"):
                if shape is None and c.get(k) is not None:
                    shape = c[k]
        if shape is None and isinstance(cfg, dict):
            shape = cfg.get("build_input_shape")
        self.input_shape = list(shape[1:])  # without the batch axis
        if self.data_format == "channels_first":
            self.channels, self.steps = self.input_shape
        else:
            self.steps, self.channels = self.input_shape


def cls_of(L):
    return ALIASES.get(L["class_name"], L["class_name"])


def name_of(L):
    return L.get("name") or L["config"]["name"]


def _keras3_weights(h5, layers):
    """layers/<snake_case class>[_N]/vars/<i>, N counting the class in the layer order."""
    used, out = {}, {}
    for L in layers:
        stem = to_snake_case(cls_of(L))
        if stem in used:
            used[stem] += 1
            stem = "%s_%d" % (stem, used[stem])
        else:
            used[stem] = 0
        if cls_of(L) == "TCN":
            out[name_of(L)] = tcn_reference.keras3_weights(h5["layers/%s" % stem], L["config"])
            continue
        vars_ = h5.get("layers/%s/vars" % stem)
        if vars_ is None:
            out[name_of(L)] = []
            continue
        out[name_of(L)] = [np.asarray(vars_[str(i)], dtype=np.float64)
                           for i in range(len(vars_.keys()))]
    return out


def _strings(attr):
    return [a.decode("utf8") if isinstance(a, bytes) else str(a) for a in np.asarray(attr).ravel()]


def _attr(g, name):
    """Keras's load_attributes_from_hdf5_group: NAME, or the chunks NAME0, NAME1, ..."""
    if name in g.attrs:
        return _strings(g.attrs[name])
    out, k = [], 0
    while "%s%d" % (name, k) in g.attrs:
        out += _strings(g.attrs["%s%d" % (name, k)])
        k += 1
    return out


def _keras2_weights(g, layers):
    """Keras's load_weights: layers with weights, in order, against layer_names."""
    names = [n for n in _attr(g, "layer_names")
             if len(np.asarray(g[n].attrs.get("weight_names", []))) > 0]
    with_w = [L for L in layers if cls_of(L) in CONV + ("Dense", "BatchNormalization",
                                                        "LayerNormalization", "TCN")]
    assert len(names) == len(with_w), (names, [name_of(L) for L in with_w])
    out = {}
    for n, L in zip(names, with_w):
        wn = _strings(g[n].attrs["weight_names"])
        if cls_of(L) == "TCN":
            out[name_of(L)] = tcn_reference.keras2_weights(g[n], wn, L["config"])
            continue
        out[name_of(L)] = [np.asarray(g[n][w], dtype=np.float64) for w in wn]
    return out


def load(path, weights_path=None):
    """A .keras archive, a Keras 2 .h5 full model, or a config JSON with a weights file."""
    if weights_path is not None:
        with open(path) as f:
            config = json.load(f)
        with h5py.File(weights_path, "r") as h5:
            layers = Model(config, {}).layers
            if _attr(h5, "layer_names"):
                w = _keras2_weights(h5, layers)
            else:
                w = _keras3_weights(h5, _saved_layers(config, layers))
        return Model(config, w)
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            blob = io.BytesIO(z.read("model.weights.h5"))
        with h5py.File(blob, "r") as h5:
            layers = Model(config, {}).layers
            w = _keras3_weights(h5, _saved_layers(config, layers))
        return Model(config, w)
    with h5py.File(path, "r") as h5:
        mc = h5.attrs["model_config"]
        config = json.loads(mc.decode("utf8") if isinstance(mc, bytes) else mc)
        w = _keras2_weights(h5["model_weights"], Model(config, {}).layers)
    return Model(config, w)


def _saved_layers(config, layers):
    """model.layers as Keras 3 saves them: a Sequential omits its InputLayer."""
    if config["class_name"] == "Sequential":
        return [L for L in layers if cls_of(L) != "InputLayer"]
    return layers


# ---------------------------------------------------------------- layers


def act(name, y):
    return gen_golden.act_torch(name or "linear", torch.from_numpy(np.ascontiguousarray(y))).numpy()


def time_axis(model):
    return 1 if model.data_format == "channels_first" else 0


def conv(L, x, w, model):
    c = L["config"]
    one = lambda v: v[0] if isinstance(v, (list, tuple)) else v  # noqa: E731
    cfg = {"class_name": cls_of(L), "kernel_size": one(c["kernel_size"]),
           "strides": one(c.get("strides", 1)), "dilation_rate": one(c.get("dilation_rate", 1)),
           "padding": c.get("padding", "valid").lower(), "groups": c.get("groups", 1),
           "depth_multiplier": c.get("depth_multiplier", 1),
           "output_padding": one(c["output_padding"]) if c.get("output_padding") is not None
           else None,
           "use_bias": c.get("use_bias", True), "activation": c.get("activation") or "linear",
           "data_format": model.data_format, "filters": c.get("filters")}
    x_cl = x.T if model.data_format == "channels_first" else x
    y, _ = gen_golden.forward_torch(cfg, x_cl.shape[1], w, np.asarray(x_cl, dtype=np.float64))
    return y


def pool(L, x, model):
    c = L["config"]
    one = lambda v: v[0] if isinstance(v, (list, tuple)) else v  # noqa: E731
    k = one(c.get("pool_size", 2))
    s = one(c["strides"]) if c.get("strides") is not None else k
    cf = model.data_format == "channels_first"
    xt = x.T if cf else x  # (steps, channels)
    n = xt.shape[0]
    if c.get("padding", "valid").lower() == "same":
        out = -(-n // s)
        left = max(0, (out - 1) * s + k - n) // 2
    else:
        out = (n - k) // s + 1
        left = 0
    y = np.zeros((out, xt.shape[1]))
    for o in range(out):
        lo, hi = max(0, o * s - left), min(n, o * s - left + k)
        win = xt[lo:hi]  # padded positions hold nothing: max ignores them, mean skips them
        y[o] = win.max(axis=0) if cls_of(L) == "MaxPooling1D" else win.mean(axis=0)
    return y.T if cf else y


def normalise(L, x, w, model, rank):
    c = L["config"]
    axis = c.get("axis", -1)
    if isinstance(axis, list):
        (axis,) = axis
    ax = axis if axis >= 0 else axis + rank + 1  # with the batch axis
    ax -= 1  # our tensors have none
    eps = c.get("epsilon", 1e-3)
    shape = [1] * x.ndim
    shape[ax] = x.shape[ax]
    it = iter(w)
    if cls_of(L) == "BatchNormalization":
        g = next(it).reshape(shape) if c.get("scale", True) else 1.0
        b = next(it).reshape(shape) if c.get("center", True) else 0.0
        mean, var = next(it).reshape(shape), next(it).reshape(shape)
        return (x - mean) / np.sqrt(var + eps) * g + b
    rms = c.get("rms_scaling", False)
    g = next(it).reshape(shape) if (c.get("scale", True) or rms) else 1.0
    b = next(it).reshape(shape) if (c.get("center", True) and not rms) else 0.0
    mean = x.mean(axis=ax, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=ax, keepdims=True)
    if rms:
        return x / np.sqrt(var + eps) * g
    return (x - mean) / np.sqrt(var + eps) * g + b


def run_layer(L, xs, model, ranks):
    cls, c = cls_of(L), L["config"]
    w = model.weights.get(name_of(L), [])
    x = xs[0]
    t = time_axis(model) if x.ndim == 2 else None
    if cls == "InputLayer" or cls in IDENTITY:
        return x
    if cls == "TCN":
        return tcn_reference.tcn_forward(c, w, x)
    if cls in CONV:
        return conv(L, x, w, model)
    if cls == "Dense":
        y = x @ w[0]
        if c.get("use_bias", True):
            y = y + w[1]
        return act(c.get("activation"), y)
    if cls == "Activation":
        return act(c["activation"], x)
    if cls in ("BatchNormalization", "LayerNormalization"):
        return normalise(L, x, w, model, x.ndim)
    if cls == "Rescaling":
        return x * c["scale"] + c.get("offset", 0.0)
    if cls == "ZeroPadding1D":
        p = c.get("padding", 1)
        a, b = (p, p) if isinstance(p, int) else p
        ax = 1 if c.get("data_format") == "channels_first" else 0
        pad = [(0, 0), (0, 0)]
        pad[ax] = (a, b)
        return np.pad(x, pad)
    if cls == "Cropping1D":
        a, b = c.get("cropping", (1, 1))
        return x[a:x.shape[0] - b]  # axis 1 of (batch, steps, features), always
    if cls == "UpSampling1D":
        return np.repeat(x, c.get("size", 2), axis=0)
    if cls in ("MaxPooling1D", "AveragePooling1D"):
        return pool(L, x, model)
    if cls in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
        f = np.max if cls == "GlobalMaxPooling1D" else np.mean
        return f(x, axis=t, keepdims=bool(c.get("keepdims", False)))
    if cls == "Flatten":
        if c.get("data_format") == "channels_first" and x.ndim > 1:
            x = np.moveaxis(x, 0, -1)  # Keras: to channels_last first
        return x.reshape(-1)
    if cls == "Reshape":
        return x.reshape([-1 if d is None else d for d in c["target_shape"]])
    if cls == "Permute":
        return np.transpose(x, [d - 1 for d in c["dims"]])
    if cls == "Add":
        return sum(xs)
    if cls == "Subtract":
        return xs[0] - xs[1]
    if cls == "Multiply":
        y = xs[0]
        for v in xs[1:]:
            y = y * v
        return y
    if cls == "Average":
        return sum(xs) / len(xs)
    if cls == "Maximum":
        return np.maximum.reduce(xs)
    if cls == "Minimum":
        return np.minimum.reduce(xs)
    if cls == "Concatenate":
        ax = c.get("axis", -1)
        return np.concatenate(xs, axis=ax if ax < 0 else ax - 1)
    raise ValueError("no reference for %s" % cls)


def _inbound(L):
    """The layers a Functional model's layer reads (Keras 3 or Keras 2 inbound nodes)."""
    nodes = L.get("inbound_nodes", [])
    if not nodes:
        return []
    node = nodes[0]
    names = []
    if isinstance(node, dict):
        def walk(a):
            if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__":
                names.append(a["config"]["keras_history"][0])
            elif isinstance(a, list):
                for v in a:
                    walk(v)
        walk(node["args"])
    else:
        names = [e[0] for e in node]
    return names


def predict(model, x, hook=None, pre=None):
    """x: one input (Keras layout, no batch axis), float64; returns the output tensor.
    pre(layer, inputs) and hook(layer, inputs, output), when given, see every layer's call
    (before and after it)."""
    x = np.asarray(x, dtype=np.float64)
    if not model.functional:
        for L in model.layers:
            if pre:
                pre(L, [x])
            y = run_layer(L, [x], model, None)
            if hook:
                hook(L, [x], y)
            x = y
        return x
    vals = {}
    cfg = model.config["config"]
    todo = list(model.layers)
    while todo:
        progress = False
        for L in list(todo):
            nm = name_of(L)
            if cls_of(L) == "InputLayer":
                vals[nm] = x
            else:
                ins = _inbound(L)
                if not all(i in vals for i in ins):
                    continue
                if pre:
                    pre(L, [vals[i] for i in ins])
                vals[nm] = run_layer(L, [vals[i] for i in ins], model, None)
                if hook:
                    hook(L, [vals[i] for i in ins], vals[nm])
            todo.remove(L)
            progress = True
        assert progress, "a cycle"
    out = cfg["output_layers"]
    while isinstance(out[0], list):
        out = out[0]
    return vals[out[0]]


def to_keras(model, frames):
    """frames x channels (what convd reads) -> the model's input tensor."""
    return frames.T if model.data_format == "channels_first" else frames


def windows(model, frames, hop=None):
    """One record (the output flattened in C order) per window of model.steps frames."""
    W = model.steps
    hop = hop or W
    recs = []
    for start in range(0, frames.shape[0] - W + 1, hop):
        y = predict(model, to_keras(model, frames[start:start + W]))
        recs.append(np.asarray(y).reshape(-1))
    return np.array(recs)


def stream(model, frames):
    """A streaming model over a whole signal: its output as frames x channels."""
    y = predict(model, to_keras(model, frames))
    return y.T if model.data_format == "channels_first" else y


def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--weights")
    ap.add_argument("--hop", type=int)
    ap.add_argument("--stream", action="store_true")
    a = ap.parse_args(argv)
    m = load(a.model, a.weights)
    x = np.fromfile(a.input, dtype="<f4").astype(np.float64).reshape(-1, m.channels)
    y = stream(m, x) if a.stream else windows(m, x, a.hop)
    np.asarray(y, dtype="<f4").tofile(a.output)


if __name__ == "__main__":
    main(sys.argv[1:])
