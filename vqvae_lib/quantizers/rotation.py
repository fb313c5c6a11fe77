"""The rotation trick (Fifty et al. 2025, "Restructuring Vector Quantization with the Rotation Trick", Sec. 4).

The straight-through estimator copies the gradient that reaches the code ``e`` onto the encoder
output ``z_e`` unchanged. The rotation trick writes ``e`` instead as a rotation and a rescaling of ``z_e``,

    e = lambda R z_e,    lambda = ||e|| / ||z_e||,    R u = q,    u = z_e / ||z_e||,  q = e / ||e||,

and treats ``lambda R`` as a constant, so the gradient that reaches ``z_e`` is ``lambda R^T`` times
the one at ``e``: the angle between that gradient and ``z_e`` is the angle between the incoming one
and ``e``. ``R`` turns the plane of ``u`` and ``q`` and leaves the rest of R^D alone. It is the
product of two Householder reflections, so it is orthogonal with determinant +1:

    R = (I - 2 r r^T)(I - 2 u u^T) = I - 2 r r^T + 2 q u^T,    r = (u + q) / ||u + q||,

and it is applied without forming a D x D matrix:  R z = z - 2 r (r.z) + 2 q (u.z).
(The paper names the encoder output ``e`` and the code ``q``; here they are ``z_e`` and ``e``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..precision import at_least_fp32, autocast_off

GRADIENTS = ("straight_through", "rotation")


def check_gradient(gradient: str) -> None:
    """Raise a ValueError unless ``gradient`` names one of :data:`GRADIENTS`."""
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient {gradient!r}; expected one of {GRADIENTS}")


def rotate_to(z_e: torch.Tensor, e: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``z_q: (N, D)`` with the value of the codes ``e: (N, D)`` and, row by row, the gradient
    ``lambda R^T g`` to ``z_e: (N, D)`` for an incoming gradient ``g`` (module docstring).

    The value is ``e`` itself: ``lambda R z_e`` equals it only up to rounding. No gradient reaches
    ``e``. Degenerate rows stay finite (the norms are clamped at ``eps``):

    - ``||z_e|| <= eps``: ``z_e`` has no direction to rotate, so the row falls back to straight-through;
    - ``u = -q``: ``r = 0`` and ``R = I - 2 u u^T``, the reflection that still maps ``u`` to ``q``;
    - ``e = 0``: ``lambda = 0``, so that row passes no gradient, as the formula says.

    Computed in at least fp32 (fp64 for fp64 inputs), also under autocast.
    """
    with autocast_off(z_e.device):
        dtype = torch.promote_types(at_least_fp32(z_e).dtype, at_least_fp32(e).dtype)
        z, e = z_e.to(dtype), e.detach().to(dtype)
        with torch.no_grad():  # lambda and R are constants: the stop-gradient of the paper
            norm_z, norm_e = z.norm(dim=1, keepdim=True), e.norm(dim=1, keepdim=True)
            u, q = z / norm_z.clamp(min=eps), e / norm_e.clamp(min=eps)
            r = F.normalize(u + q, dim=1, eps=eps)
            scale = norm_e / norm_z.clamp(min=eps)
        rotated = scale * (z - 2 * r * (r * z).sum(1, keepdim=True) + 2 * q * (u * z).sum(1, keepdim=True))
        rotated = torch.where(norm_z > eps, rotated, z)
        return e + (rotated - rotated.detach())
