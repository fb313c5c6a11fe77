"""vqvae_lib: the small, layered PyTorch library behind *VQ-VAE from first principles*.

Layers (imports go downward only; ``tests/test_layers.py`` checks it against :data:`LAYERS`):

1. ``runtime`` (seed, device, profile), ``data`` (datasets, loaders), ``nn`` (the paper's
   encoder/decoder and the one image-shape check), ``likelihood`` (the discretised logistic over
   8-bit pixels, and the one map from pixels to the models' [-1, 1] range), ``nearest`` (nearest
   code as one matmul), ``estimators`` (score function, NVIL, VIMCO, Gumbel-softmax), ``metrics``
   (bits/dim and its two-part bookkeeping), ``fsdd`` (the Free Spoken Digit Dataset: recordings,
   labels, split), ``audio`` (log-mel spectrograms and Griffin-Lim back to sound);
2. ``vae`` (Gaussian VAE), ``discrete`` (categorical VAE), ``kmeans``, ``quantize`` (the vector
   quantisers), then ``vqvae`` on top of ``quantize``; ``prior`` (the Gated PixelCNN over codes),
   then ``pixel_decoder`` on top of ``prior``, ``vae`` and ``quantize`` (a Gated PixelCNN over pixels as the
   decoder of a Gaussian VAE and of a VQ-VAE, for posterior collapse); ``vqvae1d`` (a 1-D VQ-VAE over
   log-mel frames with a speaker-conditioned decoder) on top of ``quantize``, and ``prior1d`` (a
   causal WaveNet-style prior over its code sequences); Chapter 09's later quantisers, each with the
   same interface (``QuantizerOutput``, ``bits``, ``encode_indices``, ``lookup``): ``rotation`` (the
   rotation trick, an option of ``quantize``'s quantisers), ``fsq`` (finite scalar quantisation),
   ``lfq`` (lookup-free quantisation), ``residual`` (residual VQ over ``quantize``'s quantisers), all
   selectable in ``vqvae``; ``vqvae2`` (a two-level VQ-VAE-2-style model);
   each model is built from a config dataclass (``VAEConfig``, ``CategoricalVAEConfig``,
   ``VQVAEConfig``, ``PriorConfig``, ``PixelDecoderConfig``, ``VQVAE1DConfig``, ``Prior1DConfig``,
   ``VQVAE2Config``);
3. ``train`` (the one training loop), ``checkpoint`` (the cache of trained models, keyed by run),
   ``importance`` (the importance-weighted bound), ``second_stage`` (a learned prior's bound for
   every discrete model), ``plot`` (figures), ``probe`` (linear probes of codes, and the log-mel
   classifiers that score converted speech);
4. ``cli``: every model from the command line, ``python -m vqvae_lib.train`` or ``vqvae-train``, in one
   process or under torchrun (DDP). ``distributed`` (layer 1) holds the few ``torch.distributed``
   calls with which the quantisers keep their codebooks equal across processes.

**Random numbers, one rule.** Every public function that draws random numbers for the reader
(sampling, k-means seeding, noise, importance samples) takes ``generator=None``. ``None`` means the
global RNG; a generator must live on the device where the numbers are drawn, which is always the
device of the tensors involved (``torch.Generator(device=x.device)``), as PyTorch itself requires.
Randomness inside a model's ``loss`` during training uses the global RNG, which
``checkpoint.load_or_fit`` seeds.

**Devices.** No module hard-codes a device; every tensor follows its input's device.

Importing the package imports nothing heavy and downloads nothing.
"""

__version__ = "0.1.0"
LAYERS = {
    "runtime": 1, "data": 1, "nn": 1, "likelihood": 1, "nearest": 1, "estimators": 1, "metrics": 1,
    "fsdd": 1, "audio": 1,
    "vae": 2, "discrete": 2, "kmeans": 2, "quantize": 2, "vqvae": 2, "prior": 2, "pixel_decoder": 2,
    "vqvae1d": 2, "prior1d": 2, "rotation": 2, "fsq": 2, "lfq": 2, "residual": 2, "vqvae2": 2,
    "distributed": 1,
    "train": 3, "checkpoint": 3, "importance": 3, "second_stage": 3, "plot": 3, "probe": 3,
    "cli": 4,
}
