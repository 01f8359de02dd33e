"""Critics (discriminators): fully connected, convolutional with GAP or FC head, and 1-Lipschitz GroupSort.

Every critic maps ``x (B, *in_shape)`` to scores ``(B,)``.

* :class:`FCCritic` — ``Linear(d, 1024) -> LeakyReLU(0.2) -> Linear(1024, 1)`` (Elnekave & Weiss; depth
  and width configurable). With it a WGAN minimises the image-level W1.
* :class:`CNNCritic` — ``n`` convolutions (kernel 3, stride 2, no padding, ReLU) then either
  ``head="gap"``: global average pooling and a bias-free linear unit (CNN-GAP), or ``head="fc"``: one
  bias-free linear unit over all locations and channels (CNN-FC). Theorem 2: CNN-GAP equals the mean over
  patch locations of one *patch critic* ``g`` applied to each ``S x S`` patch (``S`` =
  :func:`receptive_field`, patches taken with stride :func:`patch_stride`); Theorem 4: CNN-FC equals
  ``sum_i sum_c w_ic f_c(P_i x)``. The paper's text uses 64 channels in every layer; the reference
  code uses 64 -> 128 -> 256 (``channels=(64, 128, 256)``).
* :class:`GroupSortCritic` — an MLP whose weight matrices are orthonormalised (Björck) or spectrally
  normalised, with GroupSort (MaxMin) activations: a provably 1-Lipschitz critic (Anil et al.; Stanczuk
  et al. section 7.1).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from wganlab.errors import ConfigError


class _ConstantSlope(torch.autograd.Function):
    """``y = relu(x)`` or ``leaky_relu(x, slope)`` whose backward ``g -> g * s(x)`` treats the slope ``s(x)``
    (1 where ``x > 0``, else ``slope``) as a constant: differentiable again in ``g`` only. The backward is
    torch's own (``threshold_backward`` on the output for ReLU, ``leaky_relu_backward`` on the input) on a
    detached copy, so autograd sees no path back into ``x``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        y = torch.nn.functional.leaky_relu(x, slope) if slope else torch.relu(x)
        ctx.save_for_backward((x if slope else y).detach())
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (z,) = ctx.saved_tensors
        if ctx.slope:
            return torch.ops.aten.leaky_relu_backward(g, z, ctx.slope, False), None
        return torch.ops.aten.threshold_backward(g, z, 0.0), None


class PiecewiseLinear(nn.Module):
    """ReLU (``slope = 0``) or LeakyReLU (``slope > 0``) whose backward holds the slope ``s(x) = 1 if x > 0
    else slope`` constant: the same values and first derivatives as ``nn.ReLU`` / ``nn.LeakyReLU``, and the
    same (zero) second derivative, but autograd no longer carries that zero back through the whole forward
    graph (a convolution's or linear layer's backward pass of zeros) when a gradient penalty differentiates
    the input gradient again (``create_graph=True``)."""

    def __init__(self, slope: float = 0.0):
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ConstantSlope.apply(x, self.slope)

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


class FCCritic(nn.Module):
    #: a WGAN critic step scores real and fake in one forward pass (one larger GEMM per layer is faster;
    #: for the CNN critics on CPU it is slower, measured with ``wganlab bench train-*``)
    joint_batches = True

    def __init__(self, in_shape: tuple[int, ...], hidden: int = 1024, depth: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), PiecewiseLinear(0.2)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    def one_hidden_layer(self) -> tuple[nn.Linear, float, nn.Linear] | None:
        """``(first linear layer, activation slope, output layer)`` when the critic is
        ``w2 . sigma(W1 x + b1) + b2`` (depth 1), else None: its input gradient has a closed form
        (:mod:`wganlab.objectives.wgan` uses it for the gradient penalty)."""
        layers = list(self.net)
        if len(layers) != 4:
            return None
        return layers[1], layers[2].slope, layers[3]


