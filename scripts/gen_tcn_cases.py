#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""keras-tcn models for convd's tests, with the outputs keras-tcn would compute for them.

Usage (from the top of the tree; Debian's /usr/bin/python3 with numpy, python3-torch and
python3-h5py; no Keras, TensorFlow or keras-tcn needed):

    scripts/gen_tcn_cases.py            # writes tests/data/keras/tcn/
    scripts/gen_tcn_cases.py --out DIR

Deterministic (fixed seeds). The files are written as Keras writes a model holding keras-tcn's
TCN layer (read off keras-tcn's tcn/tcn.py and Keras's saving code, and checked against the
layout of ../shared/models/keras/IrtantiCarona_tcn_model.keras, a real one):

  Keras 3 .keras   the TCN's config entry {"module": "tcn.tcn", "class_name": "TCN",
                   "registered_name": "Custom>TCN", "config": {nb_filters, kernel_size, ...}};
                   its weights under layers/tcn/residual_block_<b>/<attribute>/vars/<i>, every
                   sub-layer keras-tcn sets as an attribute having its group (conv1D_0,
                   Act_Conv1D_0, SDropout_0, ..., matching_conv1D or matching_identity,
                   Act_Res_Block), the norm layers under batch_norm_layers/batch_normalization
                   [_1] (keras-tcn >= 3.5.5) or as batch_normalization_<N> (older), and
                   slicer_layer.
  Keras 2 .h5      model_weights/tcn with weight_names [model/]tcn/residual_block_<b>/
                   <scope>/<variable>:0 (the scopes keras-tcn opens: conv1D_<k>,
                   matching_conv1D, norm_<k>), trainable variables first; with
                   use_weight_norm, tensorflow-addons' g, initialized and its data_dep_init copy.

For every case NAME: the model, NAME.in.f32 (frames x channels) and NAME.out.f32 (or
NAME.hopN.out.f32, one per hop), and a line per output in cases.txt:
    CASE FILE stream|window HOP OUTPUT
(CASE is NAME, or NAME_hopN for the second hop of a windowed model). The expected
outputs come from scripts/keras_reference.py with scripts/tcn_reference.py (numpy float64),
reading the files written here. A TCN with return_sequences=False and no fixed input length
streams: output frame t is the model on the input up to t (the reference computes exactly
that, one prefix at a time). bad/ holds refused files (bad/expect.txt: NAME<TAB>fragments).
real/ holds the input and reference outputs of ../shared/models/keras/
IrtantiCarona_tcn_model.keras (windows of 60 frames, hops 60 and 1) when that file is present.
"""

import argparse
import io
import json
import os
import sys
import zipfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_keras_cases as gk  # noqa: E402  (Graph: configs as Keras writes them)
import keras_reference as kr  # noqa: E402
import tcn_reference as tr  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                      "models", "keras")


def tcn_config(keras, name="tcn", **a):
    """The config keras-tcn's get_config returns (3.5.6 for Keras 3, 3.5.0 for Keras 2)."""
    c = {"name": name, "trainable": True, "dtype": gk.dtype_policy(keras)}
    c.update(nb_filters=64, kernel_size=3, nb_stacks=1, dilations=[1, 2, 4, 8, 16, 32],
             padding="causal", use_skip_connections=True, dropout_rate=0.0,
             return_sequences=False, activation="relu", use_batch_norm=False,
             use_layer_norm=False, kernel_initializer="he_normal", go_backwards=False,
             return_state=False)
    if keras == 2:
        c["use_weight_norm"] = False
    c.update(a)
    return c


def add_tcn(g, *inputs, name="tcn", **a):
    """A TCN layer on Graph g, its config entry as Keras writes a registered custom layer."""
    g.add("Identity", *inputs, name=name)  # the entry, then made a TCN
    e = g.layers[-1]
    e["class_name"] = "TCN"
    e["config"] = tcn_config(g.keras, name, **a)
    if g.keras == 3:
        e["module"] = "tcn.tcn"
        e["registered_name"] = "Custom>TCN"
        e["build_config"] = {"input_shape": [None, g.steps, None]}
    if not g.functional and len(g.layers) == 1:
        e["config"]["batch_input_shape"] = g.batch_shape  # Keras 2: on the first layer
    return name


