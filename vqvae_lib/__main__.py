"""``python -m vqvae_lib``: the command line (cli.py), in one process or under torchrun."""

from .cli import main

main()
