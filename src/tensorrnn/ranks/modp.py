"""Exact rank of an integer matrix over GF(p), with float64 BLAS doing the work.

A rank over GF(p) of an integer instance is a *certificate* (rank over GF(p) is at
most the rank over Q), so it must be exact; a float64 SVD is not. python-flint's
``nmod_mat.rank`` is exact but single-threaded and slow to feed from numpy. This
module runs the same Gaussian elimination with its O(N^3) part written as float64
matrix products, which are exact while every partial sum stays below 2^53.

Why float64 products are exact here
-----------------------------------
A *reduced* entry is an integer ``x`` with ``|x| <= p - 1``: reduction is
``fmod(x, p)``, which IEEE 754 computes exactly and which keeps the sign of ``x``,
so it lands in ``(-p, p)``. GEMM operands are always reduced. An accumulator
that started reduced and has received ``d`` products of reduced entries (in
whatever order the BLAS adds them: blocked, split, FMA or not) has every partial
sum bounded by::

    (p - 1) + d (p - 1)^2  <=  2^53     as long as  d <= k,

so every intermediate value is an integer that float64 represents exactly and no
rounding ever happens. :func:`max_block_depth` gives the largest such ``k``. Each
block of the matrix carries its *debt* ``d``; it is reduced before a product
would push ``d`` past ``k`` and before it becomes an operand (products deeper
than ``k`` are sliced). Reducing lazily rather than after every product matters:
``fmod`` is memory-bound and costs about as much as a GEMM of inner depth 100.

``DEFAULT_PRIME = 2097143`` is the largest prime below 2^21, and
``k = DEFAULT_BLOCK_DEPTH = 2048``: ``2048 * 2097142^2 + 2097142 =
9007113357697014 <= 2^53 = 9007199254740992``. Choosing fmod's ``(-p, p)``
over centred representatives ``(-p/2, p/2]`` costs one bit of ``p`` (centring
would allow ``p < 2^22`` at the same ``k``) but reduces in one exact pass with
no temporary; on this machine that pass over a large block was about twice as
fast as round-and-subtract centring. A prime near 2^21 makes an accidental rank
drop of a generic integer instance very unlikely; a drop can only
*under*-certify, and rerunning with another prime settles it.

Exactness relies on IEEE float64 GEMMs (MKL, OpenBLAS, cuBLAS). Do not enable
reduced-precision emulation of FP64 GEMMs (e.g. cuBLAS fixed-point emulation)
when using this module.

Algorithm
---------
Recursive, rank-revealing LU on column halves (a column-recursive PLUQ): factor
the left half, triangular-solve and Schur-update the right half with float64
GEMMs, factor the Schur complement. Columns without a pivot are skipped and the
pivot columns are compacted, so the rank of any matrix (any shape, any rank
deficiency) comes out as the number of pivots. Leaves of ``leaf_width`` columns
whose top square block is invertible (the usual case) cost one small
Gauss-Jordan inverse; other leaves are eliminated column by column, with row
pivoting, on a transposed copy of the slab. The matrix is factored in place in
one float64 working copy, oriented so that it has no more rows than columns
(rank is invariant under transposition): the elimination stops as soon as every
row holds a pivot. The code is device-agnostic torch: a CUDA input is factored
on its GPU (not tested here: no GPU was available).
"""

from __future__ import annotations

import bisect
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
    "check_prime",
    "exact_rank",
    "max_block_depth",
    "rank_mod_p",
    "rank_mod_p_flint",
]

_EXACT_LIMIT = 2**53
"""Every integer of magnitude at most 2^53 is a float64."""

MAX_PRIME = 2**24
"""Bound on the modulus of the BLAS engine: below it at least 32 products fit
below 2^53; beyond it the float64 route loses its point (use ``engine="flint"``)."""

DEFAULT_PRIME = 2_097_143
"""Largest prime below 2^21: the modulus :func:`rank_mod_p` uses by default."""

DEFAULT_LEAF_WIDTH = 32
"""Columns per leaf of the recursion (one small inverse, or column-by-column)."""

# GEMMs with a dimension below this run on one thread: on shared cores every OpenMP
# hand-off of a small GEMM waits for a descheduled thread, and these GEMMs hold only
# a small share of the flops (measurements: benchmarks/BENCH_MODP.md).
_SMALL_DIM = 512

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
        The block depth ``k`` (at least 32 for every ``p <= MAX_PRIME``).
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
            f"p must be a prime integer, got {p!r} of type {type(p).__name__}; e.g. p={DEFAULT_PRIME}"
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


