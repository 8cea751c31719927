# Writes the .npy files of this directory with numpy's own writer (run once; the
# tests read the committed files and do not need Python):
#   /usr/bin/python3 make_npy.py        (Debian 12: python3-numpy 1.24)
# Every float array holds v(i[, j[, k]]) = 100 i + 10 j + k + 0.5 (exact in float16 too),
# so a reader can check each element from its index alone.
import numpy as np


def grid(shape):
    idx = np.indices(shape)
    v = 0.5 + sum(w * i for w, i in zip((100, 10, 1), idx))
    return v


def save(name, a):
    np.save(name, a, allow_pickle=False)


save("c_f4.npy", grid((2, 3)).astype("<f4"))
save("fortran_f8.npy", np.asfortranarray(grid((2, 3, 4)).astype("<f8")))
save("fortran_f4_2d.npy", np.asfortranarray(grid((3, 5)).astype("<f4")))
save("be_f4.npy", grid((2, 3)).astype(">f4"))
save("be_f8_fortran.npy", np.asfortranarray(grid((4, 3)).astype(">f8")))
save("c_f2.npy", grid((2, 3)).astype("<f2"))
save("be_f2.npy", grid((3,)).astype(">f2"))
save("be_i8.npy", np.array([1, -2, 1 << 40], dtype=">i8"))
# a [D, k] = [8, 2] subspace basis stored the way numpy users often have it: Fortran order, float16
save("basis_f2_fortran.npy", np.asfortranarray(np.eye(8, 2, dtype="<f2")))
# dtypes depass refuses, each with one error naming the dtype
save("u2.npy", np.arange(4, dtype="<u2"))
save("u1.npy", np.arange(4, dtype="u1"))
save("c8.npy", np.arange(4, dtype="<c8"))
save("bool.npy", np.array([True, False]))
# the same random [64, 2] basis (values rounded to float16) twice: big-endian float16 in Fortran
# order, and little-endian float64 in C order; attributions with either must be identical
B = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float16)
save("basis64_f2_fortran_be.npy", np.asfortranarray(B.astype(">f2")))
save("basis64_f8_c.npy", B.astype("<f8"))
