"""Score networks: CP (shallow), TT (recurrent) and TT with one shared core.

Every network reads a feature sequence ``Φ`` of shape ``(B, d, n)`` (row ``t``
is ``f_θ(x_t)``, see :mod:`tensorrnn.features`) and scores class ``y`` by

    h_y(X) = Σ_{i_1..i_d} A^y[i_1, …, i_d] Φ[t=1, i_1] ⋯ Φ[t=d, i_d]

with the coefficient tensor ``A^y`` in one of three formats (DESIGN.md):

* :class:`CPNet`  — ``A^y = Σ_k λ[k, y] a_k^(1) ⊗ ⋯ ⊗ a_k^(d)``: a shallow
  network, one hidden layer of ``R`` product units.
* :class:`TTNet`  — ``A^y = G_1[i_1] G_2[i_2] ⋯ G_d[i_d, y]``: an RNN whose
  step ``t`` multiplies the hidden state by ``M_t = Σ_i Φ[t, i] G_t[:, i, :]``.
* ``TTNet(shared=True)`` — the same RNN with **one** middle core ``G`` used at
  positions ``2 … d−1`` (one ``nn.Parameter``, so its gradient sums every position).

Two outputs
-----------
``net.scores(Φ)`` is the exact ``h_y``; it overflows or underflows for long
chains and is meant for analysis (in float64). ``net(Φ)`` gives *logits* that
stay finite for any ``d``: the hidden state is divided by its norm after every
step and the log of that norm is carried aside, so

    h_y = logits_y · exp(log_scale)        (``net.normalized_scores(Φ)``)

For TT the logits are ``logits_y = ĥᵀ L_y`` with ``ĥ = h_{d−1} / ‖h_{d−1}‖`` the
unit hidden state after ``d − 1`` positions and ``L_y = Σ_i Φ[d, i] G_d[:, i, y]``
the last core; for CP ``ĥ`` is the unit vector of the ``R`` product units
``p_k = Π_t ⟨a_k^(t), Φ_t⟩``, formed in log space, and ``logits_y = ĥᵀ λ[:, y]``.
The predicted class does not change: every class shares the chain up to the
last core, so all ``h_y`` of one sample are divided by the same positive
number ``‖h_{d−1}‖`` (``‖p‖`` for CP). The logits are bounded by the norm
of the last core (or ``λ``), which therefore acts as a learned temperature.

A zero state (ReLU features of a blank patch without a constant feature) would
make ``h / ‖h‖`` NaN and its gradient NaN; the norm is taken as
``sqrt(‖h‖² + eps²)`` with ``eps = 10 × machine epsilon`` of the dtype by
default (about 1e-6 in float32, 2e-15 in float64): that changes nothing
measurable for states of norm ≫ eps and keeps a zero state zero, with finite
gradients (still large ones, ~1/eps, for the features that produced it: the
constant feature is the real cure).

Three contraction schedules (all exact, ``schedule=`` argument)
---------------------------------------------------------------
``sequential``: left to right, one step per position: the state ``(B, r)`` times
the core ``(r, n·r)`` (one GEMM), then the ``n`` slices weighted by ``Φ[:, t]``
(``2·B·n·r²`` flops a step). For the logits it runs as one autograd Function
with a hand-written backward (``_SequentialChain``); the exact scores use the
plain loop. ``parallel``: form every ``M_t`` at once ``(d−2, B, r, r)``, then
multiply neighbours pairwise in a tree of depth ``⌈log2(d−2)⌉``, normalising
every product. It does ``(n + r)/n`` times the flops of ``sequential`` and
moves ``(d−2)·B·r²`` numbers through memory, but has only ``log2 d``
dependent steps: the schedule for GPUs and very long sequences.
``chunked`` (TT; CP treats it as ``parallel``): the tree inside chunks of ``k``
consecutive positions, sequential across chunks: ``h ← h · (M_s ⋯ M_{s+k−1})``.
Each chunk is recomputed in backward instead of kept (activation checkpointing),
so training holds one chunk's ``k·B·r²`` numbers plus a ``(B, r)`` state per
chunk instead of the tree's ``(d−2)·B·r²``, in about ``d/k · log2 k`` dependent
steps. ``k`` is ``TTNet(chunk=…)``, or chosen by :func:`chunk_size` from the
device and its free memory.

``auto`` (the default) picks by measurement: ``parallel`` for features on a CUDA
device where the tree fits half the free memory (:func:`chunk_size` says ``d − 2``),
``sequential`` elsewhere. On CPU cores the sequential loop does ``n/(n + r)`` of
the work and wins (BENCHMARKS.md). On an H200 (``benchmarks/bench_gpu_schedules.py``,
B = 512) the eager sequential loop is launch-bound (25 ms at d = 49, 100 ms at
d = 196, 300–430 ms at d = 784), and training replays it as one CUDA graph
(:class:`tensorrnn.train.GraphedStep`: 2.1–2.3, 10.7–11 and 42–48 ms; the same
numbers as eager, checked). The tree is faster still at r = 32 (1.4–3.5× the
graphed loop at d = 196 and 784) but at d = 784, r = 100 it takes 45 GiB and is
6–7× slower than the graphed loop, so there pass ``schedule="sequential"``.
``chunked`` bounds the tree's memory but measured 0.87–1.02× the eager loop at
d = 784, r = 100 (k = 16 and 64): ``auto`` never picks it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from tensorrnn.errors import ConfigError
from tensorrnn.features import FeatureMap, extract_patches
from tensorrnn.formats import CPTensor, TensorFormat, TTSharedTensor, TTTensor

"""Network names; the ``relu-*`` ones are generalized networks (:mod:`tensorrnn.generalized`)."""
SCHEDULES = ("sequential", "parallel")
"""The two whole-chain schedules; ``chunked`` mixes them (see the module docstring)."""
SCHEDULE_CHOICES = ("sequential", "parallel", "auto", "chunked")
"""What ``schedule=`` accepts: a schedule, or ``auto`` to pick one by device."""
TREE_COPIES = 3
"""Peak memory of the tree over ``m`` positions, in units of its ``m·B·r²`` step
matrices: 4.67 GiB for 1.64 GB of them at d = 784, r = 32 and 44.9 GiB for 16.0 GB
at r = 100 (H200, BENCHMARKS.md), i.e. 2.8–2.9 copies, rounded up."""
CPU_CHUNK_BYTES = 64 * 2**20
"""Working set of one chunk on a CPU (:func:`chunk_size`): a few L3 caches' worth."""
INITS = ("orthogonal", "identity", "gaussian")


