"""Numeric precision of model runs: which one, why, and whether it is good enough here.

Distributed photo-z inference (:mod:`astrokit.inference_worker`), training
(:mod:`astrokit.training`) and active-learning pool scoring (:mod:`astrokit.active.scoring`)
all take ``precision=`` with one meaning:

``"fp32"``
    float32 everywhere (the reference).
``"bf16"``
    bfloat16 autocast: matrix multiplies and convolutions in bf16, the operations torch keeps
    in float32 under autocast (reductions, softmax, normalisation statistics...) in fp32.
``"fp16"``
    float16 autocast; CUDA only (no CPU runs it natively, and fp16 needs loss scaling to train).
``"auto"`` (the default; ``$ASTROKIT_PRECISION`` overrides it)
    bf16 where the device runs it natively, fp32 elsewhere.

*Natively* means: on a CPU, AVX512-BF16 or AMX-BF16 instructions (torch's own probes of the
CPU, cross-checked with the ``/proc/cpuinfo`` flags ``avx512_bf16`` / ``amx_bf16``); on a
GPU, ``torch.cuda.is_bf16_supported(including_emulation=False)`` (Ampere and later). Where
bf16 is only emulated (an AVX-512 CPU without those instructions) oneDNN converts to and from
fp32 around every operation, which was measured 1.6x *slower* than fp32 on a Cascade Lake
machine -- so the choice is made at run time, on the machine that runs the model, never on the
client. The choice and the reason are kept in :class:`PrecisionChoice` and end up in the run's
summary and log.

The parity guard
----------------
Reduced precision is only used after it has been *measured* to agree with fp32 on the run's
own data: :func:`guard` predicts a sample in fp32 and in the reduced precision and falls back
to fp32 when the largest absolute difference exceeds a tolerance (default
:data:`DEFAULT_PARITY_TOLERANCE`, 1e-3 in redshift). Its :class:`ParityReport` carries the
measured maximum difference and, where true redshifts are known, sigma_MAD under both
precisions. Callers run it once per model per worker process and cache the outcome
(:func:`astrokit.inference_worker.predict_partition`, :func:`astrokit.active.scoring.score_shard`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from astrokit.errors import UserError

if TYPE_CHECKING:  # torch is imported where it is used: the hub side has none
    import torch

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PARITY_SAMPLE",
    "DEFAULT_PARITY_TOLERANCE",
    "PRECISIONS",
    "PRECISION_ENV",
    "ParityReport",
    "PrecisionChoice",
    "PrecisionError",
    "autocast",
    "check_precision",
    "cpu_bf16_support",
    "guard",
    "merge_reports",
    "resolve_precision",
]

#: Accepted values of ``precision=``.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Environment variable giving the default precision (``auto`` when unset).
PRECISION_ENV = "ASTROKIT_PRECISION"
#: Largest |z_reduced - z_fp32| the parity guard accepts (redshift units).
DEFAULT_PARITY_TOLERANCE = 1e-3
#: Rows of the first partition a worker predicts twice for the parity guard.
DEFAULT_PARITY_SAMPLE = 128

_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


class PrecisionError(UserError, ValueError):
    """An unknown precision, one the device cannot run, or a bad parity tolerance."""


@dataclass(frozen=True)
class PrecisionChoice:
    """What a run computes in, and why.

    Attributes
    ----------
    requested : str
        What the caller asked for (``auto``, ``fp32``, ``bf16``, ``fp16``).
    precision : str
        What runs: ``fp32``, ``bf16`` or ``fp16``.
    device : str
        Device type the choice was made for (``cpu``, ``cuda``).
    reason : str
        One sentence: the hardware found, or the guard's verdict.
    """

    requested: str
    precision: str
    device: str
    reason: str

    @property
    def reduced(self) -> bool:
        """True for bf16/fp16 (autocast), False for fp32."""
        return self.precision != "fp32"

    @property
    def dtype(self) -> torch.dtype:
        """The autocast dtype (``torch.float32`` for fp32)."""
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
            self.precision
        ]

    def to_dict(self) -> dict[str, str]:
        """JSON-able form for summaries."""
        return asdict(self)

    def fallback(self, reason: str) -> PrecisionChoice:
        """The fp32 choice that replaces this one, with ``reason``."""
        return replace(self, precision="fp32", reason=reason)


@dataclass(frozen=True)
class ParityReport:
    """Outcome of comparing a reduced precision with fp32 on a sample (:func:`guard`).

    Attributes
    ----------
    precision : str
        The reduced precision tested.
    n : int
        Rows compared.
    max_abs_diff : float
        Largest ``|reduced - fp32|`` over the sample (redshift for photo-z, class probability
        for classifiers).
    tolerance : float
        The largest difference accepted.
    passed : bool
        ``max_abs_diff <= tolerance`` (and every value finite).
    sigma_mad_fp32, sigma_mad_reduced : float or None
        sigma_MAD of the sample's predictions against its true redshifts under each precision,
        where at least two true redshifts are known (photo-z only).
    n_labelled : int
        Rows of the sample with a known redshift.
    seconds : float
        Time of the two passes.
    """

    precision: str
    n: int
    max_abs_diff: float
    tolerance: float
    passed: bool
    sigma_mad_fp32: float | None = None
    sigma_mad_reduced: float | None = None
    n_labelled: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for summaries."""
        return asdict(self)