# ---------------------------------------------------------------- weights


def make_weights(model, rng, length):
    """Random weights for the TCN, Conv1D and Dense layers, shaped by a pass over an input."""
    def pre(L, xs):
        name, cls, c = kr.name_of(L), kr.cls_of(L), L["config"]
        if name in model.weights:
            return
        cin = xs[0].shape[-1]
        u = lambda *s, lo=-1, hi=1: rng.uniform(lo, hi, s)  # noqa: E731
        if cls == "TCN":
            o = tr.options(c)
            blocks = []
            for d, f, has_match in tr.block_plan(c, cin):
                w = {}
                ci = cin
                for k in (0, 1):
                    w["conv%d" % k] = (u(o["kernel_size"], ci, f) / np.sqrt(ci * o["kernel_size"]) * 1.6,
                                       u(f, lo=-0.3, hi=0.3))
                    if o["use_weight_norm"]:
                        w["g%d" % k] = u(f, lo=0.5, hi=2.0)
                    if o["use_batch_norm"]:
                        w["norm%d" % k] = [u(f, lo=0.5, hi=1.5), u(f, lo=-0.5, hi=0.5),
                                           u(f, lo=-0.5, hi=0.5), u(f, lo=0.5, hi=2.0)]
                    elif o["use_layer_norm"]:
                        w["norm%d" % k] = [u(f, lo=0.5, hi=1.5), u(f, lo=-0.5, hi=0.5)]
                    ci = f
                if has_match:
                    w["match"] = (u(1, cin, f) / np.sqrt(cin) * 1.5, u(f, lo=-0.3, hi=0.3))
                blocks.append(w)
                cin = f
            ws = blocks
        elif cls == "Conv1D":
            k = c["kernel_size"][0]
            ws = [u(k, cin, c["filters"]) / np.sqrt(k * cin) * 1.5, u(c["filters"], lo=-0.3, hi=0.3)]
        elif cls == "Dense":
            ws = [u(cin, c["units"]) / np.sqrt(cin) * 1.5, u(c["units"], lo=-0.3, hi=0.3)]
        else:
            ws = []
        model.weights[name] = f32(ws)

    x = np.zeros((length, model.channels))
    kr.predict(model, x, pre=pre)


