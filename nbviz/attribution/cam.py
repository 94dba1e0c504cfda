"""Class activation maps from a layer's activations and the target's gradient there.

Grad-CAM (Selvaraju et al. 2017): channel weights are the spatial mean of the gradient.
Grad-CAM++ (Chattopadhay et al. 2018), closed form for ``Y = exp(score)``: with ``g`` the
first-order gradient, ``alpha = g^2 / (2 g^2 + sum_ab A g^3)`` (0 where the denominator is),
weights ``sum_ij alpha ReLU(g)``; the positive factor ``exp(score)`` common to every weight is
left out (it would overflow for large logits and disappears when the map is normalized).
Both maps are ``ReLU(sum_k w_k A_k)`` at the layer's resolution.
"""

from __future__ import annotations

import numpy as np


def grad_cam_weights(grads: np.ndarray) -> np.ndarray:
    """``(N, K)`` Grad-CAM channel weights from ``(N, h, w, K)`` gradients."""
    return grads.mean(axis=(1, 2))


def grad_cam_plus_plus_weights(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """``(N, K)`` Grad-CAM++ channel weights (closed form, see the module docstring)."""
    g2 = grads.astype(np.float64) ** 2
    g3 = g2 * grads
    denom = 2.0 * g2 + acts.sum(axis=(1, 2), keepdims=True) * g3
    alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
    return (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2))


def class_activation_map(acts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``ReLU(sum_k weights_k A_k)``: ``(N, h, w)`` float32."""
    return np.maximum(np.einsum("nhwk,nk->nhw", acts, weights), 0.0).astype(np.float32)