class CNNCritic(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], channels: tuple[int, ...] = (64, 64, 64),
                 kernel: int = 3, stride: int = 2, padding: int = 0, head: str = "gap"):
        super().__init__()
        if head not in ("gap", "fc"):
            raise ConfigError(f"unknown CNN critic head {head!r}; choose 'gap' or 'fc'")
        if len(in_shape) != 3:
            raise ConfigError(f"a CNN critic needs images (C, H, W), got points of shape {tuple(in_shape)}")
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, kernel, stride, padding), PiecewiseLinear(0.0)]
            c = out
            h, w = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
            if h < 1 or w < 1:
                raise ConfigError(f"images of {in_shape[1]}x{in_shape[2]} are too small for {len(channels)} "
                                  f"conv layers (kernel {kernel}, stride {stride}, padding {padding})")
        self.features = nn.Sequential(*layers)
        self.head = head
        self.feature_shape = (c, h, w)
        self.kernel, self.stride, self.padding, self.depth = kernel, stride, padding, len(channels)
        self.linear = nn.Linear(c if head == "gap" else c * h * w, 1, bias=False)
        # NHWC convolution weights: oneDNN then runs every convolution of the step channels-last (the same
        # function, rounded differently), 1.12-1.18x the WGAN-GP critic step on CPU at 64x64 and 28x28
        self.features.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        f = f.mean((2, 3)) if self.head == "gap" else f.flatten(1)
        return self.linear(f).squeeze(1)

    def input_gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``grad_x D(x_b)`` per sample, ``(B, C, H, W)``, differentiable in the parameters as
        ``autograd.grad(D(x).sum(), x, create_graph=True)`` with the ReLU slopes held constant (as
        :class:`PiecewiseLinear` does): a forward pass without a graph for the slopes ``S_l``, then
        ``delta_L = S_L * dhead``, ``delta_{l-1} = S_{l-1} * conv_l^T(delta_l)``, the transposed convolutions by
        :class:`_ConvInputGrad`, whose backward uses torch's native weight-gradient kernel (autograd's double
        backward of a convolution computes it as a convolution with batch and channels swapped: 1.2x the whole
        WGAN-GP critic step at 64x64)."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        shapes, pre = [], []
        with torch.no_grad():
            f = x
            for conv in convs:
                shapes.append(f.shape)
                pre.append(conv(f))
                f = pre[-1].clamp_min(0)
        c, h, w = self.feature_shape
        weight = self.linear.weight
        head = weight.view(1, c, 1, 1) / (h * w) if self.head == "gap" else weight.view(1, c, h, w)
        delta = _masked(head.expand(len(x), c, h, w), pre[-1])
        for conv, shape, z in zip(convs[::-1], shapes[::-1], [*pre[-2::-1], None], strict=True):
            delta = _ConvInputGrad.apply(delta, conv.weight, shape, conv.stride, conv.padding)
            if z is not None:
                delta = _masked(delta, z)
        return delta


