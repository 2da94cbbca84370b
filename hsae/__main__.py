"""``python -m hsae``: the ``hsae`` command, as launchers such as ``torchrun -m hsae`` start it."""

from hsae.cli.app import main

main()
