#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Train convd's two demo models and write them to config/models/ in convd's model JSON.

Usage:
    scripts/train_demos.py [--out DIR] [--only drive|vibration-denoise]
                           [--drive-steps N] [--vib-steps N]
    scripts/train_demos.py --make-inputs OUTDIR     (used by scripts/render_demos.sh)
    scripts/train_demos.py --report OUTDIR          (used by scripts/render_demos.sh)

Uses Debian's /usr/bin/python3 (torch 1.13 CPU, numpy; --make-inputs and --report need
numpy only). Nothing is downloaded: every training signal is synthesised here with plain
numpy DSP from fixed seeds, and training runs a fixed number of steps on 2 threads, so a
rerun writes the same files (about 3 minutes on 2 cores; see config/models/README.md).

Models
------
drive (48 kHz, mono in / mono out)
    A NAM-style WaveNet (two layer arrays, channels 8 and 4, kernel 3, dilations
    1..256, tanh, not gated; NAM's "feather" size) trained to imitate `drive_reference()`:
    +20 dB input gain, first-order high-pass at 80 Hz, asymmetric tanh soft clipping (a
    bias adds even harmonics), a tone stack (low shelf +4 dB at 220 Hz, high cut at 4.2 kHz,
    RBJ biquads), output x0.5. Training material is synthetic DI guitar: Karplus-Strong
    plucks at guitar pitches with varying velocity, strummed chords, palm-muted notes, sine
    sweeps, noise bursts and rests. ESR loss on random segments (valid convolution: the loss
    only sees outputs with a full receptive field). Exported as the "wavenet" shorthand with
    the flat weights in NAM's order; checked by reading the file back through
    scripts/nam_reference.py's computation (no prewarm, float32 weights): max |diff| < 1e-4
    against the torch model over the held-out audio.

vibration-denoise (1 kHz, 3 channels in / 3 out)
    A residual stack of causal dilated Conv1D layers in the Keras vocabulary: c1..c6 =
    Conv1D(16, 5, causal, relu, no bias) with dilations 1,2,4,8,16,32 (c2..c6 each added to
    its input by an Add layer), then a 1x1 Conv1D back to 3 channels, added to the model
    input by the last Add, so the network learns the correction. Bias-free, the network is
    scale-equivariant (f(a x) = a f(x), a > 0), which generalises across signal levels.
    Trained for one machine type (`vibration_clean()`: a motor at 23.5-25.5 Hz shaft rate,
    its harmonics, an 8-tooth gear mesh, drifting amplitudes, sometimes a bearing-fault
    impulse train ringing a 300-360 Hz resonance) corrupted by `vibration_noisy()` (white
    noise at 0-10 dB SNR and 50/60 Hz mains hum with harmonics); per-segment normalised MSE.
    Checked by reading the file back through an independent numpy forward pass of the
    layers (`numpy_keras_forward()`): max |diff| < 1e-4 against the torch model.
"""

import argparse
import json
import math
import os
import sys
import time
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ============================================================================ plain DSP


def biquad(x, b, a):
    """Direct form I biquad; b = (b0, b1, b2), a = (1, a1, a2) (a normalised)."""
    b0, b1, b2 = (float(v) for v in b)
    a1, a2 = float(a[1]), float(a[2])
    out = [0.0] * len(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, xi in enumerate(x.tolist()):
        y = b0 * xi + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        out[i] = y
        x2, x1, y2, y1 = x1, xi, y1, y
    return np.array(out)


def onepole_hp(x, fc, fs):
    """First-order high-pass (bilinear transform)."""
    k = math.tan(math.pi * fc / fs)
    b0 = 1.0 / (1.0 + k)
    a1 = (k - 1.0) / (k + 1.0)
    out = [0.0] * len(x)
    x1 = y1 = 0.0
    for i, xi in enumerate(x.tolist()):
        y = b0 * (xi - x1) - a1 * y1
        out[i] = y
        x1, y1 = xi, y
    return np.array(out)


def rbj_lowshelf(f0, gain_db, fs, slope=1.0):
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / 2 * math.sqrt((A + 1 / A) * (1 / slope - 1) + 2)
    sa = 2 * math.sqrt(A) * alpha
    b = [A * ((A + 1) - (A - 1) * cw + sa), 2 * A * ((A - 1) - (A + 1) * cw),
         A * ((A + 1) - (A - 1) * cw - sa)]
    a = [(A + 1) + (A - 1) * cw + sa, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - sa]
    return [v / a[0] for v in b], [v / a[0] for v in a]


def rbj_lowpass(f0, q, fs):
    w0 = 2 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2 * q)
    b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
    a = [1 + alpha, -2 * cw, 1 - alpha]
    return [v / a[0] for v in b], [v / a[0] for v in a]


DRIVE_FS = 48000
DRIVE_PARAMS = {"input_gain_db": 20.0, "hp_hz": 80.0, "clip_bias": 0.3,
                "shelf_hz": 220.0, "shelf_db": 4.0, "cut_hz": 4200.0, "cut_q": 0.707,
                "output_gain": 0.5}


def drive_reference(x, fs=DRIVE_FS, p=DRIVE_PARAMS):
    """The effect the drive model imitates: a warm asymmetric overdrive with a tone stack."""
    u = np.asarray(x, dtype=np.float64) * 10.0 ** (p["input_gain_db"] / 20.0)
    u = onepole_hp(u, p["hp_hz"], fs)
    b = p["clip_bias"]
    u = np.tanh(u + b) - math.tanh(b)              # asymmetric: even harmonics
    u = biquad(u, *rbj_lowshelf(p["shelf_hz"], p["shelf_db"], fs))
    u = biquad(u, *rbj_lowpass(p["cut_hz"], p["cut_q"], fs))
    return u * p["output_gain"]


# ---------------------------------------------------------------- guitar-like material

GUITAR_OPEN = [82.41, 110.0, 146.83, 196.0, 246.94, 329.63]      # E2 A2 D3 G3 B3 E4


def karplus_strong(rng, f0, n, velocity, fs, damping=0.9965, mute=False):
    """One plucked string: n samples of a Karplus-Strong string at f0 Hz."""
    N = max(2, int(round(fs / f0 - 0.5)))
    exc = rng.uniform(-1, 1, N)
    # softer plucks are darker: smooth the excitation with a moving average
    taps = 1 + int(round((1.0 - velocity) * 6)) + (4 if mute else 0)
    if taps > 1:
        exc = np.convolve(np.concatenate([exc, exc[:taps]]), np.ones(taps) / taps, "valid")[:N]
    exc -= exc.mean()
    exc *= velocity / (np.max(np.abs(exc)) + 1e-9)
    # per-period loss: long sustain for open notes, fast decay for palm mutes
    g = 0.9 if mute else damping
    y = np.zeros(n + 2 * N)
    y[:N] = exc
    k = 1
    while k * N < len(y):
        s = k * N
        e = min(s + N, len(y))
        prev = y[s - N:e - N]
        prev1 = y[s - N - 1:e - N - 1] if s - N - 1 >= 0 else np.concatenate([[0.0], y[0:e - N - 1]])
        y[s:e] = g * 0.5 * (prev + prev1)
        k += 1
    y = y[:n]
    # a short attack ramp: no click at the onset
    y[:32] *= np.linspace(0, 1, 32)
    return y


def guitar_phrase(rng, seconds, fs=DRIVE_FS, level=1.0):
    """Synthetic DI guitar: single notes, strummed chords, palm mutes, sweeps, noise bursts."""
    n = int(seconds * fs)
    out = np.zeros(n)
    t = 0
    while t < n - fs // 10:
        kind = rng.choice(["note", "note", "chord", "chord", "mute", "mute", "sweep", "noise", "rest"])
        vel = float(rng.uniform(0.05, 1.0)) ** 1.3
        amp = 0.55 * level
        if kind == "note":
            f0 = GUITAR_OPEN[rng.integers(6)] * 2 ** (rng.integers(0, 13) / 12)
            dur = int(rng.uniform(0.25, 1.6) * fs)
            ev = amp * karplus_strong(rng, f0, dur, vel, fs, damping=rng.uniform(0.993, 0.9985))
        elif kind == "chord":
            root = rng.integers(0, 8)
            shape = [0, 7, 12, 16, 19, 24] if rng.random() < 0.5 else [0, 7, 12, 15, 19, 24]
            strings = rng.integers(3, 7)
            dur = int(rng.uniform(0.5, 2.0) * fs)
            ev = np.zeros(dur)
            step = int(rng.uniform(0.004, 0.025) * fs)
            down = rng.random() < 0.7
            order = range(strings) if down else range(strings - 1, -1, -1)
            for j, s in enumerate(order):
                f0 = 82.41 * 2 ** ((root + shape[s]) / 12)
                off = j * step
                if off >= dur:
                    break
                ev[off:] += karplus_strong(rng, f0, dur - off, vel * rng.uniform(0.7, 1.0), fs,
                                           damping=rng.uniform(0.994, 0.998))
            ev *= amp / max(1.0, strings ** 0.5)
        elif kind == "mute":
            f0 = GUITAR_OPEN[rng.integers(3)] * 2 ** (rng.integers(0, 8) / 12)
            ev = np.zeros(int(rng.uniform(0.4, 1.2) * fs))
            hit = int(rng.uniform(0.08, 0.2) * fs)
            for s in range(0, len(ev) - hit, hit):
                ev[s:s + hit] += karplus_strong(rng, f0, hit, vel * rng.uniform(0.6, 1.0), fs, mute=True)
            ev *= amp
        elif kind == "sweep":
            dur = int(rng.uniform(0.5, 1.5) * fs)
            f_a, f_b = 40.0, rng.uniform(2000, 12000)
            if rng.random() < 0.5:
                f_a, f_b = f_b, f_a
            tt = np.arange(dur) / fs
            T = dur / fs
            phase = 2 * np.pi * f_a * T / math.log(f_b / f_a) * (np.exp(tt / T * math.log(f_b / f_a)) - 1)
            env = np.minimum(1, np.minimum(tt, T - tt) / 0.02)
            ev = amp * vel * env * np.sin(phase)
        elif kind == "noise":
            dur = int(rng.uniform(0.05, 0.4) * fs)
            nz = rng.standard_normal(dur)
            taps = int(rng.integers(1, 12))
            nz = np.convolve(nz, np.ones(taps) / taps, "same")
            env = np.exp(-np.arange(dur) / (dur / rng.uniform(2, 6)))
            ev = amp * vel * 0.5 * nz * env
        else:
            ev = np.zeros(int(rng.uniform(0.05, 0.4) * fs))
        m = min(len(ev), n - t)
        out[t:t + m] += ev[:m]
        # notes overlap a little, as when playing legato
        t += max(int(0.05 * fs), int(m * rng.uniform(0.55, 1.0)))
    return np.clip(out, -0.99, 0.99)


# ---------------------------------------------------------------- vibration material

VIB_FS = 1000
VIB_SHAFT_HZ = (23.5, 25.5)   # a 4-pole motor under varying load, 1410-1530 rpm


def vibration_clean(rng, seconds, fs=VIB_FS):
    """3-axis vibration (in g) of one machine type, a motor driving a gearbox: shaft rate
    VIB_SHAFT_HZ (23.5-25.5 Hz) wandering with load, its first four harmonics, an 8-tooth
    gear mesh, all with slowly drifting amplitudes; sometimes an outer-race bearing fault
    (an impulse train at 3.1-3.6x the shaft rate ringing a 300-360 Hz resonance) that comes
    and goes."""
    n = int(seconds * fs)
    t = np.arange(n) / fs
    out = np.zeros((n, 3))

    def drift(scale, depth):
        # slow random changes (seconds time scale), linearly interpolated
        k = max(2, int(seconds / scale) + 2)
        pts = 1.0 + depth * rng.uniform(-1, 1, k)
        return np.interp(t, np.linspace(0, seconds, k), pts)

    level = 10 ** rng.uniform(-0.5, 0.5)                 # machine size / sensor gain
    shaft = rng.uniform(*VIB_SHAFT_HZ)                   # shaft rate, Hz
    speed = shaft * drift(4.0, 0.02)                     # speed wander with load
    phase = 2 * np.pi * np.cumsum(speed) / fs
    mix = rng.uniform(-1, 1, 3)                          # how each axis sees the machine
    for h in range(1, 5):
        a = level * rng.uniform(0.1, 0.5) / h
        ph = rng.uniform(0, 2 * np.pi, 3)
        env = drift(3.0, 0.4)
        for ax in range(3):
            out[:, ax] += a * env * (mix[ax] + 0.3 * rng.uniform(-1, 1)) * np.sin(h * phase + ph[ax])
    a = level * rng.uniform(0.03, 0.2)                  # gear mesh, 8 teeth
    env = drift(2.0, 0.5)
    ph = rng.uniform(0, 2 * np.pi, 3)
    for ax in range(3):
        out[:, ax] += a * env * rng.uniform(0.2, 1.0) * np.sin(8 * phase + ph[ax])
    if rng.random() < 0.6:                               # bearing fault
        rate = shaft * rng.uniform(3.1, 3.6)
        fres = rng.uniform(300, 360)
        tau = rng.uniform(0.004, 0.010)
        L = int(6 * tau * fs)
        tt = np.arange(L) / fs
        ring = np.exp(-tt / tau) * np.sin(2 * np.pi * fres * tt)
        imp = np.zeros(n)
        on = drift(2.0, 1.0) > 0.8                       # comes and goes
        pos = np.arange(rng.uniform(0, 1 / rate), seconds, 1 / rate)
        pos = pos + rng.normal(0, 0.0005, len(pos))      # slip jitter
        for p in pos:
            i = int(p * fs)
            if 0 <= i < n and on[i]:
                imp[i] += rng.uniform(0.5, 1.0)
        burst = np.convolve(imp, ring)[:n] * level * rng.uniform(0.1, 0.4)
        out += burst[:, None] * rng.uniform(-1, 1, 3)[None, :]
    return out


def vibration_noisy(rng, clean, fs=VIB_FS, snr_db=None):
    """clean + broadband sensor noise + mains hum (50 or 60 Hz with harmonics)."""
    n = clean.shape[0]
    t = np.arange(n) / fs
    p_sig = np.mean(clean ** 2) + 1e-12
    if snr_db is None:
        snr_db = rng.uniform(0, 10)
    p_noise = p_sig / 10 ** (snr_db / 10)
    noise = rng.standard_normal((n, 3)) * math.sqrt(p_noise * 0.8)
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum = np.zeros((n, 3))
    hum_amp = math.sqrt(p_noise * 0.2 * 2)
    for h, rel in ((1, 1.0), (2, 0.3), (3, 0.5), (5, 0.2)):
        ph = rng.uniform(0, 2 * np.pi, 3)
        g = rng.uniform(0.3, 1.0, 3)
        hum += hum_amp * rel * g[None, :] * np.sin(2 * np.pi * mains * h * t[:, None] + ph[None, :])
    return clean + noise + hum


def snr_db(clean, x):
    return 10 * math.log10(np.sum(clean ** 2) / max(np.sum((x - clean) ** 2), 1e-30))


# ============================================================================ torch models


def _torch():
    import torch
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    return torch


def build_wavenet(torch, arrays, head_scale):
    """NAM's WaveNet: arrays as in the JSON shorthand; weights in NAM's order."""
    nn = torch.nn
    F = torch.nn.functional

    class Array(nn.Module):
        def __init__(self, spec, in_size):
            super().__init__()
            C, K = spec["channels"], spec["kernel_size"]
            self.K, self.dil = K, list(spec["dilations"])
            self.rechannel = nn.Conv1d(in_size, C, 1, bias=False)
            self.convs = nn.ModuleList(nn.Conv1d(C, C, K, dilation=d, bias=True) for d in self.dil)
            self.mixins = nn.ModuleList(nn.Conv1d(1, C, 1, bias=False) for _ in self.dil)
            self.l1x1 = nn.ModuleList(nn.Conv1d(C, C, 1, bias=True) for _ in self.dil)
            self.head = nn.Conv1d(C, spec["head_size"], 1, bias=spec["head_bias"])

        def forward(self, x, c, acc, pad):
            # (B, C, 1, T) tensors through conv2d: on this CPU torch's oneDNN conv2d is
            # several times faster than conv1d for these small channel counts
            h = F.conv2d(x, self.rechannel.weight[:, :, None, :])
            for conv, mix, l1, d in zip(self.convs, self.mixins, self.l1x1, self.dil):
                p = (self.K - 1) * d
                if pad:
                    h_in = F.pad(h, (p, 0))
                else:
                    h_in = h
                    h = h[..., p:]
                    c = c[..., p:]
                    if acc is not None:
                        acc = acc[..., p:]
                z = F.conv2d(h_in, conv.weight[:, :, None, :], conv.bias, dilation=(1, d))
                a = torch.tanh(z + mix.weight.view(1, -1, 1, 1) * c)   # mixin: 1 -> C, 1x1
                acc = a if acc is None else acc + a
                h = h + F.conv2d(a, l1.weight[:, :, :, None], l1.bias)
            head = F.conv2d(acc, self.head.weight[:, :, :, None], self.head.bias)
            return h, c, head

        def flat(self):
            ws = [self.rechannel.weight]
            for conv, mix, l1 in zip(self.convs, self.mixins, self.l1x1):
                ws += [conv.weight, conv.bias, mix.weight, l1.weight, l1.bias]
            ws.append(self.head.weight)
            if self.head.bias is not None:
                ws.append(self.head.bias)
            return ws

    class WaveNet(nn.Module):
        def __init__(self):
            super().__init__()
            sizes = [1] + [a["channels"] for a in arrays[:-1]]
            self.arrays = nn.ModuleList(Array(a, s) for a, s in zip(arrays, sizes))
            self.register_buffer("head_scale", torch.tensor(float(head_scale)))
            self.rf = sum((a["kernel_size"] - 1) * sum(a["dilations"]) for a in arrays)

        def forward(self, x, pad=True):
            """x (B, T) -> (B, T) with zero history (pad) or (B, T - rf) valid outputs."""
            x = x[:, None, None, :]
            c, acc = x, None
            for arr in self.arrays:
                x, c, acc = arr(x, c, acc, pad)
            return (self.head_scale * acc)[:, 0, 0, :]

        def flat_weights(self):
            parts = [w.detach().reshape(-1) for arr in self.arrays for w in arr.flat()]
            parts.append(self.head_scale.detach().reshape(1))
            return torch.cat(parts).numpy().astype(np.float64)

    return WaveNet()


def build_vibnet(torch, layers):
    """Causal Conv1D stack; `layers` is a list of (name, filters, kernel, dilation,
    activation, residual): with residual, the layer's output is added to its input."""
    nn = torch.nn
    F = torch.nn.functional

    class VibNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.specs = layers
            mods = []
            c_in = 3
            for name, f, k, d, act, res in layers:
                mods.append(nn.Conv1d(c_in, f, k, dilation=d, bias=VIB_BIAS))
                c_in = f
            self.convs = nn.ModuleList(mods)

        def forward(self, x):
            """x (B, 3, T) channels first; causal, zero history; returns (B, 3, T)."""
            h = x[:, :, None, :]                 # conv2d with height 1: faster here
            inp = h
            for conv, (name, f, k, d, act, res) in zip(self.convs, self.specs):
                y = F.conv2d(F.pad(h, ((k - 1) * d, 0)), conv.weight[:, :, None, :], conv.bias,
                             dilation=(1, d))
                if act == "relu":
                    y = torch.relu(y)
                h = y + h if res else y
            return (inp + h)[:, :, 0, :]

    return VibNet()


# ============================================================================ export helpers


def fmt_weights(ws):
    return "[" + ",".join("%.9g" % float(v) for v in ws) + "]"


def dump_json(obj, path):
    """Pretty structure, one line per weight array (each value with 9 significant digits)."""
    holders = {}

    def swap(o):
        if isinstance(o, dict):
            return {k: swap(v) for k, v in o.items()}
        if isinstance(o, list):
            return [swap(v) for v in o]
        if isinstance(o, np.ndarray):
            key = "@@W%d@@" % len(holders)
            holders[key] = fmt_weights(o.reshape(-1))
            return key
        return o

    text = json.dumps(swap(obj), indent=1)
    for key, val in holders.items():
        text = text.replace('"%s"' % key, val)
    with open(path, "w") as f:
        f.write(text + "\n")
    return len(text) + 1


def esr(y, ref):
    return float(np.sum((y - ref) ** 2) / np.sum(ref ** 2))


# ============================================================================ drive

DRIVE_ARRAYS = [
    {"channels": 8, "kernel_size": 3, "dilations": [1, 2, 4, 8, 16, 32, 64, 128, 256],
     "activation": "tanh", "gated": False, "head_size": 4, "head_bias": False},
    {"channels": 4, "kernel_size": 3, "dilations": [1, 2, 4, 8, 16, 32, 64, 128, 256],
     "activation": "tanh", "gated": False, "head_size": 1, "head_bias": True},
]
DRIVE_HEAD_SCALE = 0.02


def drive_data(seed, seconds):
    rng = np.random.default_rng(seed)
    x = guitar_phrase(rng, seconds)
    y = drive_reference(x)
    return x.astype(np.float32), y.astype(np.float32)


def nam_dict_from_shorthand(arrays, weights, fs):
    """The same network as a .nam document, for scripts/nam_reference.py."""
    layers = []
    prev = None
    for a in arrays:
        layers.append({"input_size": 1 if prev is None else prev["channels"], "condition_size": 1,
                       "channels": a["channels"], "kernel_size": a["kernel_size"],
                       "dilations": a["dilations"], "activation": "Tanh", "gated": a["gated"],
                       "head_size": a["head_size"], "head_bias": a["head_bias"]})
        prev = a
    return {"version": "0.5.4", "architecture": "WaveNet",
            "config": {"layers": layers, "head": None, "head_scale": float(weights[-1])},
            "weights": [float(v) for v in weights], "sample_rate": fs}


def train_drive(out_dir, steps, log):
    torch = _torch()
    torch.manual_seed(1234)
    t0 = time.time()
    x_tr, y_tr = drive_data(101, 48.0)
    x_va, y_va = drive_data(202, 8.0)
    log("drive: %.1f s of training audio, %.1f s held out (data %.1f s)"
        % (len(x_tr) / DRIVE_FS, len(x_va) / DRIVE_FS, time.time() - t0))

    net = build_wavenet(torch, DRIVE_ARRAYS, DRIVE_HEAD_SCALE)
    rf = net.rf
    n_w = sum(p.numel() for p in net.parameters()) + 1
    seg, batch = 4096, 12
    opt = torch.optim.Adam(net.parameters(), lr=4e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=6e-3, total_steps=steps,
                                                pct_start=0.1, div_factor=10, final_div_factor=50)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    rng = np.random.default_rng(7)
    t1 = time.time()
    for step in range(steps):
        starts = rng.integers(0, len(x_tr) - seg - rf, batch)
        idx = torch.from_numpy(starts[:, None] + np.arange(seg + rf)[None, :])
        xb, yb = xt[idx], yt[idx][:, rf:]
        pred = net(xb, pad=False)
        loss = torch.sum((pred - yb) ** 2) / (torch.sum(yb ** 2) + 1e-6)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log("drive: step %4d/%d  batch ESR %.4f  (%.0f s)" % (step, steps, loss.item(), time.time() - t1))
    train_s = time.time() - t1

    with torch.no_grad():
        y_hat = net(torch.from_numpy(x_va)[None], pad=True)[0].numpy().astype(np.float64)
    e = esr(y_hat, y_va.astype(np.float64))
    e_steady = esr(y_hat[rf:], y_va[rf:].astype(np.float64))
    log("drive: held-out ESR %.4f (%.2f%%), trained %d steps in %.0f s" % (e, 100 * e, steps, train_s))

    weights = net.flat_weights()
    doc = {"format": "convd-model", "version": 1, "name": "drive",
           "description": (
               "Warm overdrive with a tone stack (48 kHz mono). Imitates a reference chain: "
               "+20 dB input gain, 80 Hz first-order high-pass, asymmetric tanh soft clipping "
               "(bias 0.3, even harmonics), low shelf +4 dB at 220 Hz, high cut at 4.2 kHz, "
               "output x0.5. NAM WaveNet, two arrays (channels 8 and 4, kernel 3, dilations "
               "1..256, tanh, not gated), %d weights, receptive field %d samples. Trained by "
               "scripts/train_demos.py on %.0f s of synthetic guitar (Karplus-Strong plucks, "
               "chords, palm mutes, sweeps, noise bursts), ESR loss, %d steps of %dx%d samples. "
               "Held-out ESR %.4f (8 s of unseen material)."
               % (len(weights), rf + 1, len(x_tr) / DRIVE_FS, steps, batch, seg, e)),
           "sample_rate": DRIVE_FS, "input_channels": 1,
           "wavenet": {"arrays": DRIVE_ARRAYS},
           "weights": weights}
    path = os.path.join(out_dir, "drive.json")
    size = dump_json(doc, path)

    # ---- export check: the file, read back, through nam_reference's computation
    sys.path.insert(0, HERE)
    import nam_reference
    with open(path) as f:
        back = json.load(f)
    assert back["wavenet"]["arrays"] == DRIVE_ARRAYS
    w_back = np.asarray(back["weights"], dtype=np.float64)
    assert len(w_back) == len(weights) == n_w, (len(w_back), len(weights), n_w)
    model = nam_reference.load_model(nam_dict_from_shorthand(DRIVE_ARRAYS, w_back, DRIVE_FS))
    ref = nam_reference.process(model, x_va, prewarm=False)
    err = float(np.max(np.abs(ref - y_hat)))
    log("drive: export check: nam_reference (no prewarm) vs torch, max abs diff %.2e over %d samples"
        % (err, len(ref)))
    assert err < 1e-4, err
    log("drive: wrote %s (%d bytes)" % (path, size))
    return {"esr": e, "esr_steady": e_steady, "train_s": train_s, "steps": steps,
            "weights": len(weights), "check": err, "bytes": size}


# ============================================================================ vibration-denoise

VIB_LAYERS = [  # name, filters, kernel, dilation, activation, residual
    ("c1", 16, 5, 1, "relu", False),
    ("c2", 16, 5, 2, "relu", True),
    ("c3", 16, 5, 4, "relu", True),
    ("c4", 16, 5, 8, "relu", True),
    ("c5", 16, 5, 16, "relu", True),
    ("c6", 16, 5, 32, "relu", True),
    ("c7", 3, 1, 1, "linear", False),
]
VIB_SEG, VIB_BATCH, VIB_LR = 1024, 16, 3e-3
VIB_CLIPS, VIB_CLIP_S = 512, 4.0
VIB_BIAS = False   # bias-free: the network is scale-equivariant, f(a x) = a f(x) for a > 0


def vib_data(seed, n_clips, seconds):
    rng = np.random.default_rng(seed)
    cl, no = [], []
    for _ in range(n_clips):
        c = vibration_clean(rng, seconds)
        cl.append(c)
        no.append(vibration_noisy(rng, c))
    return np.stack(no).astype(np.float32), np.stack(cl).astype(np.float32)


def vib_layers_json(net):
    """Keras-vocabulary layer list; Add layers for the residual connections."""
    out = []
    prev = "input"
    for conv, (name, f, k, d, act, res) in zip(net.convs, net.specs):
        w = conv.weight.detach().permute(2, 1, 0).contiguous().numpy()   # (k, C_in, F)
        L = {"class_name": "Conv1D", "name": name,
             "config": {"filters": f, "kernel_size": k, "padding": "causal", "dilation_rate": d,
                        "activation": act, "use_bias": conv.bias is not None}}
        L["inputs"] = [prev]
        L["weights"] = [w] if conv.bias is None else [w, conv.bias.detach().numpy()]
        out.append(L)
        if res:
            add = "r" + name[1:]
            out.append({"class_name": "Add", "name": add, "inputs": [prev, name]})
            prev = add
        else:
            prev = name
    out.append({"class_name": "Add", "name": "out", "inputs": ["input", prev]})
    return out


def numpy_keras_forward(layers, x):
    """Independent forward pass of the JSON layer list (weights as float32, computed in float64)
    on x (T, C): Keras Conv1D causal semantics, Add."""
    vals = {"input": np.asarray(x, dtype=np.float64)}
    last = None
    for L in layers:
        ins = [vals[n] for n in L.get("inputs", [last if last else "input"])]
        if L["class_name"] == "Conv1D":
            cfg = L["config"]
            k, d, f = cfg["kernel_size"], cfg["dilation_rate"], cfg["filters"]
            xin = ins[0]
            T, C = xin.shape
            K = np.asarray(L["weights"][0], dtype=np.float32).astype(np.float64).reshape(k, C, f)
            b = (np.asarray(L["weights"][1], dtype=np.float32).astype(np.float64)
                 if cfg.get("use_bias", True) else np.zeros(f))
            xp = np.concatenate([np.zeros(((k - 1) * d, C)), xin])
            y = np.zeros((T, f)) + b
            for j in range(k):
                # tap j reads x[t - (k-1-j)*d]  ==  xp[t + j*d]
                y += xp[j * d:j * d + T] @ K[j]
            if cfg["activation"] == "relu":
                y = np.maximum(y, 0)
            else:
                assert cfg["activation"] == "linear"
            vals[L["name"]] = y
        elif L["class_name"] == "Add":
            vals[L["name"]] = sum(ins)
        else:
            raise AssertionError(L["class_name"])
        last = L["name"]
    return vals[last]


def train_vibration(out_dir, steps, log):
    torch = _torch()
    torch.manual_seed(4321)
    t0 = time.time()
    x_tr, c_tr = vib_data(11, VIB_CLIPS, VIB_CLIP_S)
    x_va, c_va = vib_data(22, 16, 20.0)
    log("vibration-denoise: %d training clips of %.0f s, %d held out of 20 s (data %.1f s)"
        % (len(x_tr), VIB_CLIP_S, len(x_va), time.time() - t0))
    net = build_vibnet(torch, VIB_LAYERS)
    rf = sum((k - 1) * d for _, _, k, d, _, _ in VIB_LAYERS)
    seg, batch = VIB_SEG, VIB_BATCH
    opt = torch.optim.Adam(net.parameters(), lr=VIB_LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=VIB_LR, total_steps=steps,
                                                pct_start=0.1, div_factor=10, final_div_factor=30)
    xt = torch.from_numpy(x_tr).permute(0, 2, 1).contiguous()  # (N, 3, T)
    ct = torch.from_numpy(c_tr).permute(0, 2, 1).contiguous()
    rng = np.random.default_rng(9)
    t1 = time.time()
    T = xt.shape[2]
    for step in range(steps):
        clip = rng.integers(0, xt.shape[0], batch)
        st = rng.integers(0, T - seg - rf, batch)
        xb = torch.stack([xt[c, :, s:s + seg + rf] for c, s in zip(clip, st)])
        cb = torch.stack([ct[c, :, s + rf:s + seg + rf] for c, s in zip(clip, st)])
        pred = net(xb)[..., rf:]
        # per-segment normalised error: quiet and loud machines count alike
        loss = torch.mean(torch.sum((pred - cb) ** 2, (1, 2)) / (torch.sum(cb ** 2, (1, 2)) + 1e-6))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            log("vibration-denoise: step %4d/%d  NMSE %.4f  (%.0f s)"
                % (step, steps, loss.item(), time.time() - t1))
    train_s = time.time() - t1

    with torch.no_grad():
        y_va = net(torch.from_numpy(x_va).permute(0, 2, 1)).permute(0, 2, 1).numpy().astype(np.float64)
    cv, xv = c_va.astype(np.float64), x_va.astype(np.float64)
    snr_in = snr_db(cv, xv)
    snr_out = snr_db(cv, y_va)
    per_clip = [snr_db(cv[i], y_va[i]) - snr_db(cv[i], xv[i]) for i in range(len(cv))]
    log("vibration-denoise: held-out SNR %.2f dB -> %.2f dB (gain %.2f dB; per clip %.1f..%.1f dB), "
        "trained %d steps in %.0f s" % (snr_in, snr_out, snr_out - snr_in, min(per_clip), max(per_clip),
                                        steps, train_s))

    layers = vib_layers_json(net)
    n_w = sum(p.numel() for p in net.parameters())
    doc = {"format": "convd-model", "version": 1, "name": "vibration-denoise",
           "description": (
               "Causal denoiser for 3-axis vibration sensors at 1 kHz (x, y, z in, the same "
               "cleaned out), for one machine type: a motor at %.1f-%.1f Hz shaft rate driving an "
               "8-tooth gear mesh. Removes broadband noise and 50/60 Hz mains hum while keeping "
               "the machine's tones and bearing-fault impulses. Six bias-free Conv1D(16, 5, "
               "causal, relu) layers with dilations 1..32 and residual Adds, a 1x1 Conv1D to 3 "
               "channels added back to the input; %d weights, receptive field %d samples. "
               "Trained by scripts/train_demos.py on %d synthetic %.0f s clips (shaft harmonics "
               "and gear mesh with drifting amplitude and speed, bearing-fault impulse trains; "
               "white noise at 0-10 dB SNR plus hum), normalised MSE, %d steps of %dx%d samples. "
               "Held-out (16 clips of 20 s): SNR %.1f dB -> %.1f dB "
               "(%+.1f dB)."
               % (VIB_SHAFT_HZ[0], VIB_SHAFT_HZ[1], n_w, rf + 1, len(x_tr), VIB_CLIP_S, steps,
                  batch, seg, snr_in, snr_out, snr_out - snr_in)),
           "sample_rate": VIB_FS, "input_channels": 3, "layers": layers}
    path = os.path.join(out_dir, "vibration-denoise.json")
    size = dump_json(doc, path)

    with open(path) as f:
        back = json.load(f)
    err = 0.0
    for i in range(len(x_va)):
        ref = numpy_keras_forward(back["layers"], x_va[i])
        err = max(err, float(np.max(np.abs(ref - y_va[i]))))
    log("vibration-denoise: export check: numpy Keras forward vs torch, max abs diff %.2e" % err)
    assert err < 1e-4, err
    log("vibration-denoise: wrote %s (%d bytes)" % (path, size))
    return {"snr_in": snr_in, "snr_out": snr_out, "train_s": train_s, "steps": steps,
            "weights": n_w, "check": err, "bytes": size}


# ============================================================================ demo inputs


def write_wav(path, data, fs, float32=False):
    """WAV from data (T,) or (T, C): 16-bit PCM (values clipped to [-1, 1]), or with float32
    32-bit IEEE float (WAVE_FORMAT_IEEE_FLOAT, unclipped; written by hand, as `wave` only
    writes PCM)."""
    d = np.asarray(data, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    ch = d.shape[1]
    if not float32:
        pcm = np.clip(np.round(d * 32767), -32768, 32767).astype("<i2")
        with wave.open(path, "wb") as w:
            w.setnchannels(ch)
            w.setsampwidth(2)
            w.setframerate(fs)
            w.writeframes(pcm.tobytes())
        return
    body = d.astype("<f4").tobytes()
    fmt = (3).to_bytes(2, "little") + ch.to_bytes(2, "little") + int(fs).to_bytes(4, "little") \
        + (fs * ch * 4).to_bytes(4, "little") + (ch * 4).to_bytes(2, "little") \
        + (32).to_bytes(2, "little") + (0).to_bytes(2, "little")
    fact = len(d).to_bytes(4, "little")
    chunks = (b"fmt " + len(fmt).to_bytes(4, "little") + fmt
              + b"fact" + (4).to_bytes(4, "little") + fact
              + b"data" + len(body).to_bytes(4, "little") + body)
    with open(path, "wb") as f:
        f.write(b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks)


def read_wav(path):
    """WAV (16-bit PCM or 32-bit float, the latter by hand as `wave` refuses it) -> (T, C)."""
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE", path
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], int.from_bytes(raw[pos + 4:pos + 8], "little")
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag = int.from_bytes(body[0:2], "little")
            ch = int.from_bytes(body[2:4], "little")
            fs = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
            if tag == 0xFFFE:
                tag = int.from_bytes(body[24:26], "little")
            fmt = (tag, ch, fs, bits)
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    tag, ch, fs, bits = fmt
    if tag == 3 and bits == 32:
        x = np.frombuffer(data, dtype="<f4").astype(np.float64)
    elif tag == 3 and bits == 64:
        x = np.frombuffer(data, dtype="<f8").copy()
    elif tag == 1 and bits == 16:
        x = np.frombuffer(data, dtype="<i2") / 32768.0
    elif tag == 1 and bits == 32:
        x = np.frombuffer(data, dtype="<i4") / 2147483648.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v / float(1 << 23)
    else:
        raise ValueError("%s: unsupported WAV format %r" % (path, fmt))
    return x.reshape(-1, ch), fs


def demo_guitar(seconds=8.0):
    return guitar_phrase(np.random.default_rng(2024), seconds)


def demo_vibration(seconds=20.0):
    rng = np.random.default_rng(2025)
    clean = vibration_clean(rng, seconds)
    noisy = vibration_noisy(rng, clean, snr_db=5.0)
    return clean, noisy


def make_inputs(outdir):
    os.makedirs(outdir, exist_ok=True)
    g = demo_guitar()
    write_wav(os.path.join(outdir, "drive.in.wav"), g, DRIVE_FS)
    g16, _ = read_wav(os.path.join(outdir, "drive.in.wav"))       # what convd-run will read
    write_wav(os.path.join(outdir, "drive.ref.wav"), drive_reference(g16[:, 0]), DRIVE_FS, float32=True)
    clean, noisy = demo_vibration()
    scale = 1.0 / max(np.max(np.abs(noisy)), np.max(np.abs(clean))) * 0.9
    # the WAVs hold the signal in g scaled into [-1, 1]; the model is not linear, so feed it
    # the unscaled signal through the float CSV and keep the WAVs for listening/plots
    np.savetxt(os.path.join(outdir, "vibration.in.csv"), noisy, fmt="%.7g", delimiter=",")
    np.savetxt(os.path.join(outdir, "vibration.clean.csv"), clean, fmt="%.7g", delimiter=",")
    write_wav(os.path.join(outdir, "vibration.in.wav"), noisy * scale, VIB_FS)
    write_wav(os.path.join(outdir, "vibration.clean.wav"), clean * scale, VIB_FS)
    with open(os.path.join(outdir, "vibration.scale"), "w") as f:
        f.write("%.9g\n" % scale)


def rms_db(x):
    return 20 * math.log10(math.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)) + 1e-12)