def check_precision(precision: str | None) -> str:
    """Validate ``precision`` (None: ``$ASTROKIT_PRECISION``, else ``auto``) and return it.

    Raises
    ------
    PrecisionError
        Not one of :data:`PRECISIONS`.
    """
    if precision is None:
        precision = os.environ.get(PRECISION_ENV) or "auto"
    value = str(precision).strip().lower()
    if value not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return value


def check_tolerance(tolerance: float | None) -> float:
    """Validate a parity tolerance (None: :data:`DEFAULT_PARITY_TOLERANCE`)."""
    if tolerance is None:
        return DEFAULT_PARITY_TOLERANCE
    try:
        value = float(tolerance)
    except (TypeError, ValueError) as exc:
        raise PrecisionError(f"parity tolerance must be a number, got {tolerance!r}") from exc
    if not (value >= 0 and np.isfinite(value)):
        raise PrecisionError(f"parity tolerance must be finite and >= 0, got {tolerance!r}")
    return value


def _proc_cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.cache
def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively, and the evidence, e.g.
    ``(True, "CPU has amx_bf16, avx512_bf16")``.

    torch's probes (``torch.cpu._is_amx_tile_supported`` / ``_is_avx512_bf16_supported``,
    which also check that the OS enabled the AMX state) decide; the ``/proc/cpuinfo`` flags
    are the fallback where torch has no such probe. Cached per process.
    """
    import torch

    found: list[str] = []
    probes = {
        "amx_bf16": getattr(torch.cpu, "_is_amx_tile_supported", None),
        "avx512_bf16": getattr(torch.cpu, "_is_avx512_bf16_supported", None),
    }
    flags = _proc_cpu_flags()
    for name, probe in probes.items():
        if probe is not None:
            try:
                if probe():
                    found.append(name)
                continue
            except (RuntimeError, AttributeError):  # an older build without the probe body
                pass
        if name in flags:
            found.append(name)
    if found:
        return True, f"CPU has {', '.join(found)} (native bf16)"
    capability = torch.backends.cpu.get_cpu_capability()
    return False, f"CPU ({capability}) has neither amx_bf16 nor avx512_bf16: bf16 would be emulated"


def _device_type(device: Any) -> str:
    if device is None:
        from astrokit.models.checkpoint import select_device

        device = select_device(None)
    return str(getattr(device, "type", device)).split(":", 1)[0]


@functools.cache
def _cuda_bf16(device: str) -> bool:
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch without the keyword
        return bool(torch.cuda.is_bf16_supported())


def resolve_precision(precision: str | None = None, device: Any = None) -> PrecisionChoice:
    """Decide what a run on ``device`` computes in.

    Parameters
    ----------
    precision : str, optional
        ``auto``, ``fp32``, ``bf16`` or ``fp16`` (None: ``$ASTROKIT_PRECISION``, else auto).
    device : str or torch.device, optional
        Where the model runs (default: CUDA when present, else CPU).

    Returns
    -------
    PrecisionChoice

    Raises
    ------
    PrecisionError
        An unknown precision, or fp16 on a CPU, or bf16/fp16 on a device type without
        autocast support.
    """
    requested = check_precision(precision)
    dev = _device_type(device)
    if dev not in ("cpu", "cuda"):
        if requested in ("auto", "fp32"):
            return PrecisionChoice(requested, "fp32", dev, f"device {dev}: fp32")
        raise PrecisionError(f"precision {requested!r} is supported on cpu and cuda, not {dev!r}")
    if dev == "cpu":
        native, evidence = cpu_bf16_support()
    else:
        native = _cuda_bf16(dev)
        evidence = f"CUDA device {'supports' if native else 'does not support'} bf16 natively"
    if requested == "fp32":
        return PrecisionChoice(requested, "fp32", dev, "fp32 requested")
    if requested == "fp16":
        if dev != "cuda":
            raise PrecisionError(
                "precision 'fp16' runs only on CUDA devices (device is cpu); use 'bf16' or 'auto'"
            )
        return PrecisionChoice(requested, "fp16", dev, "fp16 requested")
    if requested == "bf16":
        if not native:
            log.warning("bf16 requested but %s; it may be slower than fp32", evidence)
        return PrecisionChoice(requested, "bf16", dev, f"bf16 requested; {evidence}")
    # auto
    if native:
        return PrecisionChoice(requested, "bf16", dev, f"auto: {evidence}")
    return PrecisionChoice(requested, "fp32", dev, f"auto: {evidence}; using fp32")


def fp32_choice(device: Any = "cpu") -> PrecisionChoice:
    """The plain fp32 choice (for callers that do not ask for anything)."""
    return PrecisionChoice("fp32", "fp32", _device_type(device), "fp32 requested")


@contextlib.contextmanager
def autocast(choice: PrecisionChoice | None) -> Iterator[None]:
    """``torch.autocast`` for a reduced choice; nothing for fp32 or None."""
    if choice is None or not choice.reduced:
        yield
        return
    import torch

    with torch.autocast(device_type=choice.device, dtype=choice.dtype):
        yield


def _sigma_mad(z_pred: np.ndarray, z_true: np.ndarray) -> float | None:
    from astrokit.metrics import MetricsError, photoz_metrics

    try:
        return float(photoz_metrics(z_pred, z_true)["sigma_mad"])
    except MetricsError:
        return None


def compare(
    reference: np.ndarray,
    reduced: np.ndarray,
    *,
    precision: str,
    tolerance: float = DEFAULT_PARITY_TOLERANCE,
    z_true: np.ndarray | None = None,
    seconds: float = 0.0,
) -> ParityReport:
    """A :class:`ParityReport` from fp32 and reduced-precision predictions of the same rows.

    ``z_true`` (same length as the predictions, NaN where unknown) adds sigma_MAD under both
    precisions when at least two redshifts are known. A non-finite reduced prediction where
    fp32 is finite fails the check (its difference counts as infinite).
    """
    ref = np.asarray(reference, dtype=np.float64)
    red = np.asarray(reduced, dtype=np.float64)
    if ref.shape != red.shape:
        raise ValueError(f"parity: fp32 shape {ref.shape} differs from reduced {red.shape}")
    diff = np.abs(red - ref)
    diff[np.isfinite(ref) & ~np.isfinite(red)] = np.inf
    diff = diff[np.isfinite(ref)]
    max_diff = float(diff.max()) if diff.size else 0.0
    sm32 = smr = None
    n_labelled = 0
    if z_true is not None and ref.ndim == 1:
        zt = np.asarray(z_true, dtype=np.float64)
        known = np.isfinite(zt)
        n_labelled = int(known.sum())
        if n_labelled >= 2:
            sm32 = _sigma_mad(ref[known], zt[known])
            smr = _sigma_mad(red[known], zt[known])
    return ParityReport(
        precision=precision,
        n=int(ref.shape[0]) if ref.ndim else 0,
        max_abs_diff=max_diff,
        tolerance=float(tolerance),
        passed=bool(max_diff <= tolerance),
        sigma_mad_fp32=sm32,
        sigma_mad_reduced=smr,
        n_labelled=n_labelled,
        seconds=seconds,
    )


def guard(
    choice: PrecisionChoice,
    predict: Callable[[PrecisionChoice], np.ndarray],
    *,
    tolerance: float | None = None,
    z_true: np.ndarray | None = None,
    what: str = "|dz|",
) -> tuple[PrecisionChoice, ParityReport | None]:
    """The parity guard: keep a reduced ``choice`` only if it agrees with fp32 on a sample.

    Parameters
    ----------
    choice : PrecisionChoice
        From :func:`resolve_precision`; an fp32 choice is returned as is, with no report.
    predict : callable
        ``predict(choice) -> ndarray``: the model's predictions of the sample under ``choice``.
    tolerance : float, optional
        Largest accepted ``max |reduced - fp32|`` (default :data:`DEFAULT_PARITY_TOLERANCE`).
    z_true : ndarray, optional
        True redshifts of the sample (NaN where unknown) for sigma_MAD under both precisions.
    what : str
        Name of the compared quantity in the log and the fallback reason.

    Returns
    -------
    (PrecisionChoice, ParityReport or None)
        The choice to run with (``choice``, or its fp32 fallback) and the measurement.
    """
    if not choice.reduced:
        return choice, None
    tol = check_tolerance(tolerance)
    t0 = time.perf_counter()
    reference = predict(replace(choice, precision="fp32"))
    reduced = predict(choice)
    report = compare(
        reference,
        reduced,
        precision=choice.precision,
        tolerance=tol,
        z_true=z_true,
        seconds=time.perf_counter() - t0,
    )
    if report.passed:
        log.info(
            "parity guard: %s max %s %.2e <= %.1e on %d rows; keeping %s",
            choice.precision,
            what,
            report.max_abs_diff,
            tol,
            report.n,
            choice.precision,
        )
        return choice, report
    reason = (
        f"parity guard: {choice.precision} max {what} {report.max_abs_diff:.2e} > tolerance "
        f"{tol:.1e} on {report.n} rows; fell back to fp32 ({choice.reason})"
    )
    log.warning("%s", reason)
    return choice.fallback(reason), report


def merge_reports(entries: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Combine per-worker parity reports (``ParityReport.to_dict()``) into one summary entry.

    Returns None when there is none; otherwise the largest difference any worker measured,
    the rows compared in all, whether every worker passed, and the median over workers of
    sigma_MAD under each precision (each worker measured it on its own sample).
    """
    reports = [e for e in entries if e]
    if not reports:
        return None

    def median_of(key: str) -> float | None:
        values = [r[key] for r in reports if r.get(key) is not None]
        return float(np.median(values)) if values else None

    return {
        "precision": reports[0]["precision"],
        "workers": len(reports),
        "n": int(sum(r["n"] for r in reports)),
        "max_abs_diff": float(max(r["max_abs_diff"] for r in reports)),
        "tolerance": float(max(r["tolerance"] for r in reports)),
        "passed": all(r["passed"] for r in reports),
        "sigma_mad_fp32": median_of("sigma_mad_fp32"),
        "sigma_mad_reduced": median_of("sigma_mad_reduced"),
        "n_labelled": int(sum(r.get("n_labelled", 0) for r in reports)),
        "seconds": float(sum(r.get("seconds", 0.0) for r in reports)),
    }