def f32(w):
    """float32 values, as a file holds them (nested lists, tuples and dicts kept)."""
    if isinstance(w, dict):
        return {k: f32(v) for k, v in w.items()}
    if isinstance(w, (list, tuple)):
        return type(w)(f32(v) for v in w)
    return np.asarray(w, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------- files


def tcn_groups3(f, base, cfg, blocks, norm_layout="list"):
    """layers/tcn/... as Keras 3 saves keras-tcn's layer."""
    g = f.create_group(base)
    g.create_group("vars").attrs["name"] = cfg["name"]
    bn_counter = [3]  # auto names from a session: batch_normalization_3, _4, ...
    for b, w in enumerate(blocks):
        rb = g.create_group("residual_block_%d" % b)
        rb.create_group("vars").attrs["name"] = "residual_block_%d" % b
        for nm in ("Act_Conv1D_0", "Act_Conv1D_1", "Act_Conv_Blocks", "Act_Res_Block",
                   "SDropout_0", "SDropout_1"):
            rb.create_group(nm + "/vars").attrs["name"] = nm
        for k in (0, 1):
            v = rb.create_group("conv1D_%d/vars" % k)
            v.attrs["name"] = "conv1D_%d" % k
            v.create_dataset("0", data=np.asarray(w["conv%d" % k][0], "<f4"))
            v.create_dataset("1", data=np.asarray(w["conv%d" % k][1], "<f4"))
        if "match" in w:
            v = rb.create_group("matching_conv1D/vars")
            v.attrs["name"] = "matching_conv1D"
            v.create_dataset("0", data=np.asarray(w["match"][0], "<f4"))
            v.create_dataset("1", data=np.asarray(w["match"][1], "<f4"))
        else:
            rb.create_group("matching_identity/vars").attrs["name"] = "matching_identity"
        if "norm0" in w:  # the weights as made, whatever the config written says
            lst, stem = (("batch_norm_layers", "batch_normalization") if len(w["norm0"]) == 4
                         else ("layer_norm_layers", "layer_normalization"))
            for k in (0, 1):
                if norm_layout == "list":
                    path = "%s/%s%s/vars" % (lst, stem, "_1" if k else "")
                else:  # keras-tcn < 3.5.5: the attribute named after the layer
                    path = "%s_%d/vars" % (stem, bn_counter[0])
                    bn_counter[0] += 7  # numbers that sort wrongly as text: 3, 10, 17, ...
                v = rb.create_group(path)
                v.attrs["name"] = path.split("/")[-2]
                for i, a in enumerate(w["norm%d" % k]):
                    v.create_dataset(str(i), data=np.asarray(a, "<f4"))
    g.create_group("slicer_layer/vars").attrs["name"] = "Slice_Output"


def write_keras(path, model, norm_layout="list", mutate=None, version="3.10.0"):
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
            w = model.weights.get(kr.name_of(L), [])
            if kr.cls_of(L) == "TCN":
                tcn_groups3(f, "layers/" + stem, L["config"], w, norm_layout)
                continue
            g = f.create_group("layers/%s/vars" % stem)
            g.attrs["name"] = kr.name_of(L)
            for i, a in enumerate(w):
                g.create_dataset(str(i), data=np.asarray(a, dtype="<f4"))
        f.create_group("vars").attrs["name"] = model.config["config"].get("name", "model")
        f.create_group("optimizer/vars").create_dataset("0", data=np.int64(3))
        if mutate:
            mutate(f)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in (("metadata.json", json.dumps({"keras_version": version,
                                                         "date_saved": "2026-01-01@00:00:00"})),
                           ("config.json", json.dumps(model.config)),
                           ("model.weights.h5", bio.getvalue())):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def tcn_names2(prefix, cfg, blocks):
    """(weight name, value) of a TCN in Keras 2's order: trainable, then the rest."""
    train, rest = [], []
    for b, w in enumerate(blocks):
        p = "%s/residual_block_%d" % (prefix, b)
        for k in (0, 1):
            s = "%s/conv1D_%d" % (p, k)
            train += [(s + "/kernel:0", w["conv%d" % k][0]), (s + "/bias:0", w["conv%d" % k][1])]
            if "g%d" % k in w:
                train.append((s + "/g:0", w["g%d" % k]))
                rest += [(s + "/initialized:0", np.bool_(w.get("initialized", True))),
                         (s + "/data_dep_init/kernel:0", w["conv%d" % k][0] * 0.5),
                         (s + "/data_dep_init/bias:0", w["conv%d" % k][1] * 0)]
            n = "%s/norm_%d" % (p, k)
            if "norm0" in w and len(w["norm0"]) == 4:
                g_, b_, m_, v_ = w["norm%d" % k]
                train += [(n + "/gamma:0", g_), (n + "/beta:0", b_)]
                rest += [(n + "/moving_mean:0", m_), (n + "/moving_variance:0", v_)]
            elif "norm0" in w:
                train += [(n + "/gamma:0", w["norm%d" % k][0]), (n + "/beta:0", w["norm%d" % k][1])]
        if "match" in w:
            s = "%s/matching_conv1D" % p
            train += [(s + "/kernel:0", w["match"][0]), (s + "/bias:0", w["match"][1])]
    return train + rest


def write_h5(path, model, mutate=None):
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.11.0"
        f.attrs["model_config"] = json.dumps(model.config).encode("utf8")
        g = f.create_group("model_weights")
        layers = [L for L in model.layers if model.functional or kr.cls_of(L) != "InputLayer"]
        g.attrs["layer_names"] = np.array([kr.name_of(L).encode() for L in layers])
        g.attrs["backend"] = b"tensorflow"
        g.attrs["keras_version"] = b"2.11.0"
        for L in layers:
            nm = kr.name_of(L)
            lg = g.create_group(nm)
            w = model.weights.get(nm, [])
            if kr.cls_of(L) == "TCN":
                pairs = tcn_names2(nm, L["config"], w)
            else:
                pairs = list(zip(["%s/%s:0" % (nm, v) for v in ("kernel", "bias")], w))
            lg.attrs["weight_names"] = (np.array([n.encode() for n, _ in pairs]) if pairs
                                        else np.array([]))
            for n, a in pairs:
                lg.create_dataset(n, data=a if isinstance(a, np.bool_) else np.asarray(a, "<f4"))
        if mutate:
            mutate(f)


def write_f32(path, a):
    np.asarray(a, dtype="<f4").tofile(path)


# ---------------------------------------------------------------- the cases


class Writer:
    def __init__(self, out):
        self.out = out
        os.makedirs(os.path.join(out, "bad"), exist_ok=True)
        self.lines, self.bad = [], []

    def path(self, *p):
        return os.path.join(self.out, *p)

    def model(self, g, name, seed):
        model = kr.Model(g.config(name), {})
        make_weights(model, np.random.default_rng(2000 + seed), model.steps or 48)
        return model

    def save(self, model, fname, kind, **kw):
        (write_keras if kind == "keras" else write_h5)(self.path(fname), model, **kw)

    def case(self, name, g, kind="keras", n=96, hops=(0,), seed=0, prefixes=False, **kw):
        model = self.model(g, name, seed)
        fname = name + (".keras" if kind == "keras" else ".h5")
        self.save(model, fname, kind, **kw)
        check = kr.load(self.path(fname))  # the reference reads back the file written
        rng = np.random.default_rng(3000 + seed)
        x = np.asarray(rng.standard_normal((n, model.channels)), np.float32).astype(np.float64)
        write_f32(self.path(name + ".in.f32"), x)
        windowed = model.steps is not None and not tcn_returns_sequences(model)
        for hop in hops:
            if windowed:
                y = kr.windows(check, x, hop or None)
            elif prefixes:  # return_sequences=False streaming: the model on every prefix
                y = np.array([np.asarray(kr.predict(check, x[:t + 1])).reshape(-1)
                              for t in range(n)])
            else:
                y = kr.stream(check, x)
            assert np.all(np.isfinite(y)) and y.size > 0 and np.abs(y).max() > 1e-3, name
            out = name + (".out.f32" if len(hops) == 1 else ".hop%d.out.f32" % hop)
            write_f32(self.path(out), y)
            self.lines.append("%s %s %s %d %s" % (name if hop == hops[0] else "%s_hop%d" % (name, hop),
                                                  fname, "window" if windowed else "stream",
                                                  hop, out))
        return model

    def bad_case(self, fname, *fragments):
        self.bad.append("\t".join((fname,) + fragments))

    def finish(self):
        with open(self.path("cases.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")
        with open(self.path("bad", "expect.txt"), "w") as f:
            f.write("\n".join(self.bad) + "\n")


def tcn_returns_sequences(model):
    return all(L["config"].get("return_sequences", False) for L in model.layers
               if kr.cls_of(L) == "TCN")


def good_cases(w):
    # 1. Keras 3 Sequential, causal, skip connections, a sequence out, a matching conv on the
    #    first block (2 channels in, 8 filters), relu: streams with no latency
    g = gk.Graph(keras=3, channels=2)
    add_tcn(g, nb_filters=8, kernel_size=3, dilations=[1, 2, 4], return_sequences=True,
            dropout_rate=0.1)
    g.add("Dense", units=1)
    w.case("tcn_k3_seq_causal", g, seed=1)

    # 2. Keras 3 Functional: a Conv1D before the TCN (its input is not the model's), padding
    #    same (latency), two stacks, batch norm, tanh (applied twice, as keras-tcn does), no
    #    skip connections; then a second TCN, causal, with layer norm, on the first one's output
    g = gk.Graph(keras=3, functional=True, channels=3)
    g.add("Conv1D", "input_layer", filters=4, kernel_size=1)
    add_tcn(g, "conv1d", name="tcn", nb_filters=6, kernel_size=2, nb_stacks=2, dilations=[1, 3],
            padding="same", use_batch_norm=True, activation="tanh", use_skip_connections=False,
            return_sequences=True)
    add_tcn(g, "tcn", name="tcn_1", nb_filters=5, kernel_size=3, dilations=[1, 2],
            use_layer_norm=True, activation="elu", return_sequences=True)
    g.add("Dense", "tcn_1", units=2, activation="sigmoid")
    w.case("tcn_k3_func_same_bn_ln", g, seed=2)

    # 3. windowed: a fixed input length, return_sequences=False (the last frame), filters per
    #    dilation (no skip connections), layer norm, a classifier head; hops 0 and 5
    g = gk.Graph(keras=3, channels=1, steps=32)
    add_tcn(g, nb_filters=[4, 6, 5], kernel_size=3, dilations=[1, 2, 4],
            use_skip_connections=False, use_layer_norm=True, activation="gelu")
    g.add("Dense", units=3, activation="softmax")
    w.case("tcn_k3_window_last", g, seed=3, hops=(0, 5))

    # 4. windowed with padding same: the middle frame (steps // 2 = 10 of 21)
    g = gk.Graph(keras=3, channels=2, steps=21)
    add_tcn(g, nb_filters=5, kernel_size=3, dilations=[1, 2], padding="same",
            activation="swish")
    g.add("Dense", units=1)
    w.case("tcn_k3_window_same", g, seed=4, n=80)

    # 5. keras-tcn before 3.5.5 under Keras 3: batch norm layers saved under their own names
    g = gk.Graph(keras=3, channels=1)
    add_tcn(g, nb_filters=4, kernel_size=2, dilations=[1, 2, 4, 8], use_batch_norm=True,
            return_sequences=True)
    w.case("tcn_k3_old_bn_layout", g, seed=5, norm_layout="attrs")

    # 6. one block with skip connections: the skip output is the TCN's (its residual output
    #    and matching conv unused); return_sequences=False without a fixed length streams:
    #    frame t is the model on the input up to t
    g = gk.Graph(keras=3, channels=2)
    add_tcn(g, nb_filters=3, kernel_size=4, dilations=[2])
    w.case("tcn_k3_one_block_prefix", g, seed=6, n=40, prefixes=True)

    # 7. Keras 2 .h5, the TCN the first layer of a Sequential (batch_input_shape on it),
    #    tensorflow-addons' weight normalization
    g = gk.Graph(keras=2, channels=2, input_layer=False)
    add_tcn(g, nb_filters=6, kernel_size=3, dilations=[1, 2, 4], use_weight_norm=True,
            return_sequences=True)
    g.add("Dense", units=1)
    w.case("tcn_k2_weight_norm", g, kind="h5", seed=7)

    # 8. Keras 2 Functional .h5, batch norm, windowed (return_sequences=False), two stacks
    g = gk.Graph(keras=2, functional=True, channels=3, steps=24)
    add_tcn(g, "input_1", nb_filters=4, kernel_size=2, nb_stacks=2, dilations=[1, 4],
            use_batch_norm=True)
    g.add("Dense", "tcn", units=2)
    w.case("tcn_k2_func_window_bn", g, kind="h5", seed=8, n=100, hops=(0, 1))


def bad_cases(w):
    def cfg_bad(fname, frags, keras=3, **a):
        g = gk.Graph(keras=keras, channels=1, steps=a.pop("steps", None))
        add_tcn(g, nb_filters=4, kernel_size=2, dilations=[1, 2], return_sequences=True)
        model = w.model(g, fname, 50)
        model.config["config"]["layers"][1]["config"].update(a)
        w.save(model, os.path.join("bad", fname), "keras" if keras == 3 else "h5")
        w.bad_case(fname, *frags)

    cfg_bad("go_backwards.keras", ["layers[1] (tcn)", "go_backwards"], go_backwards=True)
    cfg_bad("padding_valid.keras", ["config.padding", "'causal' or 'same'"], padding="valid")
    cfg_bad("two_norms.keras", ["only one normalization"], use_batch_norm=True,
            use_layer_norm=True)
    cfg_bad("filters_list_skip.keras", ["use_skip_connections", "not all equal"],
            nb_filters=[4, 5], use_skip_connections=True)
    cfg_bad("filters_list_len.keras", ["config.nb_filters", "a list of 3"],
            nb_filters=[4, 4, 4])
    cfg_bad("same_no_steps.keras", ["return_sequences=false", "padding 'same'", "steps"],
            padding="same", return_sequences=False)
    cfg_bad("unknown_key.keras", ["config.use_attention", "not an argument"],
            use_attention=True)
    cfg_bad("dilation_zero.keras", ["config.dilations"], dilations=[1, 0])
    cfg_bad("bad_activation.keras", ["layers[1] (tcn)", "config.activation", "nope"],
            activation="nope")
    cfg_bad("weight_norm_k3.keras", ["use_weight_norm=true", "Keras 2"], use_weight_norm=True)

    def file_bad(fname, frags, kind="keras", mutate=None, blocks=None, **a):
        g = gk.Graph(keras=3 if kind == "keras" else 2, channels=1,
                     input_layer=kind == "keras")
        add_tcn(g, nb_filters=4, kernel_size=2, dilations=[1, 2], return_sequences=True, **a)
        model = w.model(g, fname, 51)
        if blocks:
            blocks(model.weights["tcn"])
        w.save(model, os.path.join("bad", fname), kind, mutate=mutate)
        w.bad_case(fname, *frags)

    def rm(path):
        return lambda f: f.__delitem__(path)
    file_bad("missing_block.keras", ["layers/tcn/residual_block_1/conv1D_0/vars", "missing"],
             mutate=rm("layers/tcn/residual_block_1/conv1D_0"))
    file_bad("missing_tcn.keras", ["layers/tcn", "missing", "(TCN)"], mutate=rm("layers/tcn"))

    def extra_block(f):
        f.copy(f["layers/tcn/residual_block_1"], "layers/tcn/residual_block_2")
    file_bad("extra_block.keras", ["residual_block_2", "more residual blocks"],
             mutate=extra_block)

    def wrong_shape(f):
        del f["layers/tcn/residual_block_0/conv1D_1/vars/0"]
        f["layers/tcn/residual_block_0/conv1D_1/vars"].create_dataset(
            "0", data=np.zeros((3, 4, 4), "<f4"))
    file_bad("kernel_shape.keras", ["residual_block_0/conv1D_1/vars/0", "shape (3, 4, 4)",
                                    "(2, 4, 4)"], mutate=wrong_shape)
    file_bad("missing_bn.keras", ["residual_block_0", "batch_normalization", "missing"],
             use_batch_norm=True,
             mutate=rm("layers/tcn/residual_block_0/batch_norm_layers"))

    def uninit(blocks):
        blocks[0]["initialized"] = False
    file_bad("wn_uninitialised.h5", ["residual_block_0/conv1D_0/initialized:0",
                                     "never initialised"], kind="h5", use_weight_norm=True,
             blocks=uninit)

    def no_g(f):
        lg = f["model_weights/tcn"]
        names = [n for n in lg.attrs["weight_names"] if not n.endswith(b"residual_block_1/conv1D_1/g:0")]
        lg.attrs["weight_names"] = np.array(names)
    file_bad("wn_missing_g.h5", ["conv1D_1/g", "weight normalization"], kind="h5",
             use_weight_norm=True, mutate=no_g)

    def stray(f):
        lg = f["model_weights/tcn"]
        names = list(lg.attrs["weight_names"]) + [b"tcn/residual_block_0/norm_0/gamma:0"]
        lg.create_dataset("tcn/residual_block_0/norm_0/gamma:0", data=np.ones(4, "<f4"))
        lg.attrs["weight_names"] = np.array(names)
    file_bad("stray_norm.h5", ["residual_block_0/norm_0/gamma:0", "not a variable",
                               "no norm"], kind="h5", mutate=stray)


def real_cases(w):
    out = w.path("real")
    os.makedirs(out, exist_ok=True)
    src = os.path.join(SHARED, "IrtantiCarona_tcn_model.keras")
    if not os.path.exists(src):
        print("note: %s is absent: its reference is not rewritten" % src)
        return
    m = kr.load(src)
    rng = np.random.default_rng(20260214)
    # a price-like walk, as the model was trained on (scaled closing prices)
    x = np.cumsum(rng.standard_normal((150, 1)) * 0.05, axis=0) + 0.5
    x = np.asarray(x, np.float32).astype(np.float64)
    write_f32(os.path.join(out, "IrtantiCarona_tcn_model.in.f32"), x)
    for hop in (0, 1):
        y = kr.windows(m, x, hop or None)
        write_f32(os.path.join(out, "IrtantiCarona_tcn_model.hop%d.out.f32" % hop), y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "data", "keras", "tcn"))
    a = ap.parse_args()
    w = Writer(a.out)
    good_cases(w)
    bad_cases(w)
    real_cases(w)
    w.finish()
    print("wrote %d cases and %d refused files to %s" % (len(w.lines), len(w.bad), a.out))


if __name__ == "__main__":
    main()