def check_prime(p: object, engine: str = "blas") -> int:
    """``p`` as a Python int if ``engine`` can compute ranks modulo it.

    Lets a caller refuse a bad modulus before any work starts.

    Parameters
    ----------
    p
        The modulus: a prime, at most 2^24 for ``"blas"`` and below 2^63 for ``"flint"``.
    engine
        ``"blas"`` or ``"flint"`` (see :func:`exact_rank`).

    Raises
    ------
    ConfigError
        ``p`` is not a prime integer or is too large for the engine.
    """
    return _check_prime(p, limit=MAX_PRIME if engine == "blas" else 2**63 - 1)


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
    raise ConfigError(f"cannot take a rank mod p of a matrix of dtype {blk.dtype}; pass integer entries")


def _fill_reduced_torch(dst: torch.Tensor, blk: torch.Tensor, p: int) -> None:
    """Write ``blk`` into the float64 view ``dst`` as integers in ``(-p, p)``."""
    if blk.is_complex():
        raise ConfigError(f"cannot take a rank mod p of a complex tensor ({blk.dtype}); pass integer entries")
    if blk.is_floating_point():
        dst.copy_(blk)  # float32 -> float64 is exact
        if not bool(torch.isfinite(dst).all()) or not bool((dst.floor() == dst).all()):
            raise ConfigError(
                "the matrix has non-integer or non-finite float entries; exact ranks mod p "
                "need integers (round them, or pass an integer tensor)"
            )
        dst.fmod_(p)
        return
    if blk.numel() and blk.dtype != torch.bool:
        lo, hi = torch.aminmax(blk)
        if int(lo) <= -p or int(hi) >= p:
            blk = torch.remainder(blk.to(torch.int64), p)
    dst.copy_(blk)  # the integer -> float64 conversion happens in the copy


# dtypes that torch.from_numpy wraps without copying and handles in every op used above
_TORCH_NATIVE = {np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8)} | {
    np.dtype(np.float32),
    np.dtype(np.float64),
}


