#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Keras model files for convd's tests, with the outputs Keras would compute for them.

Usage (from the top of the tree; Debian's /usr/bin/python3 with numpy, python3-torch and
python3-h5py; no Keras or TensorFlow needed):

    scripts/gen_keras_cases.py            # writes tests/data/keras/
    scripts/gen_keras_cases.py --out DIR  # elsewhere

Deterministic (fixed seeds): running it again rewrites identical files.

Every file is written in the exact layout Keras writes, with h5py and zipfile:
  Keras 3 .keras   a stored zip of metadata.json, config.json (the model config with every key
                   Keras 3 puts there: modules, dtype policies, initialisers, build configs,
                   inbound nodes {"args", "kwargs"}) and model.weights.h5, whose variables are
                   at layers/<snake_case class name>[_N]/vars/<i> (N counts the class in the
                   model's layer order, whatever the layers are named), with an empty vars
                   group for every layer without variables, the model's vars and an optimizer.
  Keras 2 .h5      attributes model_config, keras_version, backend; model_weights/ with
                   layer_names, each layer's group with weight_names and the datasets at
                   <layer>/<layer>/<variable>:0 (Keras 2 inbound nodes [[name, 0, 0, {}]]).
  weights only     NAME.json (model.to_json()) with NAME.weights.h5, in Keras 2's layout (the
                   layers at the root, top_level_model_weights) or Keras 3's.

For every good case NAME it writes the model file(s), NAME.in.f32 (the input: frames x
channels, float32 little-endian) and NAME.out.f32 (the expected output), and a line in
cases.txt:
    NAME FILE stream|window HOP
