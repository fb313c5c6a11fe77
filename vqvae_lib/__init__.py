"""vqvae_lib: the small, layered PyTorch library behind *VQ-VAE from first principles*.

The layout shows the design: two sub-packages where the modules form a real cluster, flat
modules for the rest. Imports go downward (or sideways within a layer) only; ``tests/test_layers.py``
reads every import of every file against :data:`LAYERS`.

1. **Foundations:** ``runtime`` (seed, device, profile, eval mode), ``precision`` (what stays fp32),
   ``data`` (datasets, loaders, a dataset's codes), ``blocks`` (the paper's encoder/decoder and the
   one image-shape check), ``likelihood`` (the discretised logistic over 8-bit pixels), ``estimators``
   (score function, NVIL, VIMCO, Gumbel-softmax), ``metrics`` (bits/dim), ``distributed`` (the few
   ``torch.distributed`` calls with which the quantisers keep their codebooks equal across
   processes); ``audio.fsdd`` (the Free Spoken Digit Dataset) and ``audio.spectrogram`` (log-mels
   and Griffin-Lim); ``video.doom`` (ViZDoom frames, collected and replayed from a seed);
   ``validation`` (a validation split held out of a training set), ``stats`` (Welch's interval
   between two rows of seeds), ``results`` (the numbers a chapter's prose relies on, as JSON).
2. **``quantizers/``:** one interface (``base``: ``Quantizer``, ``QuantizerOutput``), nearest-code
   search (``nearest``), ``kmeans``, the rotation trick (``rotation``), Chapter 04/05's VQ and EMA
   quantisers (``vq``), and Chapter 10's ``fsq``, ``lfq`` and ``residual``.
3. **Models**, each built from a config dataclass: ``vae`` (Gaussian VAE), ``discrete`` (categorical
   VAE), ``vqvae`` (any quantiser), ``prior`` (the Gated PixelCNN over codes), ``pixel_decoder`` (a
   PixelCNN over pixels as the decoder of a VAE and of a VQ-VAE, for posterior collapse), ``vqvae2``
   (two levels); ``audio.vqvae1d`` (a 1-D VQ-VAE with a speaker-conditioned decoder),
   ``audio.prior1d`` (a causal WaveNet-style prior over its codes), ``audio.judges`` (the log-mel
   classifiers that score converted speech); ``video.code_vqvae`` (the paper's 27-bit second stage over
   a frame's codes), ``video.action_prior`` (an action-conditioned prior that imagines frames in
   latent space), ``video.judge`` (the classifier that names the action between two frames).
4. **Using models:** ``train`` (the one training loop), ``checkpoint`` (the cache of trained models,
   keyed by run), ``importance`` (the importance-weighted bound), ``second_stage`` (a learned prior's
   bound for every discrete model), ``plot`` (figures), ``audio.probe`` (linear probes of codes).
5. ``cli``: every model from the command line, ``python -m vqvae_lib`` (``__main__``) or
   ``vqvae-train``, in one process or under torchrun (DDP).

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
    "runtime": 1, "precision": 1, "data": 1, "blocks": 1, "likelihood": 1, "estimators": 1, "metrics": 1,
    "distributed": 1, "validation": 1, "stats": 1, "results": 1, "audio": 1, "audio.fsdd": 1, "audio.spectrogram": 1, "video": 1, "video.doom": 1,
    "quantizers": 2, **{f"quantizers.{m}": 2 for m in ("base", "nearest", "kmeans", "rotation", "vq", "fsq", "lfq", "residual")},
    "vae": 3, "discrete": 3, "vqvae": 3, "prior": 3, "pixel_decoder": 3, "vqvae2": 3,
    "audio.vqvae1d": 3, "audio.prior1d": 3, "audio.judges": 3,
    "video.code_vqvae": 3, "video.action_prior": 3, "video.judge": 3,
    "train": 4, "checkpoint": 4, "importance": 4, "second_stage": 4, "plot": 4, "audio.probe": 4,
    "cli": 5, "__main__": 5,
}
