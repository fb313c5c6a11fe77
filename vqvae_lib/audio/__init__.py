"""Audio (Chapter 08): the Free Spoken Digit Dataset (fsdd.py), log-mel spectrograms and Griffin-Lim
(spectrogram.py), a 1-D VQ-VAE with a speaker-conditioned decoder (vqvae1d.py), a causal prior over
its codes (prior1d.py), linear probes of the codes (probe.py) and the classifiers that judge
converted speech (judges.py).

Import the modules themselves (``from vqvae_lib.audio.fsdd import load_fsdd``): this file imports
nothing, so loading the data does not load the models.
"""