def _normalize(
    x: torch.Tensor, log_scale: torch.Tensor, eps: float, dims: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide ``x`` by its eps-guarded norm over ``dims``; add the log-norms to ``log_scale``.

    ``dims`` are the trailing dimensions, ``(-1,)`` or ``(-2, -1)``; before them
    comes the batch and possibly leading dimensions (several matrices per
    sample), whose log-norms are summed.
    """
    unit, log_norm = _UnitScale.apply(x, len(dims), eps)
    return unit, log_scale + log_norm.reshape(-1, x.shape[-1 - len(dims)]).sum(dim=0)


class _UnitScale(torch.autograd.Function):
    """``x ↦ (x / c, log c)``, ``c = sqrt(‖x‖² + eps²)`` over the last ``k`` dims.

    Autograd of the same formula keeps ~8 full-size temporaries (square, div,
    pow backward…); this backward needs two: with ``u = x / c`` the gradient is
    ``(g_u − u (u·g_u − g_log)) / c``. That matters for the parallel schedule,
    which normalises ``(d−2, B, r, r)`` tensors.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, k: int, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dims = tuple(range(-k, 0))
        c = torch.sqrt(torch.linalg.vector_norm(x, dim=dims, keepdim=True).square() + eps * eps)
        unit = x / c
        ctx.save_for_backward(unit, c)
        ctx.dims = dims
        return unit, c.log()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, g_unit: torch.Tensor, g_log: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        unit, c = ctx.saved_tensors
        radial = (unit * g_unit).sum(dim=ctx.dims, keepdim=True) - g_log
        return (g_unit - unit * radial) / c, None, None


class ScoreNetwork(nn.Module):
    """Common interface of :class:`CPNet` and :class:`TTNet`.

    Subclasses implement ``_contract(phi, schedule, normalize)`` returning
    ``(out, log_scale)``: with ``normalize=True`` the logits and ``log ‖h_{d-1}‖``,
    with ``normalize=False`` the exact scores and zeros.
    """

    d: int
    n: int
    n_classes: int

    def __init__(self, d: int, n: int, n_classes: int, schedule: str, eps: float | None) -> None:
        super().__init__()
        for name, value in (("d", d), ("n", n), ("n_classes", n_classes)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        self.d, self.n, self.n_classes = d, n, n_classes
        self.schedule = _check_schedule(schedule)
        self.eps = None if eps is None else float(eps)

    def forward(self, phi: torch.Tensor, schedule: str | None = None) -> torch.Tensor:
        """Logits ``(B, C)``: ``h_y`` divided by the per-sample positive ``‖h_{d-1}‖``."""
        return self.normalized_scores(phi, schedule)[0]

    def normalized_scores(
        self, phi: torch.Tensor, schedule: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, log_scale)`` with ``h_y = logits_y · exp(log_scale)``; both finite."""
        return self._contract(self._check_input(phi), self._schedule(schedule, phi), True)

    def scores(self, phi: torch.Tensor, schedule: str | None = None) -> torch.Tensor:
        """The exact scores ``h_y(X)``, ``(B, C)``; may overflow for long chains."""
        return self._contract(self._check_input(phi), self._schedule(schedule, phi), False)[0]

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())

    def coefficient_tensor(self, y: int) -> TensorFormat:  # pragma: no cover - abstract
        """``A^y`` as a :mod:`tensorrnn.formats` object (detached, float64)."""
        raise NotImplementedError

    def _contract(
        self, phi: torch.Tensor, schedule: str, normalize: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _eps(self, phi: torch.Tensor) -> float:
        return 10 * torch.finfo(phi.dtype).eps if self.eps is None else self.eps

    def _schedule(self, schedule: str | None, phi: torch.Tensor) -> str:
        return resolve_schedule(self.schedule if schedule is None else _check_schedule(schedule), phi.device)

    def schedule_for(self, phi: torch.Tensor) -> str:
        """The schedule a forward of ``phi`` runs under this network's default ``schedule``."""
        return self._schedule(None, phi)

    def _check_input(self, phi: torch.Tensor) -> torch.Tensor:
        if phi.ndim != 3 or phi.shape[1] != self.d or phi.shape[2] != self.n:
            raise ConfigError(
                f"{type(self).__name__} expects features of shape (B, d={self.d}, n={self.n}), "
                f"got {tuple(phi.shape)}"
            )
        return phi

    def _check_class(self, y: int) -> int:
        if not 0 <= y < self.n_classes:
            raise ConfigError(f"class index {y} outside 0..{self.n_classes - 1}")
        return int(y)


# --------------------------------------------------------------------------- #
# TT: the recurrent network
# --------------------------------------------------------------------------- #


class TTNet(ScoreNetwork):
    """Recurrent score network: ``A^y`` is a tensor train (``shared=True``: one middle core).

    Parameters
    ----------
    d, n
        Sequence length and feature size (``d >= 2``).
    rank
        Bond dimension ``r`` (width of the hidden state).
    n_classes
        Number of classes ``C``; the last core carries the class index.
    shared
        Use one middle core at positions ``2 … d−1``. Parameters:
        ``n·r + n·r² + n·r·C`` whatever ``d`` is (the middle core is counted even
        when ``d = 2`` leaves it unused), against ``n·r + (d−2)·n·r² + n·r·C``.
    init
        ``"gaussian"``: middle entries ``N(0, 1/(r·n))``, so that
        ``‖h M_t‖ ≈ ‖h‖ ‖Φ_t‖ / √n`` keeps the chain's scale when features have
        unit root-mean-square. ``"identity"``: every slice
        ``G[:, i, :] = (I + init_noise · N(0, 1/r)) / n``, so
        ``M_t ≈ mean(Φ_t) · I`` plus noise of relative size about
        ``2 · init_noise · ‖Φ_t‖ / Σ_i Φ_t[i]``: the state is carried through
        long chains at the start (meant for nonnegative features such as
        affine-relu or cos-sin). ``"orthogonal"`` (the default of training runs):
        the same with a random orthogonal ``Q`` (Haar; one per middle core) in
        place of ``I``, ``G[:, i, :] = (Q + init_noise · N(0, 1/r)) / n``.
        Why: with ``I`` every step is ``M_t ≈ mean(Φ_t)·(I + E_t)``, so to first
        order the state after the chain is ``h_1 (I + Σ_t E_t)`` — for a shared
        core a *bag of patches*, blind to where a patch sits, and the sequence
        order can only enter through products of the small ``E_t``. With ``Q`` the
        first-order term is ``Σ_t h_1 Q^(t−1) E_t Q^(d−1−t)``: every position
        turns the state by its own phase (a clock, as in rotary position
        embeddings) while norms are kept. Measured (benchmarks/LONG_CHAINS.md):
        Fashion-MNIST, 4×4 patches (d = 49), tt-shared r 16, n 8, 10,000 images,
        3 epochs: 60 % test with ``I``, 74 % with ``Q``. First and last cores are
        ``N(0, 1/n)`` in every init.
    init_noise
        Noise level of ``init="identity"`` and ``init="orthogonal"``.
    schedule
        Default contraction schedule: ``"sequential"``, ``"parallel"``, ``"chunked"``
        or ``"auto"`` (on CUDA the tree, sequential where it does not fit; sequential
        elsewhere; see the module docstring).
    chunk
        Positions per chunk of the ``chunked`` schedule; ``None``: :func:`chunk_size`
        picks it per call from the device, the batch and free memory.
    eps
        Guard of the state normalisation ``sqrt(‖h‖² + eps²)``; ``None``: ten
        times the machine epsilon of the features' dtype.
    generator
        Random generator for the initialisation (a seed fixes the network).
    compile_chain
        Run the normalised sequential chain through its fused C++ loops (see
        ``_SequentialChain``; built once per machine, about a minute): faster
        steps on a CPU (BENCHMARKS.md). Falls back to the plain loops where the
        kernel cannot be built, and on other devices.
    """

    def __init__(
        self,
        d: int,
        n: int,
        rank: int,
        n_classes: int,
        shared: bool = False,
        *,
        init: str = "gaussian",
        init_noise: float = 0.1,
        schedule: str = "auto",
        eps: float | None = None,
        generator: torch.Generator | None = None,
        compile_chain: bool = False,
        chunk: int | None = None,
    ) -> None:
        super().__init__(d, n, n_classes, schedule, eps)
        self.compile_chain = bool(compile_chain)
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise ConfigError(f"chunk={chunk!r} must be a positive integer (positions per chunk) or None")
        self.chunk = chunk
        if d < 2:
            raise ConfigError(f"a TT network needs d >= 2 positions (a first and a last core), got d={d}")
        if not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"rank={rank!r} must be a positive integer")
        self.rank, self.shared = rank, bool(shared)
        r = rank
        # G_1 is (1, n, r) and G_d is (r, n, 1) per class; their unit bonds are
        # dropped here: first (n, r), last (r, n, C).
        self.first = nn.Parameter(torch.empty(n, r))
        self.middle = nn.Parameter(torch.empty(1 if shared else d - 2, r, n, r))
        self.last = nn.Parameter(torch.empty(r, n, n_classes))
        self.reset_parameters(init, init_noise, generator)

    @torch.no_grad()
    def reset_parameters(
        self,
        init: str = "gaussian",
        init_noise: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        """Draw the cores again (see the class docstring for ``init``)."""
        n = self.n
        self.first.copy_(randn_like_cpu(self.first, generator) / math.sqrt(n))
        self.last.copy_(randn_like_cpu(self.last, generator) / math.sqrt(n))
        noise = randn_like_cpu(self.middle, generator)
        self.middle.copy_(chain_start(init, noise, slice_axis=2, fan=n, init_noise=init_noise,
                                      generator=generator))  # fmt: skip

    def core(self, t: int) -> torch.Tensor:
        """Middle core ``(r, n, r)`` used at 0-based position ``t`` in ``1 … d−2``."""
        return self.middle[0] if self.shared else self.middle[t - 1]

    def coefficient_tensor(self, y: int) -> TensorFormat:
        """``A^y`` as a ``TTTensor`` (``TTSharedTensor`` when shared), detached float64."""
        y = self._check_class(y)
        first = self.first.detach().double().unsqueeze(0)
        last = self.last.detach().double()[:, :, y : y + 1]
        if self.shared:
            return TTSharedTensor(first, self.middle.detach().double()[0].clone(), last, self.d)
        middle = list(self.middle.detach().double().clone())
        return TTTensor([first, *middle, last])

    def _schedule(self, schedule: str | None, phi: torch.Tensor) -> str:
        wanted = self.schedule if schedule is None else _check_schedule(schedule)
        resolved = resolve_schedule(wanted, phi.device)
        if wanted == "auto" and resolved == "parallel" and self.d > 2:
            if self.chunk is not None:
                return "chunked"
            # The whole tree where it fits; else the sequential loop, which training replays as
            # one CUDA graph (chunks of the tree measured no faster than the loop: module docstring).
            return "parallel" if self._chunk_size(phi) >= self.d - 2 else "sequential"
        return resolved

    def _chunk_size(self, phi: torch.Tensor) -> int:
        if self.chunk is not None:
            return self.chunk
        return chunk_size(self.d, phi.shape[0], self.rank, phi.device, phi.dtype)

    def _contract(
        self, phi: torch.Tensor, schedule: str, normalize: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, d, n, r = phi.shape[0], self.d, self.n, self.rank
        eps = self._eps(phi)
        log_scale = phi.new_zeros(b)
        # One split, not three slices: the backward of a slice fills a zero tensor of
        # phi's full size, per slice; that of a split is one concatenation.
        phi_first, phi_middle, phi_last = phi.split([1, d - 2, 1], dim=1)
        h = phi_first[:, 0] @ self.first  # (B, r)
        if normalize:
            h, log_scale = _normalize(h, log_scale, eps, (-1,))

        if schedule == "sequential" and normalize and d > 2:
            # The same loop as below, with a hand-written backward (see _SequentialChain).
            h, chain_log_scale = _SequentialChain.apply(h, phi_middle, self.middle, eps, self.compile_chain)
            log_scale = log_scale + chain_log_scale
        elif schedule == "sequential":
            for t in range(1, d - 1):
                # Core first: (B, r) @ (r, n·r) is one GEMM; the features then
                # only weight its n slices, a cheap (B, n, r) reduction.
                mixed = (h @ self.core(t).reshape(r, n * r)).view(b, n, r)
                h = torch.bmm(phi[:, t].unsqueeze(1), mixed).squeeze(1)
        elif schedule == "chunked" and d > 2:
            k = self._chunk_size(phi)
            # split, not slices: one concatenation in backward instead of a zero-filled
            # tensor of the full size per slice.
            phis = phi_middle.split(k, dim=1)
            cores = [self.middle] * len(phis) if self.shared else self.middle.split(k)
            checkpointed = torch.is_grad_enabled() and (
                h.requires_grad or phi_middle.requires_grad or self.middle.requires_grad
            )
            for phi_chunk, core_chunk in zip(phis, cores, strict=True):
                args = (h, phi_chunk, core_chunk, self.shared, normalize, eps)
                if checkpointed:
                    # Keep only the chunk's inputs; recompute its tree in backward.
                    h, chunk_log = checkpoint(
                        _tree_chunk, *args, use_reentrant=False, preserve_rng_state=False
                    )
                else:
                    h, chunk_log = _tree_chunk(*args)
                log_scale = log_scale + chunk_log
        elif d > 2:
            h, chain_log_scale = _tree_chunk(h, phi_middle, self.middle, self.shared, normalize, eps)
            log_scale = log_scale + chain_log_scale

        # The last core carries the class: (B, r) @ (r, n·C), weighted by Φ[:, d].
        out = (h @ self.last.reshape(r, n * self.n_classes)).view(b, n, self.n_classes)
        out = torch.bmm(phi_last, out).squeeze(1)
        return out, log_scale

    def _step_matrices(self, phi_mid: torch.Tensor) -> torch.Tensor:
        """``M_t = Σ_i Φ[:, t, i] G_t[:, i, :]`` for the middle positions, ``(d−2, B, r, r)``."""
        return _step_matrices(phi_mid, self.middle, self.shared)


def _step_matrices(phi_mid: torch.Tensor, middle: torch.Tensor, shared: bool) -> torch.Tensor:
    """``M_t`` ``(m, B, r, r)`` from features ``(B, m, n)`` and cores ``(m or 1, r, n, r)``."""
    b, m, n = phi_mid.shape
    r = middle.shape[-1]
    cores = middle.permute(0, 2, 1, 3).reshape(-1, n, r * r)  # (·, n, r·r)
    if shared:
        mats = phi_mid.transpose(0, 1).reshape(m * b, n) @ cores[0]
    else:
        mats = torch.bmm(phi_mid.transpose(0, 1), cores)
    return mats.reshape(m, b, r, r)


def _tree_chunk(
    h: torch.Tensor, phi_mid: torch.Tensor, middle: torch.Tensor, shared: bool, normalize: bool, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``h · M_1 ⋯ M_m`` by a tree of pairwise products: the new state and its log-norms.

    ``h`` ``(B, r)``, ``phi_mid`` ``(B, m, n)``, ``middle`` ``(m or 1, r, n, r)``. With
    ``normalize`` every product and the new state are divided by their norms, whose
    logs are returned summed per sample; without, the log-norms are zeros.
    """
    log_scale = h.new_zeros(h.shape[0])
    # The M_t themselves are not normalised: one M_t cannot overflow, and
    # skipping it saves passes over the largest tensor. Every product is.
    mats = _step_matrices(phi_mid, middle, shared)  # (m, B, r, r)
    while mats.shape[0] > 1:
        # Pair neighbours (0·1)(2·3)…; an odd one out waits for the next
        # level. split/unbind rather than strided slices: the backward of a
        # slice zero-fills a tensor of the full size, per slice.
        m = mats.shape[0]
        even, odd_one = mats.split([m - m % 2, m % 2])
        left, right = even.view(m // 2, 2, *even.shape[1:]).unbind(1)
        pairs = torch.matmul(left, right)
        if normalize:
            pairs, log_scale = _normalize(pairs, log_scale, eps, (-2, -1))
        mats = torch.cat([pairs, odd_one]) if m % 2 else pairs
    h = torch.bmm(h.unsqueeze(1), mats[0]).squeeze(1)
    if normalize:
        h, log_scale = _normalize(h, log_scale, eps, (-1,))
    return h, log_scale


def _chain_forward(
    h: torch.Tensor, phi_steps: torch.Tensor, cores: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised steps over ``phi_steps`` ``(k, B, n)``: unit states ``(k, B, r)``, norms ``(k, B)``."""
    b, r = h.shape
    n = phi_steps.shape[2]
    states, norms = [], []
    for t in range(phi_steps.shape[0]):
        core = cores[t if cores.shape[0] > 1 else 0].reshape(r, n * r)
        mixed = torch.mm(h, core).view(b, n, r)
        u = torch.bmm(phi_steps[t].unsqueeze(1), mixed).squeeze(1)
        c = torch.sqrt(u.square().sum(dim=1) + eps * eps)
        h = u / c.unsqueeze(1)
        states.append(h)
        norms.append(c)
    return torch.stack(states), torch.stack(norms)


def _chain_backward(
    states: torch.Tensor,
    norms: torch.Tensor,
    phi_steps: torch.Tensor,
    cores: torch.Tensor,
    g: torch.Tensor,
    g_log: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward through ``k`` steps: ``states`` ``(k+1, B, r)`` holds the state before them first.

    Returns the gradient for that first state, for ``phi_steps`` and for ``cores``
    (``(k or 1, r, n·r)``).
    """
    k, b, n = phi_steps.shape
    r = states.shape[2]
    shared = cores.shape[0] == 1
    grad_phi = []  # last step first
    grad_cores = [g.new_zeros(r, n * r) for _ in range(1 if shared else k)]
    for t in reversed(range(k)):
        unit, c = states[t + 1], norms[t].unsqueeze(1)
        # h = u / c and log c with c = sqrt(‖u‖² + eps²): their Jacobians
        # are (I − h hᵀ) / c and hᵀ / c.
        radial = (unit * g).sum(dim=1, keepdim=True) - g_log.unsqueeze(1)
        gu = (g - unit * radial) / c
        prev, f = states[t], phi_steps[t]
        # ∂G_t[a, i, s] = Σ_b h[b, a] Φ[b, i] gu[b, s]: the outer product
        # Φ ⊗ gu, then a GEMM (r, B)(B, n·r): this orientation measured faster
        # than (r·n, B)(B, r) with h ⊗ Φ (benchmarks/BENCH_NETWORKS.md).
        outer = (f.unsqueeze(2) * gu.unsqueeze(1)).view(b, n * r)
        slot = 0 if shared else t
        grad_cores[slot] = torch.addmm(grad_cores[slot], prev.t(), outer)
        # v[b, a, i] = Σ_s G[a, i, s] gu[b, s]: one GEMM (B, r)(r, r·n).
        core = cores[slot].reshape(r * n, r)
        v = torch.mm(gu, core.t()).view(b, r, n)
        grad_phi.append(torch.bmm(prev.unsqueeze(1), v).squeeze(1))
        # Σ_i Φ[b, i] v[b, a, i] as (1, n)(n, r) per sample: this batched shape
        # measured faster than the equivalent (r, n)(n, 1) (BENCH_NETWORKS.md).
        g = torch.bmm(f.unsqueeze(1), v.transpose(1, 2)).squeeze(1)
    return g, torch.stack(grad_phi[::-1]), torch.stack(grad_cores)


class _SequentialChain(torch.autograd.Function):
    """The normalised sequential schedule over the middle cores, with its own backward.

    Forward, for ``t = 1 … m``: ``u = Σ_i Φ_t[i] (h G_t)[i]`` (one GEMM
    ``(B, r)(r, n·r)``, then a batched ``(1, n)(n, r)`` product), ``c_t =
    sqrt(‖u‖² + eps²)``, ``h = u / c_t``. Returns the last unit state and
    ``Σ_t log c_t``.

    Why not plain autograd: it runs ~15 small kernels per step each way and
    keeps every ``(B, n, r)`` intermediate. Here a step costs one GEMM and one
    thin batched product forward, two GEMMs and two thin products backward, and
    only the ``(B, r)`` states are kept. The ``(B, r·n)`` outer product that the
    core gradient needs is formed and consumed within one step, so it stays in
    cache (forming all steps' at once was slower: it streams through memory).

    ``fused``: run both loops in C++ (:mod:`tensorrnn.chain_kernel`, CPU
    tensors in float32 or float64): the same GEMMs, with each step's
    elementwise work in hand-fused passes and no Python between steps. The
    plain loops spend more time on those passes and on dispatch than on their
    GEMMs (benchmarks/BENCH_NETWORKS.md). Results agree to rounding, not
    bitwise; where the kernel cannot be built, the plain loops run.

    Inputs: ``h`` ``(B, r)`` unit state after position 1, ``phi`` ``(B, m, n)``
    the middle features, ``cores`` ``(m, r, n, r)`` or ``(1, r, n, r)`` (shared).
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        h: torch.Tensor,
        phi: torch.Tensor,
        cores: torch.Tensor,
        eps: float,
        fused: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        flat_cores = cores.reshape(cores.shape[0], cores.shape[1], -1)  # (·, r, n·r)
        ctx.kernel = _fused_kernel(h) if fused else None
        if ctx.kernel is not None:
            # Reads the (B, m, n) slice in place (no copy) when each feature vector is contiguous.
            phi = phi if phi.stride(2) == 1 else phi.contiguous()
            all_states, norms = ctx.kernel.chain_forward(h, phi, flat_cores, eps)
        else:
            phi = phi.transpose(0, 1).contiguous()  # (m, B, n): contiguous per step
            states, norms = _chain_forward(h, phi, flat_cores, eps)  # (m, B, r), (m, B)
            all_states = torch.cat([h.unsqueeze(0), states])
        ctx.save_for_backward(all_states, norms, phi, flat_cores)
        ctx.cores_shape = cores.shape
        return all_states[-1].clone(), norms.log().sum(dim=0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx,
        grad_h: torch.Tensor | None,
        grad_log_scale: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None]:
        states, norms, phi, flat_cores = ctx.saved_tensors
        m, b = norms.shape
        g = grad_h if grad_h is not None else torch.zeros_like(states[m])
        g_log = grad_log_scale if grad_log_scale is not None else states.new_zeros(b)
        if ctx.kernel is not None:
            g, grad_phi, grad_cores = ctx.kernel.chain_backward(states, norms, phi, flat_cores, g, g_log)
        else:
            g, grad_phi, grad_cores = _chain_backward(states, norms, phi, flat_cores, g, g_log)
            grad_phi = grad_phi.transpose(0, 1)
        return g, grad_phi, grad_cores.view(ctx.cores_shape), None, None


def _fused_kernel(h: torch.Tensor):
    """The C++ chain for these tensors, or ``None`` (CUDA, other dtypes, no compiler)."""
    if h.device.type != "cpu" or h.dtype not in (torch.float32, torch.float64):
        return None
    from tensorrnn import chain_kernel

    return chain_kernel.load()


# --------------------------------------------------------------------------- #
# CP: the shallow network
# --------------------------------------------------------------------------- #


class CPNet(ScoreNetwork):
    """Shallow score network: ``A^y = Σ_k λ[k, y] a_k^(1) ⊗ ⋯ ⊗ a_k^(d)``.

    The hidden layer has ``R`` product units ``p_k = Π_t ⟨a_k^(t), Φ_t⟩``; the
    scores are ``h = λᵀ p``. Parameters: ``d·n·R + R·C``.

    Parameters
    ----------
    d, n
        Sequence length and feature size.
    rank
        CP rank ``R``.
    n_classes
        Number of classes ``C``.
    init
        ``"gaussian"``: ``a_k^(t) ~ N(0, I/n)``. ``"identity"``: ``a_k^(t) =
        (1 + init_noise · N(0, I)) / n``, so ``⟨a_k^(t), Φ_t⟩ ≈ mean(Φ_t)`` and no
        unit dominates a long product at the start (a CP tensor is a TT with
        diagonal cores; this is their identity). ``"orthogonal"`` is the same as
        ``"identity"`` here: a shallow network has no hidden state to turn, so one
        init name serves all three families in a sweep. ``λ ~ N(0, 1)`` in all.
    init_noise, schedule, eps, generator
        As for :class:`TTNet`. The logits are computed in log space,
        ``p_k = sign_k · exp(Σ_t log|⟨a_k^(t), Φ_t⟩|)``, normalised by
        ``‖p‖ = exp(½ logsumexp(2 S))``; ``sequential`` accumulates the sum
        position by position, ``parallel`` reduces all positions at once (the
        order of summation is the only difference; CP has no chain to schedule).
        ``eps`` floors ``|⟨a_k^(t), Φ_t⟩|`` inside the log.
    """

    def __init__(
        self,
        d: int,
        n: int,
        rank: int,
        n_classes: int,
        *,
        init: str = "gaussian",
        init_noise: float = 0.1,
        schedule: str = "auto",
        eps: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(d, n, n_classes, schedule, eps)
        if not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"rank={rank!r} must be a positive integer")
        self.rank = rank
        self.factors = nn.Parameter(torch.empty(d, n, rank))  # a_k^(t) = factors[t, :, k]
        self.weights = nn.Parameter(torch.empty(rank, n_classes))  # λ
        self.reset_parameters(init, init_noise, generator)

    @torch.no_grad()
    def reset_parameters(
        self,
        init: str = "gaussian",
        init_noise: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        """Draw the factors and weights again (see the class docstring for ``init``)."""
        noise = randn_like_cpu(self.factors, generator)
        if check_init(init) == "gaussian":
            self.factors.copy_(noise / math.sqrt(self.n))
        else:
            self.factors.copy_((1 + init_noise * noise) / self.n)
        self.weights.copy_(randn_like_cpu(self.weights, generator))

    def coefficient_tensor(self, y: int) -> TensorFormat:
        """``A^y`` as a ``CPTensor`` (factors ``(n, R)``, weights ``λ[:, y]``), detached float64."""
        y = self._check_class(y)
        factors = list(self.factors.detach().double().clone())
        return CPTensor(factors, self.weights.detach().double()[:, y].clone())

    def _contract(
        self, phi: torch.Tensor, schedule: str, normalize: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # ⟨a_k^(t), Φ_t⟩ for all t, k at once: d GEMMs (B, n) @ (n, R).
        units = torch.bmm(phi.transpose(0, 1), self.factors)  # (d, B, R)
        if not normalize:
            if schedule == "sequential":
                p, *rest = units.unbind(0)
                for unit in rest:
                    p = p * unit
            else:
                p = torch.prod(units, dim=0)
            return p @ self.weights, phi.new_zeros(phi.shape[0])

        # Log space: p_k = sign_k · exp(S_k) with S_k = Σ_t log|z_tk|. Unlike a
        # running product normalised per step, the S_k never underflow, so a unit
        # that is 1e-60 of the leading one at position t can still lead at d, and
        # backward never meets inf · 0 (observed in float32 at d = 784). The clamp
        # keeps the log finite at z = 0 (the gradient there is then 0).
        log_abs = torch.log(units.abs().clamp_min(self._eps(phi)))
        sign = torch.sign(units).detach()
        if schedule == "sequential":
            # unbind, not log_abs[t]: the backward of each index writes a full (d, B, R) zero
            # tensor, d² B R work in all (14.5 s a step at d = 784, R = 179, B = 64); unbind
            # stacks the d slices' gradients once. The same sums, the same gradients, bit for bit.
            (total, *log_rest), (sgn, *sign_rest) = log_abs.unbind(0), sign.unbind(0)
            for log_t, sign_t in zip(log_rest, sign_rest, strict=True):
                total, sgn = total + log_t, sgn * sign_t
        else:
            total, sgn = log_abs.sum(dim=0), sign.prod(dim=0)
        log_scale = 0.5 * torch.logsumexp(2 * total, dim=-1)  # log ‖p‖
        p_unit = sgn * torch.exp(total - log_scale[:, None])
        return p_unit @ self.weights, log_scale


# --------------------------------------------------------------------------- #
# Images → logits
# --------------------------------------------------------------------------- #


class Classifier(nn.Module):
    """Images → patches → features → score network → logits.

    Parameters
    ----------
    feature_map
        A :class:`~tensorrnn.features.FeatureMap` with ``out_dim == network.n``.
    network
        A :class:`CPNet` or :class:`TTNet`.
    patch
        Patch side ``k`` (see :func:`~tensorrnn.features.extract_patches`).
    order
        ``"row-major"`` or ``"snake"``.
    """

    def __init__(
        self, feature_map: FeatureMap, network: ScoreNetwork, patch: int, order: str = "row-major"
    ) -> None:
        super().__init__()
        if feature_map.out_dim != network.n:
            raise ConfigError(
                f"the feature map gives {feature_map.out_dim} features per patch but the network "
                f"expects n={network.n}; make them equal"
            )
        self.feature_map, self.network = feature_map, network
        self.patch, self.order = patch, order

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The feature sequence ``Φ`` ``(B, d, n)`` of a batch of images."""
        patches = extract_patches(images, self.patch, self.order)
        if patches.shape[1:] != (self.network.d, self.feature_map.in_dim):
            raise ConfigError(
                f"images of shape {tuple(images.shape)} cut into {self.patch}x{self.patch} patches "
                f"give (d, s) = {tuple(patches.shape[1:])}, but this classifier was built for "
                f"(d, s) = ({self.network.d}, {self.feature_map.in_dim})"
            )
        return self.feature_map(patches)

    def forward(self, images: torch.Tensor, schedule: str | None = None) -> torch.Tensor:
        """Logits ``(B, C)`` (see :meth:`ScoreNetwork.forward`)."""
        return self.network(self.features(images), schedule)

    def scores(self, images: torch.Tensor, schedule: str | None = None) -> torch.Tensor:
        """Exact scores ``h_y`` ``(B, C)`` (may overflow; for analysis)."""
        return self.network.scores(self.features(images), schedule)

    def num_parameters(self) -> dict[str, int]:
        """Trainable scalars by part: ``{"features", "network", "total"}``."""
        feats = sum(p.numel() for p in self.feature_map.parameters())
        net = self.network.num_parameters()
        return {"features": feats, "network": net, "total": feats + net}


def resolve_schedule(schedule: str, device: torch.device | str) -> str:
    """``sequential`` or ``parallel``: ``auto`` becomes ``parallel`` on CUDA, else ``sequential``."""
    if _check_schedule(schedule) != "auto":
        return schedule
    return "parallel" if torch.device(device).type == "cuda" else "sequential"


def chain_in_use(network: nn.Module, device: torch.device | str, dtype: torch.dtype = torch.float32) -> str:
    """Which code contracts ``network``'s chain in training: ``fused`` (the C++ loops),
    ``plain`` (the Python loops), ``parallel`` (the tree schedule) or ``none`` (no TT chain).

    Recorded with every run: fused and plain agree to rounding only.
    """
    if not isinstance(network, TTNet):
        return "none"
    if resolve_schedule(network.schedule, device) != "sequential" or network.d <= 2:
        return "parallel" if network.d > 2 else "none"
    if not network.compile_chain:
        return "plain"
    return "fused" if _fused_kernel(torch.empty(0, device=device, dtype=dtype)) is not None else "plain"


def chunk_size(
    d: int, batch: int, rank: int, device: torch.device | str, dtype: torch.dtype = torch.float32
) -> int:
    """Positions per chunk of the ``chunked`` schedule for this device and batch.

    One chunk of ``k`` positions peaks at about ``TREE_COPIES · k·B·r²`` numbers.
    On CUDA the budget is half of the device's free memory (the rest is left to
    the batch, the optimiser and other processes: the measured d = 784, r = 100
    tree, 45 GiB, stays whole on an H200); on a CPU it is
    ``CPU_CHUNK_BYTES``. Returns the largest ``k`` within the budget, between 1
    and ``d − 2`` (``d − 2``: the whole tree fits).
    """
    device = torch.device(device)
    per_position = TREE_COPIES * batch * rank * rank * torch.empty(0, dtype=dtype).element_size()
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        budget = free // 2
    else:
        budget = CPU_CHUNK_BYTES
    return max(1, min(d - 2, budget // max(per_position, 1)))


def _check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULE_CHOICES:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULE_CHOICES)}")
    return schedule


def check_init(init: str) -> str:
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    return init


def chain_start(
    init: str, noise: torch.Tensor, *, slice_axis: int, fan: int, init_noise: float,
    generator: torch.Generator | None,
) -> torch.Tensor:  # fmt: skip
    """Middle cores ``(cores, …, r)`` of a recurrent chain from standard-normal ``noise``.

    ``gaussian``: ``noise / sqrt(r · fan)``. ``identity`` / ``orthogonal``: every slice
    along ``slice_axis`` is ``(B + init_noise · noise / sqrt(r)) / fan`` with ``B`` the
    identity or one Haar-orthogonal matrix per core (see :class:`TTNet` for why).
    """
    r = noise.shape[-1]
    if check_init(init) == "gaussian":
        return noise / math.sqrt(r * fan)
    cores = noise.shape[0]
    if init == "identity":
        base = torch.eye(r, dtype=noise.dtype).expand(cores, r, r)
    else:
        base = _haar_orthogonal(cores, r, generator).to(noise)
    return (base.unsqueeze(slice_axis) + init_noise * noise / math.sqrt(r)) / fan


def _haar_orthogonal(count: int, r: int, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` random orthogonal ``r × r`` matrices, Haar-distributed (float64, CPU)."""
    gauss = torch.randn(count, r, r, generator=generator, dtype=torch.float64)
    q, upper = torch.linalg.qr(gauss)
    # The sign fix makes the QR factor Haar-distributed (Mezzadri 2007).
    return q * torch.sign(torch.diagonal(upper, dim1=-2, dim2=-1)).unsqueeze(-2)


def randn_like_cpu(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # Drawn on the CPU in float64 and then cast, so that one seed gives the same
    # network on every device and dtype.
    return torch.randn(like.shape, generator=generator, dtype=torch.float64).to(like)
