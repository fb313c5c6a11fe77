"""The book's quantisers, one interface (base.py): Chapter 04's VectorQuantizer and Chapter 05's EMA
codebook (vq.py) over nearest-code search (nearest.py) and k-means (kmeans.py); Chapter 10's rotation
trick (rotation.py, an option of vq.py's quantisers), FSQ (fsq.py), lookup-free quantisation
(lfq.py) and residual VQ (residual.py).
"""

from .base import Quantizer, QuantizerOutput, codes_used, perplexity, perplexity_of_counts
from .fsq import FiniteScalarQuantizer, RECOMMENDED_LEVELS
from .kmeans import kmeans, kmeans_plus_plus
from .lfq import LookupFreeQuantizer
from .nearest import nearest_code, squared_distances
from .residual import ResidualVectorQuantizer
from .rotation import rotate_to
from .vq import VectorQuantizer, VectorQuantizerEMA

__all__ = ["Quantizer", "QuantizerOutput", "codes_used", "perplexity", "perplexity_of_counts", "RECOMMENDED_LEVELS",
           "FiniteScalarQuantizer", "kmeans", "kmeans_plus_plus", "LookupFreeQuantizer", "nearest_code",
           "squared_distances", "ResidualVectorQuantizer", "rotate_to", "VectorQuantizer", "VectorQuantizerEMA"]
