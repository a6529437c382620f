"""Small assertions shared by the loader tests."""

from __future__ import annotations

import numpy as np


def arrays(ds):
    """(x, y) numpy arrays of a whole unbatched dataset, in iteration order."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.stack(xs), np.array(ys)


def assert_augmentation_only_in_training(s, plain):
    """Two passes over train differ (augmentation), over val/test are identical; without augmentation
    train is identical too. ``s`` / ``plain``: Splits loaded with augment=True / False, shuffle=False."""
    a, ya = arrays(s.train)
    b, yb = arrays(s.train)
    np.testing.assert_array_equal(ya, yb)  # same order: shuffle is off, only the inputs change
    assert np.abs(a - b).max() > 1e-3, "training elements did not change between passes"
    for split in (s.val, s.test):
        v1, _ = arrays(split)
        v2, _ = arrays(split)
        np.testing.assert_array_equal(v1, v2)
    p1, _ = arrays(plain.train)
    p2, _ = arrays(plain.train)
    np.testing.assert_array_equal(p1, p2)
