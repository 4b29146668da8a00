"""Make the small .npy fixtures of npy's tests with NumPy itself.

Run from this directory: python make_fixtures.py (needs numpy). The files are
committed; rerun only to change them.
"""
import numpy as np
from numpy.lib import format as npf


def save(name, arr, version=None):
    with open(name, "wb") as f:
        npf.write_array(f, arr, version=version, allow_pickle=False)


save("i1_2x3x4.npy", np.arange(24, dtype=np.int8).reshape(2, 3, 4) - 12)
save("f4_3x5.npy", (np.arange(15, dtype=np.float32) * 0.5).reshape(3, 5))
save("f4_2x3x4_v2.npy", np.arange(24, dtype=np.float32).reshape(2, 3, 4), version=(2, 0))
save("u2_4_v3.npy", np.arange(4, dtype=np.uint16), version=(3, 0))
save("f8_scalar.npy", np.array(1.5))
save("bool_0x3.npy", np.zeros((0, 3), dtype=bool))
save("f4_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
save("f4_bigendian.npy", np.arange(6, dtype=">f4").reshape(2, 3))
save("structured.npy", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]))
save("unicode_U2.npy", np.array(["ab", "c"]))

# A truncated file: the float32 array with its last 7 bytes cut off.
with open("f4_3x5.npy", "rb") as f:
    data = f.read()
with open("f4_3x5_truncated.npy", "wb") as f:
    f.write(data[:-7])
