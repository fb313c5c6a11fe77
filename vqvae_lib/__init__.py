"""vqvae_lib: the small, layered PyTorch library behind *VQ-VAE from first principles*.

Layers (imports go downward only):

1. ``runtime`` (seed, device, profile), ``data`` (datasets, loaders), ``nn`` (the paper's
   encoder/decoder), ``likelihood`` (the discretised logistic over 8-bit pixels), ``nearest``
   (nearest code as one matmul), ``estimators`` (score function, NVIL, VIMCO, Gumbel-softmax);
2. ``vae`` (Gaussian VAE), ``discrete`` (categorical VAE), ``kmeans``, ``quantize`` (the vector
   quantisers), then ``vqvae`` on top of ``quantize``; ``prior`` (the Gated PixelCNN over codes);
3. ``train`` (the one training loop, checkpoints), ``metrics`` (bits/dim and its two-part bookkeeping),
   ``importance`` (the importance-weighted bound), ``plot`` (figures).

Importing the package imports nothing heavy and downloads nothing.
"""

__version__ = "0.1.0"
REPO_URL = "https://github.com/vqvae-from-first-principles/vqvae-book"