def _working_copy(M: np.ndarray | torch.Tensor, p: int) -> torch.Tensor:
    """One float64 copy of ``M`` reduced into ``(-p, p)``, with rows <= columns.

    Rank is invariant under transposition; having no more rows than columns lets
    the elimination stop as soon as every row holds a pivot. The copy is filled in
    slices of rows so that conversion temporaries stay small.
    """
    if isinstance(M, torch.Tensor):
        src: np.ndarray | torch.Tensor = M.detach()
        device = M.device
    else:
        src = np.asarray(M)
        device = torch.device("cpu")
        if src.dtype in _TORCH_NATIVE and all(st >= 0 for st in src.strides):
            src = torch.from_numpy(src)
    rows, cols = src.shape
    transpose = rows > cols
    W = torch.empty((cols, rows) if transpose else (rows, cols), dtype=torch.float64, device=device)
    step = max(1, _CHUNK_ELEMENTS // max(cols, 1))
    for i in range(0, rows, step):
        dst = W[:, i : i + step].t() if transpose else W[i : i + step]
        blk = src[i : i + step]
        if isinstance(blk, torch.Tensor):
            _fill_reduced_torch(dst, blk, p)
        else:
            dst.copy_(torch.from_numpy(_reduced_block_np(blk, p)))
    return W


def _in_place_copy(M: np.ndarray | torch.Tensor, p: int) -> torch.Tensor:
    """``M`` itself (a float64 matrix) reduced into ``(-p, p)``, oriented rows <= columns.

    No second copy: a 32768 x 32768 float64 matrix is 8.6 GB, and one copy of it is
    what the machine can hold. Reduced and checked in slices of rows.
    """
    W = torch.from_numpy(M) if isinstance(M, np.ndarray) else M.detach()
    if W.dtype != torch.float64:
        raise ConfigError(
            f"overwrite=True factors the matrix in place, so it must be float64 (got {W.dtype}); "
            "build it as float64 integers, or leave overwrite unset to work on a copy"
        )
    rows, cols = W.shape
    step = max(1, _CHUNK_ELEMENTS // max(cols, 1))
    for i in range(0, rows, step):
        blk = W[i : i + step]
        if not bool(torch.isfinite(blk).all()) or not bool((blk.floor() == blk).all()):
            raise ConfigError(
                "the matrix has non-integer or non-finite float entries; exact ranks mod p "
                "need integers (round them, or pass an integer array)"
            )
        blk.fmod_(p)
    return W.t() if rows > cols else W


# --------------------------------------------------------------------------- kernel


def _small_inverse(T: np.ndarray, p: int) -> np.ndarray | None:
    """Inverse modulo ``p`` of a small square int64 matrix, or None if singular.

    Gauss-Jordan on ``[T | I]``; entries stay below ``p^2 < 2^48`` in int64.
    """
    w = T.shape[0]
    A = np.concatenate([T % p, np.eye(w, dtype=np.int64)], axis=1)
    for j in range(w):
        if A[j, j] == 0:
            nz = np.flatnonzero(A[j:, j])
            if nz.size == 0:
                return None
            i = j + int(nz[0])
            A[[j, i]] = A[[i, j]]
        A[j] = A[j] * pow(int(A[j, j]), -1, p) % p
        f = A[:, j].copy()
        f[j] = 0
        A -= np.outer(f, A[j])
        A %= p
    return A[:, w:]


class _Eliminator:
    """In-place rank-revealing LU of ``W`` modulo ``p`` (see the module docstring).

    Invariants: every entry of ``W`` is an integer; an entry of a block with
    *debt* ``d`` satisfies ``|x| <= (p-1) + d (p-1)^2`` with ``d <= k``, so it is
    exact, and is reduced into ``(-p, p)`` (``fmod``) before it is ever a factor
    of a product. Reducing lazily, only when ``d`` would pass ``k`` or a block
    becomes a GEMM operand, removes most of the ``fmod`` passes, which are
    memory-bound and cost as much as a GEMM of inner depth ~100.

    After ``_lu(r0, c0, c1, ...)`` returns ``r``, rows ``r0 .. r0+r-1`` are the
    pivot rows of the block ``W[r0:, c0:c1]``; the rows below are then zero in the
    block, so its non-pivot columns are dropped. When the caller needs it,
    ``W[r0:, c0:c0+r]`` holds a factor ``Lt`` and the pivots are grouped into leaf
    blocks ``b`` (consecutive pivot rows) with stored inverses ``D_b^{-1}``, such
    that ``L = Lt D^{-1}`` is the block unit lower factor of the pivot columns
    (``D`` block diagonal; only blocks below the diagonal of ``Lt`` are read).
    Most leaves are *fast*: their top square ``T_b`` is invertible, ``D_b = T_b``
    and ``Lt`` is just the slab, so a leaf costs one small inverse and no GEMM or
    row swap. *General* leaves (column by column) store the usual unit lower
    ``L`` with ``D_b`` its diagonal block. :meth:`trsm` returns ``D^{-1} L^{-1} X``,
    which is what the Schur update ``C - Lt (D^{-1} L^{-1} X)`` needs.

    Row swaps are applied to whole rows, except columns left of ``lo``: those hold
    factors no caller will read again.
    """

    def __init__(
        self, W: torch.Tensor, p: int, k: int, leaf: int, progress: bool, check: bool = False
    ) -> None:
        self.W = W
        self.p = p
        self.k = k
        # Tests set `check` to assert the exactness invariants at every product.
        self.check = check
        # A leaf applies up to `leaf` rank-1 updates between reductions.
        self.leaf = min(leaf, k)
        self.m, self.n = W.shape
        # Leaf blocks: first pivot row of each (increasing) -> D_b^{-1} (None: identity).
        self._starts: list[int] = []
        self._inverses: dict[int, torch.Tensor | None] = {}
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

    def _bounded(self, t: torch.Tensor, debt: int) -> None:
        """With ``check``: assert ``debt <= k`` and ``|t| <= (p-1) + debt (p-1)^2``."""
        if self.check and t.numel():
            assert debt <= self.k, f"debt {debt} > k = {self.k}"
            bound = (self.p - 1) + debt * (self.p - 1) ** 2
            assert float(t.abs().max()) <= bound, "entry outside its exactness bound"

    # -- modular float64 products ------------------------------------------------------

    def gemm_sub(self, C: torch.Tensor, A: torch.Tensor, B: torch.Tensor, debt: int) -> int:
        """``C <- C - A @ B`` in place, exact; returns the new debt of ``C``.

        ``A`` and ``B`` must be reduced. ``C`` enters with ``debt`` and is reduced
        only when one more slice would break ``debt <= k``.
        """
        inner = A.shape[1]
        self._bounded(A, 0)
        self._bounded(B, 0)
        small = min(C.shape[0], C.shape[1], inner) < _SMALL_DIM
        with self._one_thread() if small else contextlib.nullcontext():
            for s in range(0, inner, self.k):
                depth = min(self.k, inner - s)
                if debt + depth > self.k:
                    C.fmod_(self.p)
                    debt = 0
                C.addmm_(A[:, s : s + depth], B[s : s + depth], alpha=-1)
                debt += depth
                self._bounded(C, debt)
        return debt

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

    def trsm(self, L: torch.Tensor, X: torch.Tensor, start: int, debt: int) -> None:
        """``X <- D^{-1} L^{-1} X mod p`` in place, for the pivots ``start ..``.

        ``L = Lt D^{-1}`` is the block unit lower factor held in ``L`` (``Lt``) and
        the stored leaf inverses. ``X`` enters with ``debt`` and leaves reduced:
        it is a GEMM operand next. Splits fall on leaf-block boundaries.
        """
        r = L.shape[0]
        first = bisect.bisect_left(self._starts, start)
        last = bisect.bisect_left(self._starts, start + r)
        if self.check:
            assert first < last and self._starts[first] == start, "trsm off block boundaries"
        if last - first == 1:
            with self._one_thread():
                if debt:
                    X.fmod_(self.p)
                inverse = self._inverses[start]
                if inverse is not None:
                    self._bounded(X, 0)
                    X.copy_(torch.mm(inverse, X).fmod_(self.p))
            return
        # Split at the block boundary nearest the middle.
        mid = start + r / 2
        j = bisect.bisect_left(self._starts, mid, first + 1, last)
        j = min(
            (i for i in (j - 1, j) if first < i < last),
            key=lambda i: abs(self._starts[i] - mid),
        )
        h = self._starts[j] - start
        self.trsm(L[:h, :h], X[:h], start, debt)
        debt = self.gemm_sub(X[h:], L[h:, :h], X[:h], debt)
        self.trsm(L[h:, h:], X[h:], start + h, debt)

    # -- elimination ---------------------------------------------------------------------

    def rank(self) -> int:
        r = self._lu(0, 0, self.n, lo=0, need_l=False, debt=0) if self.m and self.n else 0
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

    def _lu(self, r0: int, c0: int, c1: int, lo: int, need_l: bool, debt: int) -> int:
        """Factor ``W[r0:, c0:c1]``, whose entries carry ``debt``; return its rank."""
        if r0 >= self.m or c0 >= c1:
            return 0
        if c1 - c0 <= self.leaf:
            return self._leaf(r0, c0, c1, lo, need_l, debt)
        W = self.W
        cm = c0 + self._split(c1 - c0)
        r1 = self._lu(r0, c0, cm, lo, True, debt)
        if r0 + r1 >= self.m:
            return r1
        if r1:
            X1 = W[r0 : r0 + r1, cm:c1]
            self.trsm(W[r0 : r0 + r1, c0 : c0 + r1], X1, r0, debt)
            debt = self.gemm_sub(W[r0 + r1 :, cm:c1], W[r0 + r1 :, c0 : c0 + r1], X1, debt)
        # The left factor is read again only if our own caller needs our L.
        r2 = self._lu(r0 + r1, cm, c1, lo if need_l else cm, need_l, debt)
        if need_l and r2 and r1 < cm - c0:
            self._move_columns(r0 + r1, cm, c0 + r1, r2)
        return r1 + r2

    def _move_columns(self, r0: int, src: int, dst: int, width: int) -> None:
        """Copy ``W[r0:, src:src+width]`` to ``W[r0:, dst:dst+width]`` (may overlap)."""
        W = self.W
        step = max(1, _CHUNK_ELEMENTS // width)
        for i in range(r0, self.m, step):
            W[i : i + step, dst : dst + width] = W[i : i + step, src : src + width].clone()

    def _move_rows(self, dst: np.ndarray, src: np.ndarray, lo: int, c0: int, c1: int) -> None:
        """Row ``dst[i]`` of ``W`` takes row ``src[i]``, outside the slab ``c0:c1``."""
        W = self.W
        d = torch.as_tensor(dst, device=W.device)
        s = torch.as_tensor(src, device=W.device)
        if lo < c0:
            W[d, lo:c0] = W[s, lo:c0]
        if c1 < self.n:
            W[d, c1:] = W[s, c1:]

    def _leaf(self, r0: int, c0: int, c1: int, lo: int, need_l: bool, debt: int) -> int:
        """Eliminate the slab ``W[r0:, c0:c1]``; fast when its top square is invertible.

        Dense inputs almost always have an invertible top ``w x w`` block ``T``
        among the active rows. Then the slab has rank ``w`` with the top rows as
        pivot rows, and the leaf only stores ``T^{-1}`` (a small host-side
        Gauss-Jordan): ``L21 = S21 T^{-1}`` is never formed (see the class
        docstring). Anything else goes to the column-by-column path.
        """
        W, p = self.W, self.p
        w = c1 - c0
        if self.m - r0 < w:
            return self._leaf_general(r0, c0, c1, lo, need_l, debt)
        with self._one_thread():
            S = W[r0:, c0:c1]
            T = torch.fmod(S[:w], p).cpu().numpy().astype(np.int64)
            inverse = _small_inverse(T, p)
            if inverse is None:
                return self._leaf_general(r0, c0, c1, lo, need_l, debt)
            if need_l:
                if debt:
                    S.fmod_(p)  # the slab is now a GEMM operand
                self._starts.append(r0)
                self._inverses[r0] = torch.from_numpy(inverse.astype(np.float64)).to(W.device)
        if self.bar is not None:
            self.bar.update(w)
        return w

    def _leaf_general(self, r0: int, c0: int, c1: int, lo: int, need_l: bool, debt: int) -> int:
        """Column-by-column elimination of the slab ``W[r0:, c0:c1]``.

        Works on a transposed contiguous copy so that every column is a contiguous
        vector: pivot search and rank-1 updates then stream through memory.
        Reductions are lazy: ``w`` columns take at most ``w`` rank-1 updates, so
        only the column about to be used is reduced (``fmod`` costs several times
        the update itself), unless the entering debt leaves no room for ``w``.
        """
        W, p = self.W, self.p
        with self._one_thread():
            # Row-major copy first: transposing in cache is ~3x faster than
            # gathering a strided column slab directly.
            Bt = W[r0:, c0:c1].contiguous().t().contiguous()
            w, rows = Bt.shape
            if debt + w > self.k:
                Bt.fmod_(p)
                debt = 0
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
                        debt += 1
                        self._bounded(Bt, debt)
                if j != rk:
                    Bt[rk].copy_(Bt[j])
                rk += 1
            if perm is not None:
                moved = np.flatnonzero(perm != np.arange(rows))
                self._move_rows(moved + r0, perm[moved] + r0, lo, c0, c1)
            if need_l and rk:
                # Only the strictly lower part (L, reduced) is ever read again.
                W[r0:, c0 : c0 + rk] = Bt[:rk].t().contiguous()
                self._starts.append(r0)
                self._inverses[r0] = (
                    self.unit_lower_inverse(W[r0 : r0 + rk, c0 : c0 + rk]) if rk > 1 else None
                )
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
    overwrite: bool = False,
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
        Columns per leaf of the recursion (capped at ``block_depth``).
    progress
        Show a progress bar over the columns.
    overwrite
        Factor ``M`` itself instead of a copy: ``M`` must be a float64 numpy array
        or torch tensor of integers, and holds garbage afterwards. For matrices
        that fit the machine's memory once, not twice (N = 32768: 8.6 GB).

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
    Memory: one float64 copy of ``M`` (none with ``overwrite``) plus
    O(leaf_width * max(M.shape)) scratch and the GEMMs' own buffers. Time:
    about ``(2/3) N^3`` float64 flops for an N x N matrix of full rank, at
    near-DGEMM speed for large N.
    """
    q = _check_prime(p, limit=MAX_PRIME)
    k = _check_block_depth(block_depth, q)
    if isinstance(leaf_width, bool) or not isinstance(leaf_width, int) or leaf_width < 1:
        raise ConfigError(f"leaf_width must be a positive integer, got {leaf_width!r}")
    _check_2d(M, "rank_mod_p")
    W = _in_place_copy(M, q) if overwrite else _working_copy(M, q)
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
