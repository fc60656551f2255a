#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Fit tanh(x) = x P(x^2) / Q(x^2) on [0, C], the rational form dsp/vmath uses.

Minimises the maximum relative error by iteratively reweighted least squares (Lawson's
method) on the linearised problem P(s) - f(s) Q(s) = 0 with f = tanh(x)/x, s = (x/C)^2,
Q(0) = 1, then rescales the coefficients to the unscaled variable x^2 and divides P and Q by
Q's leading coefficient, so Q is monic (its Horner chain starts with an add, not an FMA).

    scripts/fit_tanh.py [C] [deg P] [deg Q]      (defaults: 8 3 4, the shipped fit)

Prints the coefficients as TP0.., TQ0.. (Q's leading 1 left out) and the fit's error in exact
(double) arithmetic on stderr. The float evaluation adds a few ulps: tests/test_vmath.c
measures what ships.
"""
import sys

import numpy as np


def fit(c, n_p, n_q, iters=60):
    x = np.concatenate([np.linspace(1e-4, c, 200000), np.geomspace(1e-6, 1, 2000)])
    s = (x / c) ** 2
    f = np.tanh(x) / x
    w = np.ones_like(x)
    sp = s[:, None] ** np.arange(n_p + 1)
    sq = s[:, None] ** np.arange(1, n_q + 1)
    coef = None
    for _ in range(iters):
        q_prev = 1 + sq @ coef[n_p + 1:] if coef is not None else np.ones_like(s)
        wt = w / (f * q_prev)
        a = np.concatenate([sp, -f[:, None] * sq], axis=1)
        coef, *_ = np.linalg.lstsq(a * wt[:, None], f * wt, rcond=None)
        err = (sp @ coef[:n_p + 1] / (1 + sq @ coef[n_p + 1:]) - f) / f
        w = np.maximum(w * np.abs(err) / (w * np.abs(err)).max(), 1e-6)
    p = coef[:n_p + 1] / c ** (2 * np.arange(n_p + 1))
    q = coef[n_p + 1:] / c ** (2 * np.arange(1, n_q + 1))
    lead = q[-1]
    return p / lead, np.concatenate([[1.0], q[:-1]]) / lead, np.abs(err).max()


def main():
    c = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    n_p = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    n_q = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    p, q, err = fit(c, n_p, n_q)
    for i, v in enumerate(p):
        print("#define TP%d %.9e" % (i, v))
    for i, v in enumerate(q):
        print("#define TQ%d %.9e" % (i, v))
    print("max relative error in double: %.3g" % err, file=sys.stderr)


if __name__ == "__main__":
    main()