FILE is the model (CONFIG+WEIGHTS for weights-only cases); HOP the windows' hop (0: the
window length). A streaming case's output is frames x output channels; a windowed case's is
one record per window, the output tensor flattened in C order (Keras's layout).

The expected outputs come from scripts/keras_reference.py (numpy/PyTorch float64 from Keras's
definitions, reading the very files written here); convd's float32 results agree to about
1e-6 of each output's scale and the tests allow 1e-4.

Refused files go to bad/, listed in bad/expect.txt as NAME<TAB>fragment<TAB>...: convd must
refuse NAME with a message holding its path and every fragment.

real/ holds the inputs and references for the real models in ../shared/models/keras/ (when
that folder is present): the two sensor classifiers run windowed, and helberhlf_wavenet.h5
(weights only) with real/helberhlf_wavenet.json, the config written for it from its
architecture (Conv1D(32, 2, causal, relu) at dilations 1 2 4 8 1 2 4 8, then Conv1D(14, 1);
5 input channels).
"""

import argparse
import copy
import io
import json
import os
import sys
import zipfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_reference as kr  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                      "models", "keras")
CONV = kr.CONV

# ---------------------------------------------------------------- configs as Keras writes them


def initializer(name, keras, **cfg):
    d = {"class_name": name, "config": cfg}
    if keras == 3:
        d = {"module": "keras.initializers", "class_name": name, "config": cfg,
             "registered_name": None}
    return d


def dtype_policy(keras, name="float32"):
    if keras == 2:
        return name
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def one(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def full_config(cls, a, keras, df):
    """The config Keras writes for a layer given its arguments `a` (Keras's names)."""
    glorot = initializer("GlorotUniform", keras, seed=None)
    zeros = initializer("Zeros", keras)
    ones = initializer("Ones", keras)
    regs = lambda *ks: {k: None for k in ks}  # noqa: E731
    c = {}
    if cls in CONV:
        if cls != "DepthwiseConv1D":
            c["filters"] = a["filters"]
        c["kernel_size"] = one(a["kernel_size"])
        c["strides"] = one(a.get("strides", 1))
        c["padding"] = a.get("padding", "valid")
        if cls == "Conv1DTranspose":
            op = a.get("output_padding")
            c["output_padding"] = None if op is None else one(op)
        c["data_format"] = a.get("data_format", df)
        c["dilation_rate"] = one(a.get("dilation_rate", 1))
        if cls == "Conv1D" and (keras == 3 or "groups" in a):
            c["groups"] = a.get("groups", 1)
        if cls in ("SeparableConv1D", "DepthwiseConv1D"):
            c["depth_multiplier"] = a.get("depth_multiplier", 1)
        c["activation"] = a.get("activation", "linear")
        c["use_bias"] = a.get("use_bias", True)
        if cls == "SeparableConv1D":
            c.update(depthwise_initializer=glorot, pointwise_initializer=glorot,
                     bias_initializer=zeros,
                     **regs("depthwise_regularizer", "pointwise_regularizer", "bias_regularizer",
                            "activity_regularizer", "depthwise_constraint",
                            "pointwise_constraint", "bias_constraint"))
        elif cls == "DepthwiseConv1D":
            c.update(depthwise_initializer=glorot, bias_initializer=zeros,
                     **regs("depthwise_regularizer", "bias_regularizer", "activity_regularizer",
                            "depthwise_constraint", "bias_constraint"))
        else:
            c.update(kernel_initializer=glorot, bias_initializer=zeros,
                     **regs("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                            "kernel_constraint", "bias_constraint"))
    elif cls == "Dense":
        c.update(units=a["units"], activation=a.get("activation", "linear"),
                 use_bias=a.get("use_bias", True), kernel_initializer=glorot,
                 bias_initializer=zeros,
                 **regs("kernel_regularizer", "bias_regularizer", "kernel_constraint",
                        "bias_constraint"))
        if keras == 2:
            c["activity_regularizer"] = None
    elif cls == "Activation":
        c["activation"] = a["activation"]
    elif cls == "BatchNormalization":
        c.update(axis=a.get("axis", -1) if keras == 3 else one(a.get("axis", -1)),
                 momentum=0.99, epsilon=a.get("epsilon", 1e-3), center=a.get("center", True),
                 scale=a.get("scale", True), beta_initializer=zeros, gamma_initializer=ones,
                 moving_mean_initializer=zeros, moving_variance_initializer=ones,
                 **regs("beta_regularizer", "gamma_regularizer", "beta_constraint",
                        "gamma_constraint"))
        if keras == 3:
            c["synchronized"] = False
    elif cls == "LayerNormalization":
        c.update(axis=a.get("axis", -1), epsilon=a.get("epsilon", 1e-3),
                 center=a.get("center", True), scale=a.get("scale", True),
                 beta_initializer=zeros, gamma_initializer=ones,
                 **regs("beta_regularizer", "gamma_regularizer", "beta_constraint",
                        "gamma_constraint"))
        if keras == 3:
            c["rms_scaling"] = a.get("rms_scaling", False)
    elif cls == "Rescaling":
        c.update(scale=a["scale"], offset=a.get("offset", 0.0))
    elif cls in ("Dropout", "SpatialDropout1D", "AlphaDropout"):
        c.update(rate=a.get("rate", 0.5), seed=None)
        if cls != "SpatialDropout1D":
            c["noise_shape"] = None
    elif cls == "GaussianNoise":
        c.update(stddev=a.get("stddev", 0.1), seed=None)
    elif cls == "GaussianDropout":
        c.update(rate=a.get("rate", 0.2), seed=None)
    elif cls == "ZeroPadding1D":
        p = a.get("padding", 1)
        c["padding"] = [p, p] if isinstance(p, int) else list(p)
        if keras == 3:
            c["data_format"] = a.get("data_format", df)
    elif cls == "Cropping1D":
        c["cropping"] = list(a.get("cropping", (1, 1)))
    elif cls == "UpSampling1D":
        c["size"] = a.get("size", 2)
    elif cls in ("MaxPooling1D", "AveragePooling1D"):
        k = a.get("pool_size", 2)
        c.update(pool_size=one(k), padding=a.get("padding", "valid"),
                 strides=one(a.get("strides", k)), data_format=a.get("data_format", df))
    elif cls in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
        c.update(data_format=a.get("data_format", df), keepdims=a.get("keepdims", False))
    elif cls == "Flatten":
        c["data_format"] = a.get("data_format", "channels_last")
    elif cls == "Reshape":
        c["target_shape"] = list(a["target_shape"])
    elif cls == "Permute":
        c["dims"] = list(a["dims"])
    elif cls == "Concatenate":
        c["axis"] = a.get("axis", -1)
    elif cls in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Identity"):
        pass
    else:
        c.update(a)
    for k, v in a.items():  # anything else given is written as it is
        if k not in c and k not in ("name",):
            c[k] = v
    return c


class Graph:
    """A Keras model under construction, Sequential or Functional, Keras 2 or 3."""

    def __init__(self, keras=3, functional=False, df="channels_last", steps=None, channels=1,
                 input_layer=True, input_name=None):
        self.keras, self.functional, self.df = keras, functional, df
        self.steps, self.channels = steps, channels
        self.layers = []
        self.counts = {}
        self.input_layer = input_layer
        shape = [None, channels, steps] if df == "channels_first" else [None, steps, channels]
        self.batch_shape = shape
        self.output = None
        if input_layer:
            nm = input_name or ("input_layer" if keras == 3 else "input_1")
            cfg = {"batch_shape" if keras == 3 else "batch_input_shape": shape,
                   "dtype": "float32", "sparse": False, "name": nm}
            if keras == 2:
                cfg["ragged"] = False
            entry = {"class_name": "InputLayer", "config": cfg}
            if keras == 3:
                entry = {"module": "keras.layers", "class_name": "InputLayer", "config": cfg,
                         "registered_name": None}
            if functional:
                entry["name"] = nm
                entry["inbound_nodes"] = []
            self.layers.append(entry)
            self.input = nm

    def default_name(self, cls):
        stem = kr.to_snake_case(cls)
        n = self.counts.get(stem, 0)
        self.counts[stem] = n + 1
        return stem if n == 0 else "%s_%d" % (stem, n)

    def add(self, cls, *inputs, name=None, call_kwargs=None, **a):
        name = name or self.default_name(cls)
        cfg = {"name": name, "trainable": True, "dtype": dtype_policy(self.keras)}
        cfg.update(full_config(cls, a, self.keras, self.df))
        if self.keras == 3:
            entry = {"module": "keras.layers", "class_name": cls, "config": cfg,
                     "registered_name": None}
        else:
            entry = {"class_name": cls, "config": cfg}
        if not self.functional and not self.input_layer and not self.layers:
            cfg["batch_input_shape"] = self.batch_shape  # Keras 2: on the first layer
        if self.functional:
            entry["name"] = name
            ins = list(inputs)
            if self.keras == 3:
                tensors = [{"class_name": "__keras_tensor__",
                            "config": {"shape": None, "dtype": "float32",
                                       "keras_history": [i, 0, 0]}} for i in ins]
                args = [tensors] if len(tensors) > 1 else tensors
                entry["inbound_nodes"] = [{"args": args, "kwargs": call_kwargs or {}}]
            else:
                entry["inbound_nodes"] = [[[i, 0, 0, call_kwargs or {}] for i in ins]]
        self.layers.append(entry)
        self.output = name
        return name

    def config(self, name="model"):
        if self.functional:
            cfg = {"name": name, "trainable": True, "layers": self.layers,
                   "input_layers": [[self.input, 0, 0]], "output_layers": [[self.output, 0, 0]]}
            top = {"module": "keras.src.models.functional", "class_name": "Functional",
                   "config": cfg, "registered_name": "Functional"}
            if self.keras == 2:
                top = {"class_name": "Functional", "config": cfg}
        else:
            cfg = {"name": name, "layers": self.layers}
            if self.keras == 3:
                cfg = {"name": name, "trainable": True, "dtype": dtype_policy(3),
                       "layers": self.layers, "build_input_shape": self.batch_shape}
                top = {"module": "keras", "class_name": "Sequential", "config": cfg,
                       "registered_name": None, "build_config": {"input_shape": self.batch_shape}}
            else:
                top = {"class_name": "Sequential", "config": cfg}
        if self.keras == 2:
            top["keras_version"] = "2.11.0"
            top["backend"] = "tensorflow"
        return top


# ---------------------------------------------------------------- weights


def make_weights(model, rng, length):
    """Random weights for every layer, shaped by a pass of the reference over an input."""
    def pre(L, xs):
        name, cls, c = kr.name_of(L), kr.cls_of(L), L["config"]
        if name in model.weights:
            return
        x = xs[0]
        ws = []
        if cls in CONV:
            cin = x.shape[0] if model.data_format == "channels_first" else x.shape[1]
            cfg = {"class_name": cls, "kernel_size": c["kernel_size"][0],
                   "filters": c.get("filters"), "groups": c.get("groups", 1),
                   "depth_multiplier": c.get("depth_multiplier", 1),
                   "use_bias": c.get("use_bias", True)}
            for shp in kr.gen_golden.var_shapes(cfg, cin):
                fan = np.prod(shp[:-1]) if len(shp) > 1 else 1
                scale = 1.0 / np.sqrt(fan) if len(shp) > 1 else 0.3
                ws.append(rng.uniform(-1, 1, shp) * scale * 1.5)
        elif cls == "Dense":
            ws.append(rng.uniform(-1, 1, (x.shape[-1], c["units"])) / np.sqrt(x.shape[-1]) * 1.5)
            if c.get("use_bias", True):
                ws.append(rng.uniform(-0.3, 0.3, c["units"]))
        elif cls in ("BatchNormalization", "LayerNormalization"):
            axis = c.get("axis", -1)
            if isinstance(axis, list):
                (axis,) = axis
            ax = axis if axis >= 0 else axis + x.ndim + 1
            n = x.shape[ax - 1]
            if cls == "BatchNormalization":
                if c.get("scale", True):
                    ws.append(rng.uniform(0.5, 1.5, n))
                if c.get("center", True):
                    ws.append(rng.uniform(-0.5, 0.5, n))
                ws.append(rng.uniform(-0.5, 0.5, n))
                ws.append(rng.uniform(0.5, 2.0, n))
                if c.get("renorm"):  # Keras 3: moving_stddev, renorm_mean, renorm_stddev
                    ws += [rng.uniform(0.5, 1.5, n), rng.uniform(-0.5, 0.5, n),
                           rng.uniform(0.5, 1.5, n)]
            else:
                rms = c.get("rms_scaling", False)
                if c.get("scale", True) or rms:
                    ws.append(rng.uniform(0.5, 1.5, n))
                if c.get("center", True) and not rms:
                    ws.append(rng.uniform(-0.5, 0.5, n))
        # float32 values, as a file holds them
        model.weights[name] = [np.asarray(w, dtype=np.float32).astype(np.float64) for w in ws]

    x = np.zeros((model.channels, length) if model.data_format == "channels_first"
                 else (length, model.channels))
    kr.predict(model, x, pre=pre)


VAR_NAMES = {"Conv1D": ["kernel", "bias"], "Conv1DTranspose": ["kernel", "bias"],
             "DepthwiseConv1D": ["depthwise_kernel", "bias"],
             "SeparableConv1D": ["depthwise_kernel", "pointwise_kernel", "bias"],
             "Dense": ["kernel", "bias"]}


def var_names(L):
    cls, c = kr.cls_of(L), L["config"]
    if cls == "BatchNormalization":
        return ([n for n, on in (("gamma", c.get("scale", True)), ("beta", c.get("center", True)))
                 if on] + ["moving_mean", "moving_variance"])
    if cls == "LayerNormalization":
        rms = c.get("rms_scaling", False)
        return [n for n, on in (("gamma", c.get("scale", True) or rms),
                                ("beta", c.get("center", True) and not rms)) if on]
    names = VAR_NAMES.get(cls, [])
    return names if c.get("use_bias", True) else names[:-1]


# ---------------------------------------------------------------- files


def keras3_weights_bytes(model, name_attrs=True, mutate=None):
    """model.weights.h5 as Keras 3 writes it."""
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        used = {}
        for L in kr._saved_layers(model.config, model.layers):
            stem = kr.to_snake_case(kr.cls_of(L))
            if stem in used:
                used[stem] += 1
                stem = "%s_%d" % (stem, used[stem])
            else:
                used[stem] = 0
            g = f.create_group("layers/%s/vars" % stem)
            if name_attrs:
                g.attrs["name"] = kr.name_of(L)
            for i, w in enumerate(model.weights.get(kr.name_of(L), [])):
                g.create_dataset(str(i), data=np.asarray(w, dtype="<f4"))
        v = f.create_group("vars")
        if name_attrs:
            v.attrs["name"] = model.config["config"].get("name", "model")
        o = f.create_group("optimizer/vars")
        o.create_dataset("0", data=np.int64(7))
        o.create_dataset("1", data=np.float32(0.001))
        if mutate:
            mutate(f)
    return bio.getvalue()


def write_keras(path, model, version="3.6.0", name_attrs=True, mutate=None, config_text=None,
                extra=None, skip=()):
    wbytes = keras3_weights_bytes(model, name_attrs, mutate)
    entries = [("metadata.json", json.dumps({"keras_version": version,
                                             "date_saved": "2026-01-01@00:00:00"})),
               ("config.json", config_text if config_text is not None
                else json.dumps(model.config)),
               ("model.weights.h5", wbytes)]
    entries = [e for e in entries if e[0] not in skip] + (extra or [])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(zi, data)


def keras2_weights(g, model, vlen=False, chunk_names=False):
    """Keras 2's layout in group g: layer_names, and per layer weight_names + datasets."""
    layers = model.layers
    if not model.functional:
        layers = [L for L in layers if kr.cls_of(L) != "InputLayer"]
    names = [kr.name_of(L) for L in layers]

    def strings(xs):
        if vlen:
            return np.array(xs, dtype=h5py.string_dtype())
        return np.array([x.encode("utf8") for x in xs])
    if chunk_names:  # Keras splits a long attribute into NAME0, NAME1, ...
        half = len(names) // 2
        g.attrs["layer_names0"] = strings(names[:half])
        g.attrs["layer_names1"] = strings(names[half:])
    else:
        g.attrs["layer_names"] = strings(names)
    g.attrs["backend"] = b"tensorflow"
    g.attrs["keras_version"] = b"2.11.0"
    for L in layers:
        nm = kr.name_of(L)
        lg = g.create_group(nm)
        ws = model.weights.get(nm, [])
        wn = ["%s/%s:0" % (nm, v) for v in var_names(L)][:len(ws)]
        lg.attrs["weight_names"] = strings(wn) if wn else np.array([])
        for n, w in zip(wn, ws):
            lg.create_dataset(n, data=np.asarray(w, dtype="<f4"))


def write_h5(path, model, vlen=False, chunk_names=False, mutate=None):
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.11.0"
        f.attrs["model_config"] = json.dumps(model.config).encode("utf8")
        keras2_weights(f.create_group("model_weights"), model, vlen, chunk_names)
        if mutate:
            mutate(f)


def write_weights_only(stem, model, layout):
    with open(stem + ".json", "w") as f:
        json.dump(model.config, f)
    if layout == 3:
        with open(stem + ".weights.h5", "wb") as f:
            f.write(keras3_weights_bytes(model))
        return
    with h5py.File(stem + ".weights.h5", "w") as f:
        keras2_weights(f, model, vlen=True)
        f.create_group("top_level_model_weights").attrs["weight_names"] = np.array([])


def write_f32(path, a):
    np.asarray(a, dtype="<f4").tofile(path)


# ---------------------------------------------------------------- the cases


class Writer:
    def __init__(self, out):
        self.out = out
        os.makedirs(os.path.join(out, "bad"), exist_ok=True)
        self.lines = []
        self.bad = []

    def path(self, *p):
        return os.path.join(self.out, *p)

    def case(self, name, g, kind="keras", n=96, hop=0, seed=0, weights_layout=3, **kw):
        """Writes the model `g` (a Graph) as `kind`, an input, the reference output."""
        rng = np.random.default_rng(1000 + seed)
        model = kr.Model(g.config(name), {})
        make_weights(model, rng, model.steps or 64)
        if kind == "keras":
            fname = name + ".keras"
            write_keras(self.path(fname), model, **kw)
            check = kr.load(self.path(fname))
        elif kind == "h5":
            fname = name + ".h5"
            write_h5(self.path(fname), model, **kw)
            check = kr.load(self.path(fname))
        else:
            write_weights_only(self.path(name), model, weights_layout)
            fname = "%s.json+%s.weights.h5" % (name, name)
            check = kr.load(self.path(name + ".json"), self.path(name + ".weights.h5"))
        # the reference reads the weights back from the file written
        x = rng.standard_normal((n, model.channels))
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        windowed = model.steps is not None and is_windowed(model)
        y = kr.windows(check, x, hop or None) if windowed else kr.stream(check, x)
        assert np.all(np.isfinite(y)) and y.size > 0, name
        write_f32(self.path(name + ".in.f32"), x)
        write_f32(self.path(name + ".out.f32"), y)
        self.lines.append("%s %s %s %d" % (name, fname, "window" if windowed else "stream", hop))
        return model

    def bad_case(self, fname, *fragments):
        self.bad.append("\t".join((fname,) + fragments))

    def finish(self):
        with open(self.path("cases.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")
        with open(self.path("bad", "expect.txt"), "w") as f:
            f.write("\n".join(self.bad) + "\n")


WINDOW_CLASSES = ("Flatten", "Reshape", "GlobalMaxPooling1D", "GlobalAveragePooling1D")


def is_windowed(model):
    cf = model.data_format == "channels_first"
    for L in model.layers:
        cls, c = kr.cls_of(L), L["config"]
        if cls in WINDOW_CLASSES:
            return True
        if cls == "Permute" and list(c["dims"]) == [2, 1]:
            return True
        if cf and c.get("activation") in ("softmax", "log_softmax") and cls != "Dense":
            return True
        if cls in ("BatchNormalization", "LayerNormalization"):
            axis = c.get("axis", -1)
            axis = axis[0] if isinstance(axis, list) else axis
            if (axis in (-1, 2)) == cf:
                return True
    return False


def good_cases(w):
    # 1. the Conv1D family and the per-frame layers, Keras 3 Sequential, streaming
    g = Graph(keras=3, channels=3)
    g.add("Conv1D", filters=8, kernel_size=3, padding="same", dilation_rate=2, activation="relu")
    g.add("DepthwiseConv1D", kernel_size=3, padding="same", depth_multiplier=2)
    g.add("SeparableConv1D", filters=6, kernel_size=3, padding="valid", depth_multiplier=2,
          activation="tanh")
    g.add("Conv1DTranspose", filters=5, kernel_size=4, strides=2, padding="same")
    g.add("BatchNormalization")
    g.add("Dense", units=6, activation="gelu")
    g.add("LayerNormalization", epsilon=1e-5)
    g.add("Rescaling", scale=0.5, offset=0.25)
    g.add("Conv1D", filters=4, kernel_size=2, strides=2, padding="causal", activation="silu",
          groups=2)
    g.add("Activation", activation="sigmoid")
    w.case("k3_seq_conv_family", g, n=100, seed=1)

    # 2. padding, cropping, resampling, pooling and the identity layers
    g = Graph(keras=3, channels=2)
    g.add("ZeroPadding1D", padding=(2, 1))
    g.add("Conv1D", filters=6, kernel_size=4, padding="valid", activation="elu")
    g.add("MaxPooling1D", pool_size=3, strides=1, padding="same")
    g.add("GaussianNoise", stddev=0.3)
    g.add("AveragePooling1D", pool_size=2, strides=2, padding="valid")
    g.add("Cropping1D", cropping=(1, 2))
    g.add("UpSampling1D", size=3)
    g.add("SpatialDropout1D", rate=0.2)
    g.add("AveragePooling1D", pool_size=4, strides=1, padding="same")
    g.add("GaussianDropout", rate=0.1)
    g.add("MaxPooling1D", pool_size=2, strides=3, padding="valid")
    g.add("Dropout", rate=0.5)
    g.add("Permute", dims=(1, 2))
    g.add("LayerNormalization", rms_scaling=True)
    g.add("BatchNormalization", center=False)
    g.add("BatchNormalization", scale=False, epsilon=0.01)
    g.add("LayerNormalization", center=False)
    g.add("AlphaDropout", rate=0.1)
    g.add("Dense", units=3, use_bias=False)
    w.case("k3_seq_pool_pad", g, n=120, seed=2)

    # 3. a gated WaveNet, Keras 3 Functional, layers named as a person would
    g = Graph(keras=3, functional=True, channels=1, input_name="audio")
    h = g.add("Conv1D", "audio", name="rechannel", filters=8, kernel_size=1, use_bias=False)
    skips = []
    for i, d in enumerate((1, 2, 4, 8)):
        f = g.add("Conv1D", h, name="filter_%d" % i, filters=8, kernel_size=3, padding="causal",
                  dilation_rate=d, activation="tanh")
        gt = g.add("Conv1D", h, name="gate_%d" % i, filters=8, kernel_size=3, padding="causal",
                   dilation_rate=d, activation="sigmoid")
        a = g.add("Multiply", f, gt, name="gated_%d" % i)
        if d != 8:  # the last layer's residual would feed nothing: Keras leaves it out
            r = g.add("Conv1D", a, name="res_%d" % i, filters=8, kernel_size=1)
            h = g.add("Add", h, r, name="residual_%d" % i)
        skips.append(g.add("Dense", a, name="skip_%d" % i, units=8))
    s = g.add("Add", *skips, name="skips")
    s = g.add("Activation", s, name="skips_relu", activation="relu")
    g.add("Dense", s, name="head", units=1)
    w.case("k3_func_wavenet", g, n=200, seed=3)

    # 4. the merges, branches of different latencies (same next to causal, cropped)
    g = Graph(keras=3, functional=True, channels=2)
    a = g.add("Conv1D", "input_layer", filters=4, kernel_size=5, padding="same")
    b = g.add("Conv1D", "input_layer", filters=4, kernel_size=3, padding="causal")
    c = g.add("ZeroPadding1D", "input_layer", padding=(1, 3))
    c = g.add("Conv1D", c, filters=4, kernel_size=5, padding="valid")
    d = g.add("MaxPooling1D", "input_layer", pool_size=5, strides=1, padding="same")
    d = g.add("Dense", d, units=4)
    s1 = g.add("Subtract", a, b)
    s2 = g.add("Average", b, c, d)
    s3 = g.add("Maximum", a, c)
    s4 = g.add("Minimum", s1, s2)
    s5 = g.add("Identity", s3)
    cat = g.add("Concatenate", s4, s5, s2, axis=-1)
    g.add("Conv1D", cat, filters=3, kernel_size=2, padding="causal", activation="log_softmax")
    w.case("k3_func_merges", g, n=90, seed=4)

    # 5. channels_first, streaming
    g = Graph(keras=3, channels=3, df="channels_first")
    g.add("Conv1D", filters=6, kernel_size=3, padding="same", data_format="channels_first",
          activation="relu")
    g.add("ZeroPadding1D", padding=(1, 1), data_format="channels_first")
    g.add("MaxPooling1D", pool_size=3, strides=1, padding="valid", data_format="channels_first")
    g.add("BatchNormalization", axis=1)
    g.add("DepthwiseConv1D", kernel_size=2, padding="valid", depth_multiplier=1,
          data_format="channels_first")
    g.add("LayerNormalization", axis=1)
    g.add("Conv1DTranspose", filters=4, kernel_size=3, strides=1, padding="valid",
          data_format="channels_first")
    g.add("AveragePooling1D", pool_size=2, strides=2, padding="same",
          data_format="channels_first")
    g.add("SeparableConv1D", filters=2, kernel_size=3, padding="same",
          data_format="channels_first", activation="tanh")
    w.case("k3_seq_channels_first", g, n=79, seed=5)

    # 6. a windowed sensor classifier, channels_last, default hop and hop 3
    for hop in (0, 3):
        g = Graph(keras=3, channels=2, steps=16)
        g.add("Conv1D", filters=8, kernel_size=3, padding="valid", activation="relu")
        g.add("BatchNormalization")
        g.add("MaxPooling1D", pool_size=2)
        g.add("Conv1D", filters=6, kernel_size=3, strides=2, padding="same", activation="relu")
        g.add("AveragePooling1D", pool_size=2, strides=1, padding="same")
        g.add("Flatten")
        g.add("Dense", units=16, activation="relu")
        g.add("Dropout", rate=0.5)
        g.add("Dense", units=4, activation="softmax")
        w.case("k3_seq_classifier" + ("_hop3" if hop else ""), g, n=120, hop=hop, seed=6)

    # 7. channels_first windows: Flatten in both orders
    for fdf in ("channels_first", "channels_last"):
        g = Graph(keras=3, channels=2, steps=12, df="channels_first")
        g.add("Conv1D", filters=4, kernel_size=3, padding="same", data_format="channels_first",
              activation="relu")
        g.add("MaxPooling1D", pool_size=3, strides=3, data_format="channels_first")
        g.add("Flatten", data_format=fdf)
        g.add("Dense", units=3, activation="softmax")
        w.case("k3_cf_flatten_" + fdf[9:], g, n=70, hop=5, seed=7)

    # 8. global pooling in a Functional model, both kinds, keepdims, concatenated
    g = Graph(keras=3, functional=True, channels=3, steps=20)
    a = g.add("Conv1D", "input_layer", filters=6, kernel_size=5, padding="valid",
              activation="relu")
    p = g.add("GlobalAveragePooling1D", a)
    q = g.add("GlobalMaxPooling1D", a, keepdims=True)
    q = g.add("Reshape", q, target_shape=(-1,))
    c = g.add("Concatenate", p, q)
    c = g.add("BatchNormalization", c)
    g.add("Dense", c, units=5, activation="log_softmax")
    w.case("k3_func_global", g, n=100, hop=7, seed=8)

    # 9. Permute and Reshape: the time axis changes places
    g = Graph(keras=3, channels=3, steps=8)
    g.add("Conv1D", filters=4, kernel_size=3, padding="same")
    g.add("Permute", dims=(2, 1))
    g.add("Conv1D", filters=5, kernel_size=2, padding="valid", activation="tanh")
    g.add("Reshape", target_shape=(5, 3))
    g.add("LayerNormalization", axis=1)
    g.add("Flatten")
    g.add("Dense", units=2)
    w.case("k3_seq_permute_reshape", g, n=50, hop=2, seed=9)

    # 10. channels_first: softmax over time, norms over time; the record is (channels, steps)
    g = Graph(keras=3, channels=2, steps=10, df="channels_first")
    g.add("Conv1D", filters=3, kernel_size=3, padding="same", data_format="channels_first")
    g.add("LayerNormalization", axis=-1)
    g.add("BatchNormalization", axis=2)
    g.add("Conv1D", filters=2, kernel_size=1, data_format="channels_first",
          activation="softmax")
    w.case("k3_cf_softmax_time", g, n=40, hop=3, seed=10)

    # 11. same padding with strides inside a window of a length no stride divides
    g = Graph(keras=3, channels=1, steps=10)
    g.add("Conv1D", filters=3, kernel_size=5, strides=3, padding="same")
    g.add("AveragePooling1D", pool_size=2, strides=2, padding="same")
    g.add("Flatten")
    w.case("k3_same_strided_window", g, n=40, hop=1, seed=11)

    # 12. Keras 2 full model, Sequential without an InputLayer (batch_input_shape), windowed
    g = Graph(keras=2, channels=1, steps=24, input_layer=False)
    g.add("Conv1D", filters=6, kernel_size=4, strides=4, padding="same", activation="relu")
    g.add("Conv1D", filters=6, kernel_size=3, padding="valid")
    g.add("BatchNormalization", axis=-1)
    g.add("Flatten")
    g.add("Dense", units=3, activation="softmax")
    w.case("k2_seq_classifier", g, kind="h5", n=100, seed=12)

    # 13. Keras 2 Functional, streaming: a residual block with BatchNormalization
    g = Graph(keras=2, functional=True, channels=2)
    a = g.add("Conv1D", "input_1", filters=4, kernel_size=3, padding="causal",
              dilation_rate=2)
    a = g.add("BatchNormalization", a, axis=[2])
    a = g.add("Activation", a, activation="relu")
    b = g.add("Conv1D", "input_1", filters=4, kernel_size=1)
    s = g.add("Add", a, b)
    g.add("SeparableConv1D", s, filters=2, kernel_size=3, padding="same")
    w.case("k2_func_resnet", g, kind="h5", n=70, seed=13, vlen=True, chunk_names=True)

    # 14. weights only: Keras 2's layout, and Keras 3's .weights.h5
    g = Graph(keras=2, channels=2)
    g.add("Conv1D", filters=5, kernel_size=2, padding="causal", activation="relu")
    g.add("Conv1D", filters=5, kernel_size=2, padding="causal", dilation_rate=2,
          activation="relu")
    g.add("Conv1D", filters=3, kernel_size=1)
    w.case("k2_weights_only", g, kind="weights", n=60, seed=14, weights_layout=2)
    g = Graph(keras=3, functional=True, channels=1, steps=9)
    a = g.add("Conv1D", "input_layer", name="c", filters=3, kernel_size=3)
    a = g.add("GlobalMaxPooling1D", a, name="g")
    g.add("Dense", a, name="d", units=2)
    w.case("k3_weights_only", g, kind="weights", n=45, seed=15, weights_layout=3)

    # 15. Keras 2's older Functional class name "Model"; transposed convolutions with
    # output_padding; an integer padding; ActivityRegularization; mixed precision policy
    g = Graph(keras=2, functional=True, channels=2)
    a = g.add("ZeroPadding1D", "input_1", padding=2)
    a = g.add("Conv1DTranspose", a, filters=3, kernel_size=3, strides=2, padding="valid",
              output_padding=1, activation="relu")
    a = g.add("ActivityRegularization", a, l1=0.01, l2=0.0)
    a = g.add("Conv1DTranspose", a, filters=2, kernel_size=4, strides=2, padding="same",
              output_padding=0)
    g.add("Dense", a, units=2, activation="tanh")
    g.layers[1]["config"]["padding"] = 2  # as Keras 2.0 wrote it
    g.layers[3]["config"]["dtype"] = "mixed_float16"

    class ModelGraph:
        def config(self, name):
            cfg = g.config(name)
            cfg["class_name"] = "Model"
            return cfg
    w.case("k2_model_transpose", ModelGraph(), kind="h5", n=50, seed=17)

    # 16. BatchNormalization with renorm (Keras 3 saves three more variables), dtype policies
    g = Graph(keras=3, channels=3)
    g.add("Conv1D", filters=4, kernel_size=3, padding="causal")
    g.add("BatchNormalization", renorm=True, renorm_clipping=None, renorm_momentum=0.99)
    g.add("Dense", units=2)
    g.layers[1]["config"]["dtype"] = dtype_policy(3, "mixed_float16")
    w.case("k3_bn_renorm", g, n=40, seed=18)

    # 17. an older Keras 3 layout (no name attributes), dtype as a string
    g = Graph(keras=3, channels=1)
    g.add("Conv1D", filters=2, kernel_size=2, padding="causal")
    for L in g.layers:
        L["config"]["dtype"] = "float32"
    w.case("k3_old_layout", g, n=30, seed=16, version="3.1.1", name_attrs=False)


# ---------------------------------------------------------------- WaveNets in Keras's vocabulary


def wavenet_graph(channels_in=1, arrays=((8, 4, (1, 2, 4), 3, False),), gated=False,
                  act="tanh", gate="sigmoid", mixin=True, rechannel=True, scale=None,
                  act_layer=False, mutate=None, keras=3):
    """NAM's WaveNet (layer arrays) as a Keras Functional graph: per array a rechannel 1x1,
    layers of dilated causal Conv1D (plain, or a filter and a gate multiplied), the
    condition mixed in by 1x1s of the input, a 1x1 residual Add, the activations added as
    skips (after the previous array's head), a 1x1 head; the head scale as Rescaling.
    arrays: (channels, head_size, dilations, kernel_size, head_bias) each. mutate makes a
    graph that almost matches: "between" (a BatchNormalization before the activation),
    "merge" (the gate added, not multiplied), "same" (a same-padded layer), "softmax" (the
    activation), "skip_conv" (a 1x1 on each skip)."""
    inp = "audio" if keras == 3 else "input_1"
    g = Graph(keras=keras, functional=True, channels=channels_in, input_name=inp)
    x = h = inp
    head = None
    for ai, (C, H, dils, K, hbias) in enumerate(arrays):
        if ai > 0 or rechannel:
            h = g.add("Conv1D", h, name="a%d_rechannel" % ai, filters=C, kernel_size=1,
                      use_bias=False)
        acts = []
        for li, d in enumerate(dils):
            last = ai == len(arrays) - 1 and li == len(dils) - 1
            mut = mutate if li == 1 else None

            def zconv(tag, a_):
                pre = "a%d_l%d_%s" % (ai, li, tag)
                pad = "same" if mut == "same" else "causal"
                if mut == "softmax" and tag != "gate":
                    a_ = "softmax"
                if not (mixin or act_layer or mut == "between"):
                    return g.add("Conv1D", h, name=pre, filters=C, kernel_size=K, padding=pad,
                                 dilation_rate=d, activation=a_)
                z = g.add("Conv1D", h, name=pre, filters=C, kernel_size=K, padding=pad,
                          dilation_rate=d)
                if mixin:
                    m = g.add("Conv1D", x, name=pre + "_mixin", filters=C, kernel_size=1,
                              use_bias=False)
                    z = g.add("Add", z, m, name=pre + "_z")
                if mut == "between":
                    z = g.add("BatchNormalization", z, name=pre + "_bn")
                return g.add("Activation", z, name=pre + "_act", activation=a_)
            if gated:
                f = zconv("filter", act)
                gt = zconv("gate", gate)
                a = g.add("Add" if mut == "merge" else "Multiply", f, gt,
                          name="a%d_l%d_gated" % (ai, li))
            else:
                a = zconv("conv", act)
            if mutate == "skip_conv":
                acts.append(g.add("Conv1D", a, name="a%d_l%d_skip" % (ai, li), filters=C,
                                  kernel_size=1))
            else:
                acts.append(a)
            if not last:  # the last layer's residual would feed nothing: Keras leaves it out
                r = g.add("Conv1D", a, name="a%d_l%d_res" % (ai, li), filters=C, kernel_size=1)
                h = g.add("Add", h, r, name="a%d_l%d_h" % (ai, li))
        s = g.add("Add", *(([head] if head else []) + acts), name="a%d_skips" % ai)
        head = g.add("Conv1D", s, name="a%d_head" % ai, filters=H, kernel_size=1,
                     use_bias=hbias)
    if scale is not None:
        g.add("Rescaling", head, name="head_scale", scale=scale, offset=0.0)
    else:
        g.output = head
    return g


def wavenet_cases(w):
    """Keras WaveNets that convd runs on its fused WaveNet kernels (k?_wn_*), and graphs
    that almost match, which must run unfused (k3_wn_nofuse_*)."""
    two = ((8, 4, (1, 2, 4), 3, False), (4, 1, (1, 2, 8), 3, True))
    w.case("k3_wn_plain", wavenet_graph(arrays=two, scale=0.5), n=300, seed=40)
    w.case("k3_wn_gated", wavenet_graph(channels_in=2, arrays=((6, 2, (1, 2, 4, 8), 2, True),),
                                        gated=True, mixin=False), n=200, seed=41)
    w.case("k3_wn_gated_mixin",
           wavenet_graph(arrays=((16, 8, (1, 2, 4, 8, 16), 3, False), (8, 1, (1, 2, 4), 3, True)),
                         gated=True, scale=0.25), n=300, seed=42)
    w.case("k3_wn_act_layer", wavenet_graph(channels_in=3, arrays=((3, 2, (1, 3), 3, True),),
                                            act="relu", mixin=False, rechannel=False,
                                            act_layer=True), n=100, seed=43)
    w.case("k3_wn_plain16", wavenet_graph(arrays=((16, 8, (1, 2, 4, 8), 3, False),
                                                   (8, 1, (1, 2, 4, 8), 3, True)), scale=0.1),
           n=300, seed=44)
    w.case("k2_wn_plain", wavenet_graph(arrays=two, act="softsign", keras=2), kind="h5", n=150,
           seed=45)
    for mut in ("between", "merge", "same", "softmax", "skip_conv"):
        w.case("k3_wn_nofuse_" + mut,
               wavenet_graph(arrays=two, gated=mut in ("merge",), scale=0.5, mutate=mut),
               n=150, seed=46)


# ---------------------------------------------------------------- refused files


def bad_cases(w):
    base = Graph(keras=3, channels=1, steps=8)
    base.add("Conv1D", filters=2, kernel_size=3)
    base.add("Flatten")
    base.add("Dense", units=2)
    model = kr.Model(base.config("bad"), {})
    make_weights(model, np.random.default_rng(5), 8)
    P = lambda n: w.path("bad", n)  # noqa: E731

    with open(P("not_zip.keras"), "w") as f:
        f.write("this is not a zip archive\n")
    w.bad_case("not_zip.keras", "Not a zip archive", "config.json and model.weights.h5")
    open(P("empty.keras"), "w").close()
    w.bad_case("empty.keras", "zip")
    write_keras(P("full.keras"), model)
    data = open(P("full.keras"), "rb").read()
    os.remove(P("full.keras"))
    with open(P("truncated.keras"), "wb") as f:
        f.write(data[:len(data) // 2])
    w.bad_case("truncated.keras", "zip")
    write_keras(P("no_config.keras"), model, skip=("config.json",))
    w.bad_case("no_config.keras", "no config.json in the archive")
    write_keras(P("no_weights.keras"), model, skip=("model.weights.h5",))
    w.bad_case("no_weights.keras", "no model.weights.h5 in the archive")
    write_keras(P("config_not_json.keras"), model, config_text="{\"class_name\": ")
    w.bad_case("config_not_json.keras", "config.json", "invalid JSON")

    def replace(f, path, data):
        del f[path]
        f[path] = data

    def write_mut(name, mutate, *frags):
        write_keras(P(name), model, mutate=mutate)
        w.bad_case(name, *frags)

    write_mut("shape_wrong.keras",
              lambda f: replace(f, "layers/conv1d/vars/0", np.zeros((3, 2, 2), "<f4")),
              "model.weights.h5: layers/conv1d/vars/0", "shape (3, 2, 2)",
              "layers[1] (conv1d) (Conv1D) variable 0 has shape (3, 1, 2)")
    write_mut("dtype_int.keras",
              lambda f: replace(f, "layers/conv1d/vars/1", np.zeros(2, "<i4")),
              "layers/conv1d/vars/1", "not floating point")
    write_mut("dtype_string.keras",
              lambda f: replace(f, "layers/dense/vars/1", np.array([b"ab", b"cd"])),
              "layers/dense/vars/1", "not floating point")

    def as_group(f):
        del f["layers/dense/vars/0"]
        f.create_group("layers/dense/vars/0")
    write_mut("dataset_is_group.keras", as_group, "layers/dense/vars/0", "not a dataset")
    write_mut("missing_var.keras", lambda f: f.__delitem__("layers/dense/vars/1"),
              "layers/dense/vars", "1 variables", "layers[3] (dense) (Dense) has 2")
    write_mut("extra_var.keras",
              lambda f: f.create_dataset("layers/conv1d/vars/2", data=np.zeros(2, "<f4")),
              "layers/conv1d/vars", "3 variables", "(Conv1D) has 2")
    write_mut("no_layer_group.keras", lambda f: f.__delitem__("layers/conv1d"),
              "layers/conv1d/vars: missing", "layers[1] (conv1d) (Conv1D)")
    write_mut("nan_weights.keras",
              lambda f: replace(f, "layers/dense/vars/1", np.array([1, np.nan], "<f4")),
              "layers/dense/vars/1", "not a finite float32")

    def ext_link(f):
        del f["layers/conv1d/vars/0"]
        f["layers/conv1d/vars/0"] = h5py.ExternalLink("/etc/passwd", "/x")
    write_mut("external_link.keras", ext_link, "layers/conv1d/vars/0", "external link")

    def soft_link(f):
        del f["layers/conv1d/vars/0"]
        f["layers/conv1d/vars/0"] = h5py.SoftLink("/layers/dense/vars/0")
    write_mut("soft_link.keras", soft_link, "layers/conv1d/vars/0", "soft link")

    wb = keras3_weights_bytes(model)
    write_keras(P("weights_not_h5.keras"), model,
                extra=[("model.weights.h5", b"garbage" * 100)], skip=("model.weights.h5",))
    w.bad_case("weights_not_h5.keras", "model.weights.h5", "not an HDF5 file")
    write_keras(P("weights_truncated.keras"), model,
                extra=[("model.weights.h5", wb[:len(wb) // 2])], skip=("model.weights.h5",))
    w.bad_case("weights_truncated.keras", "model.weights.h5", "cannot open as HDF5")

    def config_variant(name, edit, *frags, graph=None):
        m = copy.deepcopy(graph_model(graph) if graph else model)
        edit(m.config)
        write_keras(P(name), m)
        w.bad_case(name, *frags)

    def graph_model(g):
        m = kr.Model(g.config("bad"), {})
        make_weights(m, np.random.default_rng(5), m.steps or 16)
        return m

    fg = Graph(keras=3, functional=True, channels=1, steps=8)
    a = fg.add("Conv1D", "input_layer", name="c1", filters=2, kernel_size=3)
    b = fg.add("Dropout", a, name="drop", rate=0.5)
    fg.add("Dense", b, name="out", units=2)

    def hist(cfg, i):
        return cfg["config"]["layers"][i]["inbound_nodes"][0]["args"][0]["config"]["keras_history"]

    config_variant("missing_layer.keras", lambda c: hist(c, 2).__setitem__(0, "nope"),
                   "layers[2] (drop)", "inputs[0]='nope'", "no layer has that name", graph=fg)

    def cycle(c):
        hist(c, 1)[0] = "out"
    config_variant("cycle.keras", cycle, "cycle", "c1 -> drop -> out -> c1", graph=fg)

    def shared(c):
        L = c["config"]["layers"][1]
        L["inbound_nodes"].append(copy.deepcopy(L["inbound_nodes"][0]))
    config_variant("shared_layer.keras", shared, "layers[1] (c1) (Conv1D)", "called 2 times",
                   "shared layer", graph=fg)

    def training(c):
        c["config"]["layers"][2]["inbound_nodes"][0]["kwargs"] = {"training": True}
    config_variant("training_true.keras", training, "layers[2] (drop) (Dropout)",
                   "training=True", graph=fg)

    def custom(c):
        L = c["config"]["layers"][1]
        L["module"] = "my_layers"
        L["class_name"] = "Conv1D"
        L["registered_name"] = "Custom>Conv1D"
    config_variant("custom_layer.keras", custom, "layers[1] (conv1d)", "class_name='Conv1D'",
                   "a custom layer", "my_layers", "Custom>Conv1D")

    def lstm(c):
        L = c["config"]["layers"][1]
        L["class_name"] = "LSTM"
        L["config"] = {"name": "lstm", "units": 4}
    config_variant("lstm.keras", lstm, "layers[1] (lstm)", "class_name='LSTM'",
                   "recurrent layer")

    def two_inputs(c):
        c["config"]["input_layers"] = [["input_layer", 0, 0], ["c1", 0, 0]]
    config_variant("multi_input.keras", two_inputs, "config.input_layers", "one input",
                   graph=fg)

    def quantized(c):
        c["config"]["layers"][1]["config"]["dtype"] = {
            "module": "keras", "class_name": "QuantizedDTypePolicy",
            "config": {"name": "int8_from_float32", "source_name": "float32"},
            "registered_name": None}
    config_variant("quantized.keras", quantized, "layers[1] (conv1d) (Conv1D)",
                   "QuantizedDTypePolicy", "quantized")

    def no_steps(c):
        c["config"]["layers"][0]["config"]["batch_shape"] = [None, None, 1]
    config_variant("flatten_no_steps.keras", no_steps, "layers[2] (flatten)",
                   "whole window", "no fixed length")

    def bad_strides(c):
        c["config"]["layers"][1]["config"]["strides"] = [0]
    config_variant("bad_strides.keras", bad_strides, "config.json", "layers[1] (conv1d)",
                   "config.strides=[0]", "must be >= 1")

    def crop_cf(c):
        c["config"]["layers"].insert(1, {"module": "keras.layers", "class_name": "Cropping1D",
                                         "config": {"name": "crop", "cropping": [1, 1]},
                                         "registered_name": None})
        c["config"]["layers"][0]["config"]["batch_shape"] = [None, 1, 8]
        c["config"]["layers"][2]["config"]["data_format"] = "channels_first"
    config_variant("cropping_channels_first.keras", crop_cf, "layers[1] (crop)",
                   "Cropping1D", "channels")

    # Keras 2 .h5 files
    k2 = Graph(keras=2, channels=1)
    k2.add("Conv1D", filters=2, kernel_size=2, padding="causal")
    k2.add("Dense", units=1)
    m2 = kr.Model(k2.config("bad2"), {})
    make_weights(m2, np.random.default_rng(6), 8)
    write_h5(P("h5_wrong_count.h5"), m2,
             mutate=lambda f: f["model_weights"].attrs.__setitem__(
                 "layer_names", np.array([b"conv1d"])))
    w.bad_case("h5_wrong_count.h5", "weights for 1 layers (conv1d)",
               "2 layers with weights (conv1d, dense)")
    write_h5(P("h5_missing_dataset.h5"), m2,
             mutate=lambda f: f.__delitem__("model_weights/dense/dense/bias:0"))
    w.bad_case("h5_missing_dataset.h5", "model_weights/dense/dense/bias:0", "missing",
               "layers[2] (dense) (Dense)")
    write_h5(P("h5_wrong_shape.h5"), m2,
             mutate=lambda f: replace(f, "model_weights/dense/dense/kernel:0",
                                      np.zeros((3, 1), "<f4")))
    w.bad_case("h5_wrong_shape.h5", "model_weights/dense/dense/kernel:0", "shape (3, 1)",
               "variable 0 has shape (2, 1)")
    with h5py.File(P("h5_no_config.h5"), "w") as f:
        keras2_weights(f, m2)
    w.bad_case("h5_no_config.h5", "weights only", "CONFIG.json+")
    write_h5(P("h5_full.h5"), m2)
    data = open(P("h5_full.h5"), "rb").read()
    os.remove(P("h5_full.h5"))
    with open(P("h5_truncated.h5"), "wb") as f:
        f.write(data[:len(data) * 2 // 3])
    w.bad_case("h5_truncated.h5", "cannot open as HDF5", "truncated")
    with open(P("h5_not_hdf5.h5"), "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    w.bad_case("h5_not_hdf5.h5", "cannot open as HDF5")
    write_h5(P("h5_config_int.h5"), m2,
             mutate=lambda f: f.attrs.__setitem__("model_config", np.int32(3)))
    w.bad_case("h5_config_int.h5", "model_config", "not text")
    noinput = Graph(keras=2, channels=1)
    noinput.add("Conv1D", filters=2, kernel_size=2)
    cfg = noinput.config("x")
    cfg["config"]["layers"] = cfg["config"]["layers"][1:]
    m3 = kr.Model.__new__(kr.Model)
    m3.config, m3.weights, m3.layers, m3.functional = cfg, {}, cfg["config"]["layers"], False
    write_h5(P("h5_no_input_shape.h5"), m3)
    w.bad_case("h5_no_input_shape.h5", "input's shape")


# ---------------------------------------------------------------- the real models


def helberhlf_config():
    """model.to_json() of the notebook's WaveNet (Keras 2.11), written from its architecture."""
    g = Graph(keras=2, channels=5)
    for d in (1, 2, 4, 8, 1, 2, 4, 8):
        g.add("Conv1D", filters=32, kernel_size=2, padding="causal", activation="relu",
              dilation_rate=d, groups=1)
    g.add("Conv1D", filters=14, kernel_size=1, groups=1)
    return g.config("sequential")


def real_cases(w):
    out = w.path("real")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "helberhlf_wavenet.json"), "w") as f:
        json.dump(helberhlf_config(), f, indent=1)
        f.write("\n")
    if not os.path.isdir(SHARED):
        print("note: %s is absent: the real models' references are not rewritten" % SHARED)
        return
    rng = np.random.default_rng(20260101)
    for stem, n in (("Gloryjaw_ecg_model", 200), ("oshinrastogi_cnn1d_model", 200)):
        m = kr.load(os.path.join(SHARED, stem + ".keras"))
        x = np.asarray(rng.standard_normal((n, m.channels)), np.float32).astype(np.float64)
        write_f32(os.path.join(out, stem + ".in.f32"), x)
        for hop in (0, 1):
            y = kr.windows(m, x, hop or None)
            write_f32(os.path.join(out, "%s.hop%d.out.f32" % (stem, hop)), y)
    m = kr.load(os.path.join(out, "helberhlf_wavenet.json"),
                os.path.join(SHARED, "helberhlf_wavenet.h5"))
    x = np.asarray(rng.standard_normal((300, 5)), np.float32).astype(np.float64)
    write_f32(os.path.join(out, "helberhlf_wavenet.in.f32"), x)
    write_f32(os.path.join(out, "helberhlf_wavenet.out.f32"), kr.stream(m, x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "data", "keras"))
    a = ap.parse_args()
    w = Writer(a.out)
    good_cases(w)
    wavenet_cases(w)
    bad_cases(w)
    real_cases(w)
    w.finish()
    print("wrote %d cases and %d refused files to %s" % (len(w.lines), len(w.bad), a.out))


if __name__ == "__main__":
    main()
