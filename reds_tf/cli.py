"""The ``reds`` command line: thin click commands over the pipeline modules.

This is the only module that prints tables. Each subcommand's docstring is its help.
Subcommands: solve, run, convert (added by their issues), eval, info.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reds_tf")
def main() -> None:
    """REDS: nested resource-efficient subnetworks for TensorFlow and TFLite Micro."""
