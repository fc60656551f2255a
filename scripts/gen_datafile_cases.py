#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""NumPy's own .npy files for the data-file tests (tests/test_datafiles.c).

Usage (from the top of the tree; Debian's /usr/bin/python3 with numpy):

    scripts/gen_datafile_cases.py          # writes tests/data/tools/npy/

The files are written by numpy.save (not by convd), so the tests read NumPy's real format:

  f4_2d.npy     float32, shape (40, 2)
  f8_2d.npy     the same values as float64, plus a little more than float32 holds
  f4_1d.npy     float32, shape (40,): one channel
  f8_1d_v2.npy  float64, shape (40,), written as format version 2.0
  values.f32    f4_2d's values, frames x 2, little-endian float32 (what convd must read from
                f4_2d and, rounded to float32, from f8_2d)
  f8_round.f32  f8_2d's values rounded to float32 by numpy (astype)
  time_f8.npy   float64, shape (12, 3): a time in seconds (1.7e9: more than float32 keeps), then
                two channels
  big_f8.npy    float64, one value beyond float32's range (refused)
  be_f4.npy     big-endian float32 (refused); fortran.npy: Fortran order (refused);
  i2.npy        int16 (refused); three_d.npy: shape (2, 3, 4) (refused);
  complex.npy   complex64 (refused); struct.npy: a structured dtype (refused)
Deterministic: running it again rewrites identical files.
"""

import os

import numpy as np
from numpy.lib import format as npf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tools",
                   "npy")


def main():
    os.makedirs(OUT, exist_ok=True)
    p = lambda n: os.path.join(OUT, n)  # noqa: E731
    rng = np.random.default_rng(14)
    x32 = rng.standard_normal((40, 2)).astype(np.float32)
    np.save(p("f4_2d.npy"), x32)
    x32.astype("<f4").tofile(p("values.f32"))
    x64 = x32.astype(np.float64) + rng.standard_normal((40, 2)) * 1e-9
    np.save(p("f8_2d.npy"), x64)
    x64.astype(np.float32).astype("<f4").tofile(p("f8_round.f32"))
    np.save(p("f4_1d.npy"), x32[:, 0].copy())
    with open(p("f8_1d_v2.npy"), "wb") as f:
        npf.write_array(f, x64[:, 1].copy(), version=(2, 0))
    t = 1.7e9 + np.arange(12) * 0.25
    np.save(p("time_f8.npy"), np.stack([t, np.sin(np.arange(12)), np.cos(np.arange(12))], 1))
    big = x64.copy()
    big[7, 1] = 1e300
    np.save(p("big_f8.npy"), big)
    np.save(p("be_f4.npy"), x32.astype(">f4"))
    np.save(p("fortran.npy"), np.asfortranarray(x32))
    np.save(p("i2.npy"), (x32 * 1000).astype(np.int16))
    np.save(p("three_d.npy"), np.zeros((2, 3, 4), np.float32))
    np.save(p("complex.npy"), x32.astype(np.complex64))
    np.save(p("struct.npy"), np.zeros(4, dtype=[("a", "<f4"), ("b", "<f4")]))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
