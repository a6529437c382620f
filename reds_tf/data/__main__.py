"""``python -m reds_tf.data check NAME DATA_DIR``: validate a dataset layout before a long job.

Prints the dataset root and exits 0, or prints the DatasetLayoutError message (expected layout, where
the data comes from, the fix) to stderr and exits 2. Imports no TensorFlow, so it answers at once;
``make train-kws`` / ``make train-vww`` can call it first. ``python -m reds_tf.data names`` lists the names.
"""

from __future__ import annotations

import argparse
import sys

from reds_tf.data import check_layout, names
from reds_tf.errors import DatasetLayoutError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reds_tf.data", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check that DATA_DIR has the layout of dataset NAME")
    c.add_argument("name", choices=names())
    c.add_argument("data_dir", nargs="?", default=None)
    sub.add_parser("names", help="list dataset names")
    a = p.parse_args(argv)
    if a.cmd == "names":
        print("\n".join(names()))
        return 0
    try:
        print(check_layout(a.name, a.data_dir or None))
    except DatasetLayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