def _masked(g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``g * S`` with ``S = 1 where z > 0 else 0`` (ReLU's slope at ``z``, held constant), in one pass without the
    mask (``threshold_backward``; differentiable in ``g``)."""
    return torch.ops.aten.threshold_backward(g, z, 0.0)


class _ConvInputGrad(torch.autograd.Function):
    """``conv^T(g)``: the gradient with respect to a convolution's input ``(shape)`` given the gradient ``g``
    of its output, differentiable in ``g`` (a convolution) and in the weight (the native weight-gradient kernel
    with the incoming gradient as input and ``g`` as output gradient, since ``<a, conv^T(g)> = <conv(a), g>``;
    given the weight itself, not only its shape, so that oneDNN keeps its channels-last layout instead of
    reordering ``g``: 7x faster for the first layer at 28x28)."""

    @staticmethod
    def forward(ctx, g, weight, shape, stride, padding):
        ctx.save_for_backward(g, weight)
        ctx.stride, ctx.padding = stride, padding
        return _transposed_conv(g, weight, shape, stride, padding)

    @staticmethod
    def backward(ctx, a):
        g, weight = ctx.saved_tensors
        dg = torch.nn.functional.conv2d(a, weight, None, ctx.stride, ctx.padding) if ctx.needs_input_grad[0] else None
        dw = (torch.ops.aten.convolution_backward(g, a, weight, None, ctx.stride, ctx.padding, (1, 1), False, (0, 0),
                                                  1, (False, True, False))[1]
              if ctx.needs_input_grad[1] else None)
        return dg, dw, None, None, None


#: largest ``C_in k^2`` (a first layer's few input channels) for which :func:`_transposed_conv` on CPU takes a GEMM
#: and a fold instead of oneDNN's transposed convolution: 1.5-2x faster at 1 and 3 channels, 1.5-3x slower at 64
FOLD_MAX_TAPS = 32


def _transposed_conv(g: torch.Tensor, weight: torch.Tensor, shape, stride, padding) -> torch.Tensor:
    """``conv^T(g) (shape)`` for ``g (B, C_out, H', W')`` and ``weight (C_out, C_in, k, k)``: where ``C_in k^2`` is
    at most :data:`FOLD_MAX_TAPS` on CPU (not measured on a GPU), the columns ``g^T W (B, C_in k^2, H' W')``
    summed into place by ``fold`` (col2im), else torch's own kernel."""
    c_out, c_in, k, _ = weight.shape
    if c_in * k * k > FOLD_MAX_TAPS or g.device.type != "cpu":
        return torch.nn.grad.conv2d_input(shape, weight, g, stride, padding)
    b, _, h, w = g.shape
    cols = g.permute(0, 2, 3, 1).reshape(b * h * w, c_out) @ weight.reshape(c_out, c_in * k * k)
    return torch.nn.functional.fold(cols.view(b, h * w, c_in * k * k).transpose(1, 2), tuple(shape[2:]), k,
                                    padding=padding, stride=stride)


def receptive_field(critic: nn.Module) -> int:
    """Side ``S`` of the input patch seen by one unit of a :class:`CNNCritic`'s last conv layer:
    ``S = 1 + sum_l (k - 1) * s^(l-1)`` (15 for three 3x3 convolutions of stride 2)."""
    if not isinstance(critic, CNNCritic):
        raise ConfigError(f"receptive_field needs a CNN critic, got {type(critic).__name__}")
    return 1 + sum((critic.kernel - 1) * critic.stride**i for i in range(critic.depth))


def patch_stride(critic: nn.Module) -> int:
    """Distance in pixels between the patches seen by neighbouring output units (``s^depth``)."""
    if not isinstance(critic, CNNCritic):
        raise ConfigError(f"patch_stride needs a CNN critic, got {type(critic).__name__}")
    return critic.stride**critic.depth


def bjorck(w: torch.Tensor, iters: int = 20, spectral: bool | None = None) -> torch.Tensor:
    """Closest (semi-)orthonormal matrix to ``w (out, in)``: scale by ``sqrt(||w||_1 ||w||_inf) >= ||w||_2``,
    then ``iters`` steps ``w <- w (1.5 I - 0.5 w^T w) = 1.5 w - 0.5 (w w^T) w`` (first-order Björck & Bowie),
    with the Gram matrix of the shorter side (``w`` transposed to ``(r, c)``, ``r <= c``), differentiable.

    Every step multiplies ``w_0`` on the left by a polynomial of ``H = w_0 w_0^T``, so ``w_k = f_k(H) w_0``
    with ``f_0 = 1``, ``f_{k+1}(t) = f_k(t) (1.5 - 0.5 t f_k(t)^2)``: ``spectral`` evaluates it as
    ``Q f_k(diag L) Q^T w_0`` from ``H = Q diag(L) Q^T`` (:class:`_SpectralBjorck`; the same matrix in exact
    arithmetic, one ``r x r`` eigendecomposition instead of ``2 r^2 c`` multiply-adds a step: forward and
    backward on CPU 1.2x faster at 64 x 64, 4.5x at 256 x 784); False runs the steps (as plain PyTorch would);
    None (the default) takes the eigendecomposition on CPU and the steps elsewhere (a GPU runs the small products
    fast, and its eigendecomposition of a small matrix waits for the device: not measured here)."""
    transpose = w.shape[0] > w.shape[1]
    if transpose:
        w = w.T
    scale = (w.abs().sum(0).max() * w.abs().sum(1).max()).sqrt().clamp_min(1e-12)
    w = w / scale
    if spectral is None:
        spectral = w.device.type == "cpu"
    if spectral and bool(torch.isfinite(w).all()):  # (a diverged weight takes the steps: NaN out, not eigh's error)
        w = _SpectralBjorck.apply(w, iters)
    else:
        for _ in range(iters):
            w = 1.5 * w - 0.5 * (w @ w.T) @ w
    return w.T if transpose else w


def bjorck_polynomial(t: torch.Tensor, iters: int, differences: bool = True):
    """``(f, D)``: ``f_iters`` of :func:`bjorck` at ascending ``t (r,)`` and (when ``differences``, else None)
    its divided differences ``D (r, r)``, ``D_ij = (f(t_i) - f(t_j)) / (t_i - t_j)`` (``f'(t_i)`` where
    ``t_i = t_j``), by the product rule ``[f g]_ij = f(t_i) [g]_ij + [f]_ij g(t_j)`` through the recursion: no
    cancellation between close ``t``. The rule is run with ``t_i <= t_j`` (the upper triangle) and mirrored:
    with ``t_i > t_j`` its rounding grows without bound (1e8 relative between ``t`` = 1e-9 and 1, against 1e-15
    the other way; mpmath)."""
    f = torch.ones_like(t)
    dd = torch.zeros(len(t), len(t), dtype=t.dtype, device=t.device) if differences else None
    for _ in range(iters):
        g = 1.5 - 0.5 * t * f * f
        if differences:
            dg = -0.5 * (t[:, None] * dd * (f[:, None] + f) + f * f)  # [t f^2] = t_i [f^2]_ij + f_j^2
            dd = f[:, None] * dg + dd * g
        f = f * g
    return f, (torch.triu(dd) + torch.triu(dd, 1).T if differences else None)


class _SpectralBjorck(torch.autograd.Function):
    """``W = F w_0`` with ``F = Q f(diag L) Q^T``, ``w_0 w_0^T = Q diag(L) Q^T``, for ``w_0 (r, c)``, ``r <= c``,
    all in float64 (``F`` has entries up to ``1.5^iters`` where ``w_0`` is nearly singular); the result in
    ``w_0``'s dtype. Backward (Daleckii-Krein): ``dF = Q (D o (Q^T dH Q)) Q^T`` with ``D`` the divided
    differences of ``f`` (made in the backward only), so ``grad w_0 = F G + Q (D o (Q^T (A + A^T) Q)) Q^T w_0``,
    ``A = G w_0^T``. Differentiable once."""

    @staticmethod
    def forward(ctx, w0: torch.Tensor, iters: int) -> torch.Tensor:
        w64 = w0.double()
        lam, q = torch.linalg.eigh(w64 @ w64.T)
        F = (q * bjorck_polynomial(lam, iters, differences=False)[0]) @ q.T
        ctx.save_for_backward(w64, lam, q, F)
        ctx.iters = iters
        return (F @ w64).to(w0.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        w64, lam, q, F = ctx.saved_tensors
        dd = bjorck_polynomial(lam, ctx.iters)[1]
        g64 = grad.double()
        a = g64 @ w64.T
        b = q @ (dd * (q.T @ (a + a.T) @ q)) @ q.T
        return (F @ g64 + b @ w64).to(grad.dtype), None


class GroupSort(nn.Module):
    """Sort each group of ``group`` consecutive features (MaxMin for ``group=2``): 1-Lipschitz and
    gradient-norm preserving."""

    def __init__(self, group: int = 2):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d = x.shape
        return x.reshape(b, d // self.group, self.group).sort(-1, descending=True).values.reshape(b, d)


class BjorckWeight(nn.Module):
    """The parametrization ``weight = bjorck(raw weight)`` (``spectral``: see :func:`bjorck`)."""

    def __init__(self, iters: int, spectral: bool | None = None):
        super().__init__()
        self.iters, self.spectral = iters, spectral

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return bjorck(w, self.iters, self.spectral)


def lipschitz_linear(n_in: int, n_out: int, method: str = "bjorck", bjorck_iters: int = 20) -> nn.Linear:
    """A linear layer whose weight is orthonormalised (``"bjorck"``) or divided by its spectral norm
    (``"spectral"``) whenever it is read: ``torch.nn.utils.parametrize`` parametrizations, so inside
    ``parametrize.cached()`` (one training step) the weight is computed once for every forward pass."""
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight)
    if method == "spectral":
        return nn.utils.parametrizations.spectral_norm(lin)
    return parametrize.register_parametrization(lin, "weight", BjorckWeight(bjorck_iters))


class GroupSortCritic(nn.Module):
    joint_batches = True  # as FCCritic

    def __init__(self, in_shape: tuple[int, ...], hidden: int = 256, depth: int = 3, method: str = "bjorck",
                 group: int = 2, bjorck_iters: int = 20):
        super().__init__()
        if method not in ("bjorck", "spectral"):
            raise ConfigError(f"unknown Lipschitz method {method!r}; choose 'bjorck' or 'spectral'")
        if hidden % group:
            raise ConfigError(f"hidden width {hidden} must be a multiple of the GroupSort group {group}")
        width = math.prod(in_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth + 1):
            out = hidden if i < depth else 1
            layers.append(lipschitz_linear(width, out, method, bjorck_iters))
            if i < depth:
                layers.append(GroupSort(group))
            width = out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def build_critic(kind: str, in_shape: tuple[int, ...], *, hidden: int = 1024, depth: int = 1,
                 channels: tuple[int, ...] = (64, 64, 64), kernel: int = 3, stride: int = 2,
                 padding: int = 0, lipschitz: str = "bjorck") -> nn.Module:
    """A critic by name: ``"fc"``, ``"cnn-gap"``, ``"cnn-fc"`` or ``"groupsort"``."""
    if kind == "fc":
        return FCCritic(in_shape, hidden, depth)
    if kind in ("cnn-gap", "cnn-fc"):
        return CNNCritic(in_shape, tuple(channels), kernel, stride, padding, head=kind[4:])
    if kind == "groupsort":
        return GroupSortCritic(in_shape, hidden, depth, lipschitz)
    raise ConfigError(f"unknown critic {kind!r}; choose one of fc, cnn-gap, cnn-fc, groupsort")
