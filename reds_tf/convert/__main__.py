"""``python -m reds_tf.convert``: the same command as ``reds convert``."""

from ..cli import convert_cmd

if __name__ == "__main__":
    convert_cmd(prog_name="python -m reds_tf.convert")
