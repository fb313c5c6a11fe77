"""Video (Chapter 09): frames of a 3-D world from ViZDoom, collected and replayed from a seed
(doom.py), a second VQ-VAE that compresses a frame's code grid into three codes (code_vqvae.py), an
action-conditioned prior over code grids that imagines the future in latent space (action_prior.py)
and the classifier that names the action between two frames (judge.py).

Import the modules themselves (``from vqvae_lib.video.doom import collect``): this file imports
nothing, so ViZDoom is loaded only by the chapter that uses it.
"""
