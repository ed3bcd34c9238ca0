"""Exact rank of an integer matrix over GF(p), with float64 BLAS doing the work.

A rank over GF(p) of an integer instance is a *certificate* (rank over GF(p) is at
most the rank over Q), so it must be exact; a float64 SVD is not. python-flint's
``nmod_mat.rank`` is exact but single-threaded and slow to feed from numpy. This
module runs the same Gaussian elimination with its O(N^3) part written as float64
matrix products, which are exact while every partial sum stays below 2^53.

Why float64 products are exact here
-----------------------------------
Every stored entry is an integer ``x`` with ``|x| <= p - 1``: entries are reduced
with ``fmod(x, p)``, which IEEE 754 computes exactly and which keeps the sign of
``x``, so it lands in ``(-p, p)``. A Schur update ``C - sum_{t<k} A[:, t] B[t, :]``
then has every partial sum, in whatever order the BLAS adds (blocked, split, FMA
or not), bounded by::

    (p - 1) + k (p - 1)^2  <=  2^53,

so every intermediate value is an integer that float64 represents exactly and no
rounding ever happens. :func:`max_block_depth` gives the largest such ``k``;
products are reduced modulo ``p`` after each ``k``-deep slice of the inner
dimension.

``DEFAULT_PRIME = 2097143`` is the largest prime below 2^21, and
``k = DEFAULT_BLOCK_DEPTH = 2048``: ``2048 * 2097142^2 + 2097142 =
9007113357697014 <= 2^53 = 9007199254740992``. Choosing fmod's ``(-p, p)``
over centred representatives ``(-p/2, p/2]`` costs one bit of ``p`` (centring
would allow ``p < 2^22`` at the same ``k``) but reduces in one exact pass with
no temporary; on this machine that pass is about 2.5 times faster than the
round-and-subtract centring, and the reduction is the only non-BLAS pass over
the trailing matrix. A prime near 2^21 makes an accidental rank drop of a
generic integer instance very unlikely; a drop can only *under*-certify.

Exactness relies on IEEE float64 GEMMs (MKL, OpenBLAS, cuBLAS). Do not enable
reduced-precision emulation of FP64 GEMMs (e.g. cuBLAS fixed-point emulation)
when using this module.

Algorithm
---------
Recursive, rank-revealing LU on column halves (a column-recursive PLUQ): factor
the left half, triangular-solve and Schur-update the right half with float64
GEMMs, factor the Schur complement. Columns without a pivot are skipped and the
pivot columns are compacted, so the rank of any matrix (any shape, any rank
deficiency) comes out as the number of pivots. Leaves of at most
``leaf_width`` columns are eliminated column by column on a transposed copy of
the slab. The matrix is factored in place in one float64 working copy, oriented
so that it has no more rows than columns (rank is invariant under
transposition): the elimination stops as soon as every row holds a pivot.
The code is device-agnostic torch: a CUDA input is factored on its GPU.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator
from typing import Literal

import flint
import numpy as np
import torch

from tensorrnn.errors import ConfigError, SizeError

__all__ = [
    "DEFAULT_BLOCK_DEPTH",
    "DEFAULT_LEAF_WIDTH",
    "DEFAULT_PRIME",
    "MAX_PRIME",
    "certify_rank_at_least",
    "exact_rank",
    "max_block_depth",
    "rank_mod_p",
    "rank_mod_p_flint",
]

_EXACT_LIMIT = 2**53
"""Every integer of magnitude at most 2^53 is a float64."""

MAX_PRIME = 2**24
"""Largest modulus the BLAS engine accepts: beyond it fewer than 32 products fit
below 2^53 and the float64 route loses its point (use ``engine="flint"``)."""

DEFAULT_PRIME = 2_097_143
"""Largest prime below 2^21: the modulus :func:`rank_mod_p` uses by default."""

DEFAULT_LEAF_WIDTH = 32
"""Columns per leaf of the recursion (eliminated one column at a time)."""

# Rows per slice when a large block is copied or converted, to bound temporaries.
_CHUNK_ELEMENTS = 1 << 22


def max_block_depth(p: int) -> int:
    """Largest inner depth ``k`` whose float64 products modulo ``p`` are exact.

    Entries are kept in ``(-p, p)``, so a ``k``-deep update of a stored entry
    is bounded by ``(p - 1) + k (p - 1)^2``; this returns the largest ``k``
    for which that bound is at most 2^53.

    Parameters
    ----------
    p
        The modulus (at least 2).

    Returns
    -------
    int
        The block depth ``k`` (at least 1 for every ``p <= MAX_PRIME``).
    """
    return (_EXACT_LIMIT - (p - 1)) // (p - 1) ** 2


DEFAULT_BLOCK_DEPTH = max_block_depth(DEFAULT_PRIME)
"""Inner depth between reductions for :data:`DEFAULT_PRIME` (2048)."""


# --------------------------------------------------------------------------- validation


def _check_prime(p: object, *, limit: int | None) -> int:
    """``p`` as a Python int, or a ConfigError saying how to pick a valid one."""
    if isinstance(p, bool):
        raise ConfigError(f"p must be a prime integer, got {p!r}; e.g. p={DEFAULT_PRIME}")
    try:
        q = operator.index(p)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(
            f"p must be a prime integer, got {p!r} of type {type(p).__name__}; "
            f"e.g. p={DEFAULT_PRIME}"
        ) from None
    if q < 2 or not flint.fmpz(q).is_prime():
        raise ConfigError(
            f"p = {q} is not a prime; ranks modulo p are ranks over a field only for "
            f"prime p. Use a prime such as {DEFAULT_PRIME} (the default)"
        )
    if limit is not None and q > limit:
        raise ConfigError(
            f"p = {q} is too large for the float64 engine: it needs p <= 2^24 = {limit} so "
            f"that products of entries stay exact below 2^53. Use a smaller prime "
            f"(default {DEFAULT_PRIME}) or engine='flint' for large moduli"
        )
    return q


def _check_block_depth(block_depth: int | None, p: int) -> int:
    kmax = max_block_depth(p)
    if block_depth is None:
        return kmax
    if isinstance(block_depth, bool) or not isinstance(block_depth, int) or block_depth < 1:
        raise ConfigError(f"block_depth must be a positive integer, got {block_depth!r}")
    if block_depth > kmax:
        raise ConfigError(
            f"block_depth = {block_depth} is unsafe for p = {p}: k (p-1)^2 + (p-1) must stay "
            f"<= 2^53, which allows at most {kmax}; leave block_depth unset to get {kmax}"
        )
    return block_depth


def _shape_of(M: object) -> tuple[int, ...]:
    if isinstance(M, torch.Tensor | np.ndarray):
        return tuple(M.shape)
    return tuple(np.shape(M))  # type: ignore[arg-type]


def _check_2d(M: object, what: str) -> tuple[int, int]:
    shape = _shape_of(M)
    if len(shape) != 2:
        raise SizeError(
            f"{what} needs a 2-D matrix, got an array of shape {shape}; matricize a "
            f"tensor first (rows x columns), e.g. reshape it to (prod(row modes), -1)"
        )
    return shape[0], shape[1]


# --------------------------------------------------------------------------- conversion


def _reduced_block_np(blk: np.ndarray, p: int) -> np.ndarray:
    """Rows of a numpy matrix as float64 integers in ``(-p, p)``."""
    kind = blk.dtype.kind
    if kind == "b":
        return blk.astype(np.float64)
    if kind in "iu":
        if blk.size and (blk.min() <= -p or blk.max() >= p):
            blk = np.remainder(blk, blk.dtype.type(p))
        return blk.astype(np.float64)
    if kind == "f":
        if not np.isfinite(blk).all() or not (np.floor(blk) == blk).all():
            raise ConfigError(
                "the matrix has non-integer or non-finite float entries; exact ranks mod p "
                "need integers (round them, or pass an integer array)"
            )
        return np.fmod(blk.astype(np.float64), float(p))
    if kind == "O":
        try:
            vals = [operator.index(x) % p for x in blk.ravel()]
        except TypeError as exc:
            raise ConfigError(
                f"the matrix has a non-integer entry ({exc}); exact ranks mod p need integers"
            ) from None
        return np.asarray(vals, dtype=np.float64).reshape(blk.shape)
    raise ConfigError(
        f"cannot take a rank mod p of a matrix of dtype {blk.dtype}; pass integer entries"
    )


def _reduced_block_torch(blk: torch.Tensor, p: int) -> torch.Tensor:
    """Rows of a torch matrix as float64 integers in ``(-p, p)``, same device."""
    if blk.dtype == torch.bool:
        return blk.to(torch.float64)
    if blk.is_complex():
        raise ConfigError(
            f"cannot take a rank mod p of a complex tensor ({blk.dtype}); pass integer entries"
        )
    if blk.is_floating_point():
        b64 = blk.to(torch.float64)
        if not bool(torch.isfinite(b64).all()) or not bool((b64.floor() == b64).all()):
            raise ConfigError(
                "the matrix has non-integer or non-finite float entries; exact ranks mod p "
                "need integers (round them, or pass an integer tensor)"
            )
        return torch.fmod(b64, p)
    b64 = blk.to(torch.int64)
    if b64.numel() and (int(b64.min()) <= -p or int(b64.max()) >= p):
        b64 = torch.remainder(b64, p)
    return b64.to(torch.float64)


def _working_copy(M: np.ndarray | torch.Tensor, p: int) -> torch.Tensor:
    """One float64 copy of ``M`` reduced into ``(-p, p)``, with rows <= columns.

    Rank is invariant under transposition; having no more rows than columns lets
    the elimination stop as soon as every row holds a pivot.
    """
    if isinstance(M, torch.Tensor):
        src: np.ndarray | torch.Tensor = M.detach()
        device = M.device
        reduce = _reduced_block_torch
    else:
        src = np.asarray(M)
        device = torch.device("cpu")
        reduce = _reduced_block_np  # type: ignore[assignment]
    rows, cols = src.shape
    transpose = rows > cols
    W = torch.empty((cols, rows) if transpose else (rows, cols), dtype=torch.float64, device=device)
    step = max(1, _CHUNK_ELEMENTS // max(cols, 1))
    for i in range(0, rows, step):
        blk = reduce(src[i : i + step], p)  # type: ignore[arg-type]
        blk_t = torch.as_tensor(blk, device=device)
        if transpose:
            W[:, i : i + step].copy_(blk_t.t())
        else:
            W[i : i + step].copy_(blk_t)
    return W


# --------------------------------------------------------------------------- kernel


class _Eliminator:
    """In-place rank-revealing LU of ``W`` modulo ``p`` (see the module docstring).

    Invariants: every entry of ``W`` is an integer in ``(-p, p)`` between
    operations. After ``_lu(r0, c0, c1, ...)`` returns ``r``, rows
    ``r0 .. r0+r-1`` are the pivot rows of the block ``W[r0:, c0:c1]`` and, when
    the caller needs it, ``W[r0:, c0:c0+r]`` holds the unit lower factor L of the
    pivot columns below the diagonal (the diagonal and above hold U, unused).
    Rows below the pivots are then zero in the block, so the non-pivot columns are
    dropped.

    Row swaps are applied to whole rows, except columns left of ``lo``: those hold
    factors no caller will read again.
    """

    def __init__(self, W: torch.Tensor, p: int, k: int, leaf: int, progress: bool) -> None:
        self.W = W
        self.p = p
        self.k = k
        self.leaf = leaf
        self.trsm_leaf = max(1, min(32, k))
        self.m, self.n = W.shape
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.n, unit="col", desc=f"rank mod {p}", leave=False)

    @contextlib.contextmanager
    def _one_thread(self) -> Iterator[None]:
        """Run small CPU kernels on one thread.

        Measured here: a 32 x 32 product took 4 us on one thread but up to 13 ms
        on two when other processes held the cores (OpenMP hand-offs), and the
        leaves issue thousands of such small operations.
        """
        if self.W.device.type != "cpu":
            yield
            return
        saved = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(saved)

    # -- modular float64 products ------------------------------------------------------

    def gemm_sub(self, C: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> None:
        """``C <- (C - A @ B) mod p`` in place, exact (inner depth sliced by ``k``)."""
        inner = A.shape[1]
        for s in range(0, inner, self.k):
            C.addmm_(A[:, s : s + self.k], B[s : s + self.k], alpha=-1)
            C.fmod_(self.p)

    def unit_lower_inverse(self, L: torch.Tensor) -> torch.Tensor:
        """Inverse mod p of the unit lower triangle of a small square ``L``.

        With ``L = I + N`` (N strictly lower, nilpotent) the inverse is
        ``(I - N)(I + N^2)(I + N^4)...``: log2(r) small products instead of r
        row operations, which matters because Python overhead dominates here.
        """
        r = L.shape[0]
        eye = torch.eye(r, dtype=L.dtype, device=L.device)
        Y = torch.tril(L, diagonal=-1).neg_()
        inv = Y + eye
        power, span = Y, 2
        while span < r:
            power = torch.mm(power, power).fmod_(self.p)
            inv = torch.mm(inv, power + eye).fmod_(self.p)
            span *= 2
        return inv

    def trsm(self, L: torch.Tensor, X: torch.Tensor) -> None:
        """``X <- L^{-1} X mod p`` in place for the unit lower triangle of ``L``."""
        r = L.shape[0]
        if r <= self.trsm_leaf:
            if r > 1:
                with self._one_thread():
                    X.copy_(torch.mm(self.unit_lower_inverse(L), X).fmod_(self.p))
            return
        h = r // 2
        self.trsm(L[:h, :h], X[:h])
        self.gemm_sub(X[h:], L[h:, :h], X[:h])
        self.trsm(L[h:, h:], X[h:])

    # -- elimination ---------------------------------------------------------------------

    def rank(self) -> int:
        r = self._lu(0, 0, self.n, lo=0, need_l=False) if self.m and self.n else 0
        if self.bar is not None:
            self.bar.update(self.n - self.bar.n)
            self.bar.close()
        return r

    def _split(self, w: int) -> int:
        # Left part: the largest leaf * 2^j below w, so GEMM shapes stay round.
        left = self.leaf
        while 2 * left < w:
            left *= 2
        return left

    def _lu(self, r0: int, c0: int, c1: int, lo: int, need_l: bool) -> int:
        if r0 >= self.m or c0 >= c1:
            return 0
        if c1 - c0 <= self.leaf:
            return self._leaf(r0, c0, c1, lo, need_l)
        W = self.W
        cm = c0 + self._split(c1 - c0)
        r1 = self._lu(r0, c0, cm, lo, True)
        if r0 + r1 >= self.m:
            return r1
        if r1:
            X1 = W[r0 : r0 + r1, cm:c1]
            self.trsm(W[r0 : r0 + r1, c0 : c0 + r1], X1)
            self.gemm_sub(W[r0 + r1 :, cm:c1], W[r0 + r1 :, c0 : c0 + r1], X1)
        # The left factor is read again only if our own caller needs our L.
        r2 = self._lu(r0 + r1, cm, c1, lo if need_l else cm, need_l)
        if need_l and r2 and r1 < cm - c0:
            self._move_columns(r0 + r1, cm, c0 + r1, r2)
        return r1 + r2

    def _move_columns(self, r0: int, src: int, dst: int, width: int) -> None:
        """Copy ``W[r0:, src:src+width]`` to ``W[r0:, dst:dst+width]`` (may overlap)."""
        W = self.W
        step = max(1, _CHUNK_ELEMENTS // width)
        for i in range(r0, self.m, step):
            W[i : i + step, dst : dst + width] = W[i : i + step, src : src + width].clone()

    def _leaf(self, r0: int, c0: int, c1: int, lo: int, need_l: bool) -> int:
        """Column-by-column elimination of the slab ``W[r0:, c0:c1]``.

        Works on a transposed contiguous copy so that every column is a contiguous
        vector: pivot search and rank-1 updates then stream through memory.
        Reductions are lazy: a slab of ``w <= k`` columns takes at most ``w``
        rank-1 updates, each adding at most ``(p-1)^2``, so entries stay exact
        without reduction and only the column about to be used is reduced. This
        matters because ``fmod`` is several times slower than the update itself.
        """
        W, p = self.W, self.p
        with self._one_thread():
            Bt = W[r0:, c0:c1].t().contiguous()
            w, rows = Bt.shape
            perm: np.ndarray | None = None
            rk = 0
            for j in range(w):
                if rk == rows:
                    break
                v = Bt[j, rk:].fmod_(p)
                piv = float(v[0])
                if piv == 0.0:
                    # Any nonzero entry is a valid pivot mod p; take the first one.
                    nz = torch.nonzero(v)
                    if nz.shape[0] == 0:
                        continue
                    i = rk + int(nz[0, 0])
                    piv = float(Bt[j, i])
                    Bt[:, [rk, i]] = Bt[:, [i, rk]]
                    if perm is None:
                        perm = np.arange(rows)
                    perm[[rk, i]] = perm[[i, rk]]
                inv = pow(int(piv) % p, -1, p)
                if rk + 1 < rows:
                    lcol = v[1:].mul_(inv).fmod_(p)
                    if j + 1 < w:
                        u = Bt[j + 1 :, rk].fmod_(p)
                        Bt[j + 1 :, rk + 1 :].addr_(u, lcol, alpha=-1)
                if j != rk:
                    Bt[rk].copy_(Bt[j])
                rk += 1
            if perm is not None:
                moved = np.flatnonzero(perm != np.arange(rows))
                dst = torch.as_tensor(moved + r0, device=W.device)
                src = torch.as_tensor(perm[moved] + r0, device=W.device)
                if lo < c0:
                    W[dst, lo:c0] = W[src, lo:c0]
                if c1 < self.n:
                    W[dst, c1:] = W[src, c1:]
            if need_l and rk:
                # Only the strictly lower part (L, reduced) is ever read again.
                W[r0:, c0 : c0 + rk] = Bt[:rk].t()
        if self.bar is not None:
            self.bar.update(c1 - c0)
        return rk


# --------------------------------------------------------------------------- public API


def rank_mod_p(
    M: np.ndarray | torch.Tensor,
    p: int = DEFAULT_PRIME,
    *,
    block_depth: int | None = None,
    leaf_width: int = DEFAULT_LEAF_WIDTH,
    progress: bool = False,
) -> int:
    """Exact rank of an integer matrix over GF(p), computed with float64 GEMMs.

    Parameters
    ----------
    M
        2-D numpy array or torch tensor of integers (any integer dtype, bool,
        integral floats, or Python ints in an object array); entries are
        reduced modulo ``p``. A CUDA tensor is factored on its GPU.
    p
        A prime ``<= MAX_PRIME`` (2^24). Default :data:`DEFAULT_PRIME`
        (2097143, the largest prime below 2^21).
    block_depth
        Inner depth ``k`` of each float64 product between two reductions mod
        ``p``. Default and maximum: :func:`max_block_depth` ``(p)``, the largest
        ``k`` with ``k (p-1)^2 + (p-1) <= 2^53`` (2048 for the default prime),
        which keeps every partial sum an exactly representable integer.
    leaf_width
        Columns eliminated one at a time at the leaves of the recursion.
    progress
        Show a progress bar over the columns.

    Returns
    -------
    int
        The rank of ``M mod p``. It never exceeds the rank of ``M`` over Q, so
        ``rank_mod_p(M) >= R`` certifies ``rank(M) >= R``.

    Raises
    ------
    SizeError
        ``M`` is not 2-D.
    ConfigError
        ``p`` is not a prime, is above 2^24, ``block_depth`` is unsafe, or ``M``
        has non-integer entries.

    Notes
    -----
    Memory: one float64 copy of ``M`` plus O(leaf_width * max(M.shape))
    scratch. Time: about ``(2/3) N^3`` float64 flops for an N x N matrix of
    full rank, at near-DGEMM speed for large N.
    """
    q = _check_prime(p, limit=MAX_PRIME)
    k = _check_block_depth(block_depth, q)
    if isinstance(leaf_width, bool) or not isinstance(leaf_width, int) or leaf_width < 1:
        raise ConfigError(f"leaf_width must be a positive integer, got {leaf_width!r}")
    _check_2d(M, "rank_mod_p")
    W = _working_copy(M, q)
    return _Eliminator(W, q, k, leaf_width, progress).rank()


def rank_mod_p_flint(M: np.ndarray | torch.Tensor, p: int = DEFAULT_PRIME) -> int:
    """Exact rank over GF(p) by python-flint's ``nmod_mat.rank`` (the reference).

    Independent of :func:`rank_mod_p`: different code, integer arithmetic.

    Parameters
    ----------
    M
        2-D integer matrix (numpy array, torch tensor or nested lists); entries
        are reduced modulo ``p``.
    p
        Any prime below 2^63.

    Returns
    -------
    int
        The rank of ``M mod p``.
    """
    q = _check_prime(p, limit=2**63 - 1)
    rows, cols = _check_2d(M, "rank_mod_p_flint")
    if rows == 0 or cols == 0:
        return 0
    A = M.detach().cpu().numpy() if isinstance(M, torch.Tensor) else np.asarray(M)
    if A.dtype.kind == "b":
        A = A.astype(np.int64)
    if A.dtype.kind == "f":
        if not np.isfinite(A).all() or not (np.floor(A) == A).all():
            raise ConfigError("the matrix has non-integer float entries; pass integers")
        A = np.fmod(A, float(q)).astype(np.int64) if q < _EXACT_LIMIT else A.astype(object)
    if A.dtype.kind == "O":
        entries = [operator.index(x) % q for x in A.ravel()]
    elif A.dtype.kind in "iu":
        # tolist() on a machine-int array is the fastest way into Python ints;
        # nmod_mat reduces (also negative) entries itself.
        entries = A.ravel().tolist()
    else:
        raise ConfigError(f"cannot take a rank mod p of a matrix of dtype {A.dtype}")
    return int(flint.nmod_mat(rows, cols, entries, q).rank())


def exact_rank(
    M: np.ndarray | torch.Tensor,
    p: int = DEFAULT_PRIME,
    engine: Literal["blas", "flint"] = "blas",
) -> int:
    """Exact rank of ``M`` over GF(p) with the chosen engine.

    Parameters
    ----------
    M
        2-D integer matrix.
    p
        A prime (``<= 2^24`` for ``"blas"``, ``< 2^63`` for ``"flint"``).
    engine
        ``"blas"``: :func:`rank_mod_p` (float64 GEMMs, fast, CPU or CUDA).
        ``"flint"``: :func:`rank_mod_p_flint` (python-flint, the reference).

    Returns
    -------
    int
        The rank of ``M mod p``.
    """
    if engine == "blas":
        return rank_mod_p(M, p)
    if engine == "flint":
        return rank_mod_p_flint(M, p)
    raise ConfigError(f"unknown engine {engine!r}; choose 'blas' or 'flint'")


def certify_rank_at_least(
    M: np.ndarray | torch.Tensor,
    R: int,
    p: int = DEFAULT_PRIME,
    seed: int = 0,
) -> bool:
    """Certify ``rank(M) >= R`` from a random sketch ``M S`` (``S``: N x R mod p).

    ``rank(M S) <= rank(M)`` over GF(p), and over Q rank mod p is a lower
    bound, so ``True`` proves ``rank_Q(M) >= R``. ``False`` proves nothing
    (an unlucky ``S`` fails with probability at most ``R / p``); retry with
    another seed or compute the full rank. Costs ``2 m N R`` flops for the
    sketch plus the rank of an ``m x R`` matrix instead of ``(2/3) N^3``.

    Parameters
    ----------
    M
        2-D integer matrix, ``m x N``.
    R
        The rank to certify, ``0 <= R``.
    p
        A prime ``<= 2^24``.
    seed
        Seed of the sketch ``S`` (the same seed gives the same answer).

    Returns
    -------
    bool
        ``True`` if the sketch has rank ``R`` (a certificate), else ``False``.
    """
    q = _check_prime(p, limit=MAX_PRIME)
    rows, cols = _check_2d(M, "certify_rank_at_least")
    if isinstance(R, bool) or not isinstance(R, int) or R < 0:
        raise ConfigError(f"R must be a non-negative integer, got {R!r}")
    if R == 0:
        return True
    if R > min(rows, cols):
        return False
    W = _working_copy(M, q)
    if rows > cols:
        W = W.t()  # back to the caller's orientation: the sketch multiplies columns
    gen = torch.Generator(device="cpu").manual_seed(seed)
    S = torch.randint(0, q, (cols, R), generator=gen, dtype=torch.int64)
    S = S.to(device=W.device, dtype=torch.float64)
    k = max_block_depth(q)
    sketch = torch.zeros((rows, R), dtype=torch.float64, device=W.device)
    for s in range(0, cols, k):
        sketch.addmm_(W[:, s : s + k], S[s : s + k]).fmod_(q)
    del W
    return rank_mod_p(sketch, q) >= R