def report(outdir, models=os.path.join(ROOT, "config", "models")):
    """Figures for the rendered demos, a check of convd's outputs against the independent
    numpy forward passes, and vibration.out.wav from vibration.out.csv."""
    sys.path.insert(0, HERE)
    import nam_reference
    din, fs = read_wav(os.path.join(outdir, "drive.in.wav"))
    dout, _ = read_wav(os.path.join(outdir, "drive.out.wav"))
    dref, _ = read_wav(os.path.join(outdir, "drive.ref.wav"))
    with open(os.path.join(models, "drive.json")) as f:
        doc = json.load(f)
    nam = nam_reference.load_model(nam_dict_from_shorthand(doc["wavenet"]["arrays"], doc["weights"],
                                                           doc["sample_rate"]))
    expect = nam_reference.process(nam, din[:, 0], prewarm=False)
    n = min(len(dref), len(dout))
    print("drive: %.1f s at %d Hz; RMS in %.1f dBFS, out %.1f dBFS (reference chain %.1f dBFS); "
          "ESR vs the reference chain %.4f; convd vs numpy reference: max abs diff %.1e"
          % (len(din) / fs, fs, rms_db(din), rms_db(dout), rms_db(dref), esr(dout[:n, 0], dref[:n, 0]),
             float(np.max(np.abs(dout[:, 0] - expect)))))
    clean = np.loadtxt(os.path.join(outdir, "vibration.clean.csv"), delimiter=",", ndmin=2)
    noisy = np.loadtxt(os.path.join(outdir, "vibration.in.csv"), delimiter=",", ndmin=2)
    out = np.loadtxt(os.path.join(outdir, "vibration.out.csv"), delimiter=",", ndmin=2,
                     skiprows=1)  # convd-run's header line naming the channels
    with open(os.path.join(models, "vibration-denoise.json")) as f:
        vdoc = json.load(f)
    vexp = numpy_keras_forward(vdoc["layers"], noisy.astype(np.float32))
    with open(os.path.join(outdir, "vibration.scale")) as f:
        scale = float(f.read())
    write_wav(os.path.join(outdir, "vibration.out.wav"), np.clip(out * scale, -1, 1), VIB_FS)
    m = min(len(clean), len(out))
    print("vibration: %.1f s x 3 axes at %d Hz; RMS in %.1f dB, out %.1f dB, clean %.1f dB (re 1 g); "
          "SNR vs clean %.2f dB -> %.2f dB (%+.2f dB); convd vs numpy reference: max abs diff %.1e"
          % (m / VIB_FS, VIB_FS, rms_db(noisy), rms_db(out[:m]), rms_db(clean),
             snr_db(clean[:m], noisy[:m]), snr_db(clean[:m], out[:m]),
             snr_db(clean[:m], out[:m]) - snr_db(clean[:m], noisy[:m]),
             float(np.max(np.abs(out - vexp)))))


# ============================================================================ main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "config", "models"))
    ap.add_argument("--only", choices=["drive", "vibration-denoise"])
    ap.add_argument("--drive-steps", type=int, default=800)
    ap.add_argument("--vib-steps", type=int, default=3000)
    ap.add_argument("--make-inputs", metavar="OUTDIR")
    ap.add_argument("--report", metavar="OUTDIR")
    args = ap.parse_args(argv)
    if args.make_inputs:
        make_inputs(args.make_inputs)
        return 0
    if args.report:
        report(args.report)
        return 0

    def log(msg):
        print(msg, flush=True)

    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    res = {}
    if args.only in (None, "drive"):
        res["drive"] = train_drive(args.out, args.drive_steps, log)
    if args.only in (None, "vibration-denoise"):
        res["vibration-denoise"] = train_vibration(args.out, args.vib_steps, log)
    log("done in %.0f s" % (time.time() - t0))
    log(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
