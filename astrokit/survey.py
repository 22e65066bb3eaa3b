"""The synthetic survey: galaxy cutouts and 1-D spectra at known redshift.

No labelled galaxy cutouts can be downloaded here, so the embedded default generates its own
survey. The generators are pure numpy (vectorised; 20,000 galaxies take seconds) and
deterministic by seed; :func:`make_survey` writes their output as real FITS files plus parquet
catalogues, readable by :func:`astrokit.formats.read_cutout` / ``read_spectrum``.

How the galaxies are made
-------------------------
* **Redshift** ``z`` from a smooth prior on (0.005, 0.65), then a magnitude limit
  16 < r < 22 (Malmquist bias shapes the observed z distribution, as in a real survey).
* **Colours** come from two analytic rest-frame SEDs -- a red "early type" (4800 K
  blackbody with a 4000 A break) and a blue "star forming" one (flat f_nu, weak Balmer break,
  [OII]/Hbeta/[OIII]/Halpha emission lines) -- mixed by a type parameter ``t`` (bimodal), then
  redshifted and integrated through Gaussian approximations of the SDSS ugriz bands
  (centres 3551/4686/6166/7480/8932 A). Magnitudes include the distance modulus and the
  K-correction of a flat LambdaCDM (H0=70, Om=0.3). Colour and magnitude therefore depend on z,
  but degenerately with type and luminosity: a model has to learn the relation.
* **Shapes**: bulge (Sersic n=4) + disk (n=1) with the bulge carrying the red SED's share of
  each band's flux (colour gradients); physical half-light radius from a size-luminosity
  relation turned into arcsec by the angular-diameter distance, so apparent size shrinks with
  z; random axis ratio and angle; Gaussian PSF per band (FWHM ~1.2-1.5"); 0.396"/pixel.
* **Noise**: Gaussian sky noise per band (SDSS-like depths); images in nanomaggies; measured
  magnitudes carry aperture-photometry errors.
* **Hard cases** (~10%): tripled noise, a blended neighbour, or a strongly offset centre.

How the spectra are made
------------------------
By the project's one spectrum generator (:mod:`astrokit.synthetic_spectra`) with the survey's
recipe, :data:`SURVEY_CLASSES`; lines sit at their **vacuum** wavelengths
(:mod:`astrokit.lines`), as in SDSS/DESI/LAMOST spectra and the spectrum viewer's markers.
Log-uniform wavelength grid 3700-9000 A (3000 pixels) unless ``wave`` is given. Classes:
``emission`` (~15%: blue continuum + [OII], Hbeta, [OIII], [NII], Halpha), ``absorption``
(~45%: red continuum, 4000 A break, Ca H&K, G band, Mg b, Na D), ``broadline`` (~15%: QSO
power law with broad Mg II, Hgamma, Hbeta, Halpha, z up to 1.5), ``featureless`` (~25%:
power laws with random slopes). Per-spectrum S/N is log-normal (median ~12); pixels near
bright sky lines get extra noise and some are masked; ~30% of spectra have a bad-column run.
~10% hard cases have S/N 1.5-3 and lines five times weaker.

Limits
------
The SEDs are analytic sketches, not population-synthesis templates; there are no stars,
AGN hosts or dust-reddening laws; profiles are sampled at pixel centres (n=4 cores are
under-resolved); noise is Gaussian. The survey is meant to make the pipeline and models do
real work, not to calibrate photo-z for a real survey.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astrokit.lines import air_to_vacuum
from astrokit.synthetic_spectra import Continuum, SpectrumClass, feature, generate_spectra

log = logging.getLogger(__name__)

BANDS = ("u", "g", "r", "i", "z")
#: Approximate SDSS ugriz band centres and Gaussian widths (sigma), Angstrom.
BAND_CENTRES = np.array([3551.0, 4686.0, 6166.0, 7480.0, 8932.0])
BAND_SIGMAS = np.array([560.0, 1380.0, 1370.0, 1530.0, 950.0]) / 2.355
#: Pixel scale (arcsec / pixel) and cutout size.
PIXEL_SCALE = 0.396
CUTOUT = 32
#: 1-sigma sky noise per pixel, nanomaggies, per band (about 1 mag deeper than single-epoch SDSS,
#: like a coadd; keeps 16 < r < 22 galaxies measurable).
SKY_SIGMA = np.array([0.04, 0.012, 0.018, 0.028, 0.09], dtype=np.float32)
#: Median PSF FWHM per band, arcsec.
PSF_FWHM = np.array([1.5, 1.4, 1.3, 1.2, 1.2])
Z_RANGE = (0.005, 0.65)
MAG_RANGE = (16.0, 22.0)

SPECTRAL_CLASSES = ("emission", "absorption", "broadline", "featureless")
CLASS_FRACTIONS = (0.15, 0.45, 0.15, 0.25)
#: Flux unit of synthetic spectra.
FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"

#: Night-sky emission lines (air wavelengths as usually tabulated, converted to vacuum).
_SKY_LINES = air_to_vacuum(
    np.array([5577.3, 5889.9, 6300.3, 6363.8, 6863.9, 7246.0, 7605.0, 7913.7, 8344.6])
)


def _power_law(index: float | None) -> Continuum:
    """``(lambda_rest / 5000 A) ** index`` (``None``: a random index N(0, 0.8) per spectrum)."""

    def continuum(wave: np.ndarray, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        slope = rng.normal(0, 0.8, len(z)) if index is None else np.full(len(z), index)
        return (wave[None, :] / (1 + z)[:, None] / 5000.0) ** slope[:, None]

    return continuum


def _red_continuum(wave: np.ndarray, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An old population's continuum: red power law with the 4000 A break."""
    rest = wave[None, :] / (1 + z)[:, None]
    return (rest / 5000.0) ** 1.2 * (0.55 + 0.45 / (1 + np.exp(-(rest - 4000.0) / 40.0)))


#: The survey's spectral classes, in :data:`SPECTRAL_CLASSES` order. Strengths are peak line
#: heights (absorption: depths) relative to the continuum for a line scale of 1; widths are
#: Gaussian sigmas in km/s (narrow lines ~3 A, absorption 5-10 A, broad lines 35-50 A).
SURVEY_CLASSES = (
    SpectrumClass(
        "emission",
        (0.01, 0.6),
        _power_law(-0.8),
        (
            feature("[O II]", 3.0, 180.0),
            feature("Hβ", 1.5, 180.0),
            feature("[O III]", 1.2, 180.0, near=4960),
            feature("[O III]", 3.6, 180.0, near=5008),
            feature("[N II]", 0.9, 180.0, near=6550),
            feature("Hα", 4.8, 180.0),  # noqa: RUF001
            feature("[N II]", 2.7, 180.0, near=6585),
        ),
    ),
    SpectrumClass(
        "absorption",
        (0.01, 0.6),
        _red_continuum,
        (
            feature("Ca II K", -0.45, 460.0),
            feature("Ca II H", -0.4, 450.0),
            feature("G band", -0.2, 560.0),
            feature("Mg b", -0.2, 580.0),
            feature("Na D", -0.15, 300.0),
            feature("Hβ", -0.08, 310.0),
        ),
    ),
    SpectrumClass(
        "broadline",
        (0.1, 1.5),
        _power_law(-1.5),
        (
            feature("Mg II", 2.0, 3700.0),
            feature("Hγ", 0.6, 2100.0),  # noqa: RUF001
            feature("Hβ", 1.2, 2500.0),
            feature("Hα", 3.6, 2300.0),  # noqa: RUF001
            feature("[O III]", 1.0, 180.0, near=5008),
        ),
    ),
    SpectrumClass("featureless", (0.01, 0.6), _power_law(None)),
)


# --------------------------------------------------------------------------------------------
# SEDs, bands and cosmology (tabulated once; small)
# --------------------------------------------------------------------------------------------
def _rest_seds(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Red and blue rest-frame f_nu templates on ``lam`` (Angstrom), arbitrary scale."""
    h_c_k = 1.4388e8  # h c / k in Angstrom * K
    f_lam_red = lam**-5 / np.expm1(h_c_k / (lam * 4800.0))
    f_lam_red *= 0.55 + 0.45 / (1 + np.exp(-(lam - 4000.0) / 40.0))  # 4000 A break
    f_lam_red *= 0.4 + 0.6 / (1 + np.exp(-(lam - 2800.0) / 150.0))  # UV drop
    f_nu_red = f_lam_red * lam**2
    f_nu_blue = (lam / 5500.0) ** 0.3 * (0.85 + 0.15 / (1 + np.exp(-(lam - 3646.0) / 30.0)))
    cont = np.interp(5500.0, lam, f_nu_blue)
    for feat in SURVEY_CLASSES[0].features:  # the emission class's lines, EWs of tens of A
        wl, strength = feat.line.rest_wavelength, feat.strength / 3.0
        f_nu_blue = f_nu_blue + cont * strength * 0.9 * np.exp(-0.5 * ((lam - wl) / 8.0) ** 2)
    return f_nu_red, f_nu_blue


def _band_flux(lam_obs: np.ndarray, f_nu: np.ndarray) -> np.ndarray:
    """AB-like mean f_nu through each Gaussian band (photon-counting weight T/lambda)."""
    t = np.exp(-0.5 * ((lam_obs[None, :] - BAND_CENTRES[:, None]) / BAND_SIGMAS[:, None]) ** 2)
    w = t / lam_obs[None, :]
    return (w * f_nu[None, :]).sum(1) / w.sum(1)


_TABLES: dict[str, Any] = {}


def _tables() -> dict[str, np.ndarray]:
    """Per-z tables: band fluxes of both SEDs, distance modulus, angular-diameter distance."""
    if _TABLES:
        return _TABLES
    from astropy.cosmology import FlatLambdaCDM

    lam_obs = np.linspace(2500.0, 11500.0, 1800)
    zgrid = np.linspace(0.0, 0.8, 161)
    red = np.empty((len(zgrid), 5))
    blue = np.empty((len(zgrid), 5))
    for k, z in enumerate(zgrid):
        r_sed, b_sed = _rest_seds(lam_obs / (1 + z))
        red[k] = _band_flux(lam_obs, r_sed)
        blue[k] = _band_flux(lam_obs, b_sed)
    # normalise both SEDs to unit rest-frame r-band flux, so M_r means the same for both
    red /= red[0, 2]
    blue /= blue[0, 2]
    cosmo = FlatLambdaCDM(H0=70.0, Om0=0.3)
    zpos = np.maximum(zgrid, 1e-4)
    _TABLES.update(
        zgrid=zgrid,
        red=red,
        blue=blue,
        distmod=np.asarray(cosmo.distmod(zpos).value),
        da_kpc=np.asarray(cosmo.angular_diameter_distance(zpos).to("kpc").value),
    )
    return _TABLES


def _interp_rows(z: np.ndarray, table: np.ndarray) -> np.ndarray:
    zgrid = _tables()["zgrid"]
    return np.stack([np.interp(z, zgrid, table[:, b]) for b in range(table.shape[1])], axis=1)


# --------------------------------------------------------------------------------------------
# galaxies
# --------------------------------------------------------------------------------------------
def _draw_population(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """z, type, M_r, true magnitudes, with the 16 < r < 22 selection applied by rejection."""
    tab = _tables()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("z", "t", "absmag", "mags")}
    have = 0
    while have < n:
        m = max(64, int((n - have) * 2.5))
        z = Z_RANGE[0] + (Z_RANGE[1] - Z_RANGE[0]) * rng.beta(1.6, 2.2, m)
        t = rng.beta(0.6, 0.6, m)  # bimodal: red sequence and blue cloud
        absmag = rng.normal(-20.8 + 0.9 * t, 1.1)
        flux = (1 - t)[:, None] * _interp_rows(z, tab["red"]) + t[:, None] * _interp_rows(
            z, tab["blue"]
        )
        dm = np.interp(z, tab["zgrid"], tab["distmod"])
        mags = absmag[:, None] + dm[:, None] - 2.5 * np.log10((1 + z)[:, None] * flux)
        ok = (mags[:, 2] > MAG_RANGE[0]) & (mags[:, 2] < MAG_RANGE[1])
        for key, val in (("z", z), ("t", t), ("absmag", absmag), ("mags", mags)):
            out[key].append(val[ok])
        have += int(ok.sum())
    return {k: np.concatenate(v)[:n] for k, v in out.items()}


def _sersic(r: np.ndarray, re: np.ndarray, n: float) -> np.ndarray:
    b = 2.0 * n - 1.0 / 3.0
    return np.exp(-b * ((r / re) ** (1.0 / n) - 1.0))


def _gauss_psf_fft(sigma_px: np.ndarray, size: int) -> np.ndarray:
    """FFT of unit Gaussians with per-(galaxy, band) sigma: shape (..., size, size//2+1)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    k2 = (2 * np.pi) ** 2 * (fx**2 + fy**2)
    return np.exp(-0.5 * sigma_px[..., None, None] ** 2 * k2)


def _render(
    pop: dict[str, np.ndarray], rng: np.random.Generator, size: int = CUTOUT
) -> dict[str, np.ndarray]:
    n = len(pop["z"])
    tab = _tables()
    z, t, absmag = pop["z"], pop["t"], pop["absmag"]
    # size-luminosity relation; disks larger than bulges
    re_kpc = 10 ** (0.65 - 0.2 * (absmag + 21.0) + rng.normal(0, 0.15, n))
    da = np.interp(z, tab["zgrid"], tab["da_kpc"])
    re_px = re_kpc / da * 206265.0 / PIXEL_SCALE
    re_bulge = np.maximum(0.6 * re_px, 0.3)
    re_disk = np.maximum(1.2 * re_px, 0.5)
    q = rng.uniform(0.3, 1.0, n)
    theta = rng.uniform(0, np.pi, n)
    hard_kind = np.zeros(n, dtype=np.int8)  # 0 easy, 1 noisy, 2 blended, 3 off-centre
    hard = rng.random(n) < 0.10
    hard_kind[hard] = rng.integers(1, 4, int(hard.sum()))
    offset = rng.normal(0, 0.5, (n, 2))
    offset[hard_kind == 3] = rng.uniform(-6, 6, (int((hard_kind == 3).sum()), 2))

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) - (size - 1) / 2.0
    dx = xx[None] - offset[:, 0, None, None]
    dy = yy[None] - offset[:, 1, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    xr = dx * c + dy * s
    yr = (-dx * s + dy * c) / q[:, None, None]
    r = np.sqrt(xr**2 + yr**2)
    bulge = _sersic(r, re_bulge[:, None, None], 4.0)
    disk = _sersic(r, re_disk[:, None, None], 1.0)
    bulge /= bulge.sum((1, 2), keepdims=True)
    disk /= disk.sum((1, 2), keepdims=True)

    flux_true = 10 ** (-0.4 * (pop["mags"] - 22.5))  # nanomaggies
    fr = (1 - t)[:, None] * _interp_rows(z, tab["red"])
    fb = t[:, None] * _interp_rows(z, tab["blue"])
    w_bulge = fr / (fr + fb)  # the bulge carries the red SED's share of each band
    images = (
        w_bulge[:, :, None, None] * bulge[:, None] + (1 - w_bulge)[:, :, None, None] * disk[:, None]
    ) * flux_true[:, :, None, None]

    blended = hard_kind == 2
    if blended.any():  # a fainter neighbour of a different colour, partly overlapping
        k = int(blended.sum())
        nx = rng.uniform(-9, 9, k)[:, None, None]
        ny = rng.uniform(-9, 9, k)[:, None, None]
        nr = np.sqrt((xx[None] - nx) ** 2 + (yy[None] - ny) ** 2)
        prof = _sersic(nr, rng.uniform(1.0, 3.0, k)[:, None, None], 1.0)
        prof /= prof.sum((1, 2), keepdims=True)
        nflux = flux_true[blended] * rng.uniform(0.2, 0.8, (k, 1)) * rng.uniform(0.5, 2.0, (k, 5))
        images[blended] += nflux[:, :, None, None] * prof[:, None]

    fwhm = PSF_FWHM[None, :] * rng.uniform(0.85, 1.2, (n, 1))
    sigma_px = fwhm / 2.355 / PIXEL_SCALE
    images = np.fft.irfft2(np.fft.rfft2(images) * _gauss_psf_fft(sigma_px, size), s=(size, size))

    noise_scale = np.where(hard_kind == 1, 3.0, 1.0)
    sky = SKY_SIGMA[None, :] * noise_scale[:, None]
    images = images + rng.normal(size=images.shape) * sky[:, :, None, None]

    # aperture photometry error: sky noise over an aperture of ~2 half-light radii + PSF
    ap_px = np.pi * (1.5 * re_px[:, None] + fwhm / PIXEL_SCALE) ** 2
    err = sky * np.sqrt(ap_px)
    measured = flux_true + rng.normal(size=flux_true.shape) * err
    measured = np.maximum(measured, err)  # non-detections become 1-sigma limits
    mags = 22.5 - 2.5 * np.log10(measured)
    return {
        "images": images.astype(np.float32),
        "mags": mags.astype(np.float32),
        "mags_true": pop["mags"].astype(np.float32),
        "size_arcsec": (re_px * PIXEL_SCALE).astype(np.float32),
        "hard": hard_kind,
    }


def synth_galaxies(
    n: int, seed: int, *, size: int = CUTOUT, id_prefix: str | None = None, chunk: int = 2000
) -> dict[str, np.ndarray]:
    """Generate ``n`` synthetic galaxy cutouts at known redshift.

    Parameters
    ----------
    n : int
        Number of galaxies.
    seed : int
        Random seed; the same (n, seed) always gives the same galaxies.
    size : int
        Cutout side in pixels (32 by default).
    id_prefix : str, optional
        Prefix of the ids (default ``gal<seed>``).
    chunk : int
        Galaxies rendered per vectorised batch (bounds memory).

    Returns
    -------
    dict
        ``images`` (n, 5, size, size) float32 ugriz in nanomaggies, ``mags`` (n, 5) float32
        measured magnitudes, ``z`` (n,) float32, ``ids`` (n,) str, plus ``mags_true``,
        ``type`` (0 red .. 1 blue), ``absmag_r``, ``size_arcsec`` and ``hard`` (0 easy,
        1 noisy, 2 blended, 3 off-centre).
    """
    if n < 0:
        raise ValueError(f"synth_galaxies: n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    pop = _draw_population(n, rng)
    parts = [
        _render({k: v[i : i + chunk] for k, v in pop.items()}, rng, size)
        for i in range(0, n, chunk)
    ]
    prefix = id_prefix or f"gal{seed}"
    out: dict[str, np.ndarray] = {
        k: (np.concatenate([p[k] for p in parts]) if parts else _empty_gal(k, size))
        for k in ("images", "mags", "mags_true", "size_arcsec", "hard")
    }
    out["z"] = pop["z"].astype(np.float32)
    out["type"] = pop["t"].astype(np.float32)
    out["absmag_r"] = pop["absmag"].astype(np.float32)
    out["ids"] = np.array([f"{prefix}-{i:07d}" for i in range(n)], dtype=str)
    return out


def _empty_gal(key: str, size: int) -> np.ndarray:
    shapes = {"images": (0, 5, size, size), "mags": (0, 5), "mags_true": (0, 5)}
    dtype = np.int8 if key == "hard" else np.float32
    return np.zeros(shapes.get(key, (0,)), dtype=dtype)


# --------------------------------------------------------------------------------------------
# spectra
# --------------------------------------------------------------------------------------------
def default_wave() -> np.ndarray:
    """The default spectral grid: 3000 log-uniform pixels from 3700 to 9000 Angstrom."""
    return np.geomspace(3700.0, 9000.0, 3000)


def synth_spectra(
    n: int,
    seed: int,
    *,
    wave: np.ndarray | None = None,
    class_fractions: tuple[float, ...] = CLASS_FRACTIONS,
    hard_fraction: float = 0.10,
    id_prefix: str | None = None,
) -> dict[str, np.ndarray]:
    """Generate ``n`` synthetic 1-D spectra with classes and known redshift.

    Parameters
    ----------
    n : int
        Number of spectra.
    seed : int
        Random seed (deterministic output).
    wave : array, optional
        Wavelength grid in Angstrom (default :func:`default_wave`).
    class_fractions : tuple of float
        Probabilities of ``SPECTRAL_CLASSES`` (emission, absorption, broadline, featureless).
    hard_fraction : float
        Fraction of hard cases (S/N 1.5-3, lines 5x weaker).
    id_prefix : str, optional
        Prefix of the ids (default ``spec<seed>``).

    Returns
    -------
    dict
        ``wave`` (L,) float64 Angstrom, ``flux`` (n, L) float32 in :data:`FLUX_UNIT`,
        ``ivar`` (n, L) float32 (0 where masked), ``mask`` (n, L) bool (True = bad),
        ``z`` (n,) float32, ``object_class`` (n,) str, ``ids`` (n,) str, ``snr`` (n,)
        float32, ``hard`` (n,) bool.
    """
    if n < 0:
        raise ValueError(f"synth_spectra: n must be >= 0, got {n}")
    if len(class_fractions) != len(SPECTRAL_CLASSES) or not np.isclose(sum(class_fractions), 1):
        raise ValueError(f"class_fractions must be {len(SPECTRAL_CLASSES)} numbers summing to 1")
    rng = np.random.default_rng(seed)
    wave = default_wave() if wave is None else np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or len(wave) < 2:
        raise ValueError(f"wave must be a 1-D grid, got shape {wave.shape}")
    hard = rng.random(n) < hard_fraction
    line_scale = np.where(hard, 0.2, 1.0) * rng.lognormal(0.0, 0.4, n)
    snr = np.where(hard, rng.uniform(1.5, 3.0, n), rng.lognormal(np.log(12.0), 0.6, n))
    sky = np.zeros(len(wave))
    for wl in _SKY_LINES:
        sky += np.exp(-0.5 * ((wave - wl) / 3.0) ** 2)
    drawn = generate_spectra(
        n,
        rng,
        wave,
        SURVEY_CLASSES,
        class_fractions,
        line_scale=line_scale,
        continuum_snr=snr,
        jitter=0.4,
        sky=sky,
    )
    amplitude = rng.lognormal(np.log(20.0), 0.6, n)[:, None]  # brightness
    noisy, sigma = drawn["flux"] * amplitude, drawn["sigma"] * amplitude

    mask = (sky[None, :] > 0.5) & (rng.random((n, 1)) < 0.5)  # sky-line residuals masked
    bad_col = rng.random(n) < 0.3
    for k in np.flatnonzero(bad_col):
        start = rng.integers(0, len(wave) - 16)
        mask[k, start : start + rng.integers(3, 16)] = True
    ivar = np.where(mask, 0.0, 1.0 / sigma**2)
    cls, z = drawn["class_index"], drawn["z"]

    prefix = id_prefix or f"spec{seed}"
    return {
        "wave": wave,
        "flux": noisy.astype(np.float32),
        "ivar": ivar.astype(np.float32),
        "mask": mask,
        "z": z.astype(np.float32),
        "object_class": np.array([SPECTRAL_CLASSES[c] for c in cls], dtype=str),
        "ids": np.array([f"{prefix}-{i:07d}" for i in range(n)], dtype=str),
        "snr": snr.astype(np.float32),
        "hard": hard,
    }


# --------------------------------------------------------------------------------------------
# FITS encoders and the survey writer
# --------------------------------------------------------------------------------------------
def cutout_fits_bytes(
    image: np.ndarray, mags: np.ndarray, z: float | None, obj_id: str, *, per_band: bool = False
) -> bytes:
    """Encode one (5, H, W) ugriz cutout as FITS: a cube, or one image HDU per band.

    Header keywords: ``BANDS='ugriz'`` (cube), ``FILTER`` (per band), ``MAG_U``..``MAG_Z``,
    ``Z`` (omitted when unknown), ``OBJID``, ``BUNIT='nanomaggy'``, ``PIXSCALE``.
    """
    cards: list[tuple[str, Any, str]] = [("OBJID", str(obj_id), "object id")]
    if z is not None and np.isfinite(z):
        cards.append(("Z", float(z), "redshift"))
    for band, m in zip(BANDS, mags, strict=True):
        cards.append((f"MAG_{band.upper()}", float(m), f"{band} magnitude (AB)"))
    cards.append(("BUNIT", "nanomaggy", ""))
    cards.append(("PIXSCALE", PIXEL_SCALE, "arcsec / pixel"))
    if not per_band:
        # The cube is the bulk path (20,000+ files): formatting the bytes directly is ~10x
        # faster than building an astropy HDUList per file.
        cards.append(("BANDS", "".join(BANDS), "order of the cube's first axis"))
        return _fast_cube_fits(np.asarray(image, dtype=np.float32), cards)
    from astropy.io import fits

    hdr = fits.Header()
    for key, value, comment in cards:
        hdr[key] = (value, comment)
    hdus = [fits.PrimaryHDU(header=hdr)]
    for b, band in enumerate(BANDS):
        h = fits.ImageHDU(np.asarray(image[b], dtype=np.float32), name=band.upper())
        h.header["FILTER"] = band
        hdus.append(h)
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def _card(key: str, value: Any, comment: str = "") -> str:
    """One 80-character FITS header card (fixed format for numbers, bool and strings)."""
    if isinstance(value, (bool, np.bool_)):
        text = ("T" if value else "F").rjust(20)
    elif isinstance(value, (int, np.integer)):
        text = str(int(value)).rjust(20)
    elif isinstance(value, (float, np.floating)):
        text = f"{float(value):.17G}"  # round-trips a double exactly
        if "." not in text and "E" not in text:
            text += "."
        text = text.rjust(20)
    else:
        if len(str(value)) > 60 or not str(value).isascii():
            raise ValueError(f"header value for {key} must be ASCII, <= 60 chars: {value!r}")
        text = "'" + str(value).replace("'", "''").ljust(8) + "'"
        text = text.ljust(20)
    card = f"{key:<8}= {text}" + (f" / {comment}" if comment else "")
    if len(card) > 80:
        card = card[:80]
    return card.ljust(80)


def _fast_cube_fits(cube: np.ndarray, cards: list[tuple[str, Any, str]]) -> bytes:
    """A minimal valid FITS file: a primary HDU holding ``cube`` (float32) plus ``cards``."""
    head_cards = [
        _card("SIMPLE", True, "conforms to FITS standard"),
        _card("BITPIX", -32, "array data type"),
        _card("NAXIS", cube.ndim, "number of array dimensions"),
    ]
    head_cards += [_card(f"NAXIS{i + 1}", n) for i, n in enumerate(reversed(cube.shape))]
    head_cards.append(_card("EXTEND", True))
    head_cards += [_card(*c) for c in cards]
    head = ("".join(head_cards) + "END".ljust(80)).encode("ascii")
    head += b" " * (-len(head) % 2880)
    data = np.ascontiguousarray(cube, dtype=">f4").tobytes()
    return head + data + b"\0" * (-len(data) % 2880)


def spectrum_fits_bytes(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    mask: np.ndarray,
    *,
    z: float | None,
    object_class: str | None,
    obj_id: str,
) -> bytes:
    """Encode one spectrum as AstroKit's plain FITS layout.

    HDU 1 is a binary table with ``WAVELENGTH`` (Angstrom), ``FLUX`` (:data:`FLUX_UNIT`),
    ``IVAR`` and ``MASK`` (1 = bad) columns; the primary header has ``Z``, ``CLASS``,
    ``OBJID`` and ``ORIGIN='astrokit-synthetic'``.
    """
    from astropy.io import fits

    hdr = fits.Header()
    hdr["OBJID"] = obj_id
    hdr["ORIGIN"] = "astrokit-synthetic"
    if z is not None:
        hdr["Z"] = (float(z), "redshift")
    if object_class is not None:
        hdr["CLASS"] = (object_class, "spectral class")
    cols = fits.ColDefs(
        [
            fits.Column("WAVELENGTH", "D", unit="Angstrom", array=wave),
            fits.Column("FLUX", "E", unit=FLUX_UNIT, array=flux),
            fits.Column("IVAR", "E", array=ivar),
            fits.Column("MASK", "B", array=mask.astype(np.uint8)),
        ]
    )
    table = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=hdr), table]).writeto(buf)
    return buf.getvalue()


@dataclass
class SurveySummary:
    """What :func:`make_survey` wrote."""

    url: str
    galaxies: int
    spectra: int
    seed: int
    catalog_url: str
    spectra_catalog_url: str
    bytes_written: int
    seconds: float
    files: dict[str, int] = field(default_factory=dict)


def _write_parquet(store: Any, url: str, columns: dict[str, np.ndarray]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    data = buf.getvalue()
    store.write_bytes(url, data)
    return len(data)


def make_survey(
    out_url: str,
    *,
    galaxies: int,
    spectra: int,
    seed: int = 0,
    store: Any = None,
    chunk: int = 2000,
    per_band_every: int = 0,
) -> SurveySummary:
    """Write a synthetic survey under ``out_url``.

    Layout: ``cutouts/<id>.fits`` (5x32x32 ugriz cube), ``spectra/<id>.fits`` (plain
    AstroKit layout), ``catalog.parquet`` (id, file, z, mag_u..mag_z, type, absmag_r,
    size_arcsec, hard) and ``spectra_catalog.parquet`` (id, file, z, object_class, snr, hard).
    File paths in the catalogues are relative to ``out_url``. Catalogues are written last, so
    their presence marks a complete survey.

    Parameters
    ----------
    out_url : str
        Destination directory URL (must not be in the read-only shared area of ``store``).
    galaxies, spectra : int
        How many of each.
    seed : int
        Random seed: the same arguments always write the same survey.
    store : Store, optional
        Store to write through; default: resolved from ``out_url``.
    chunk : int
        Galaxies generated per batch (bounds memory for large surveys).
    per_band_every : int
        When > 0, every k-th cutout is written with one HDU per band instead of a cube
        (exercises both layouts of the reader).
    """
    from astrokit.store import resolve

    store, out_url = resolve(out_url, store)
    base = out_url.rstrip("/")
    t0 = time.perf_counter()
    total = 0
    cat: dict[str, list] = {
        k: [] for k in ("id", "file", "z", "type", "absmag_r", "size_arcsec", "hard")
    }
    mag_cols: list[np.ndarray] = []
    # galaxies in chunks, each with its own derived seed, so memory stays bounded
    for k, start in enumerate(range(0, galaxies, chunk)):
        count = min(chunk, galaxies - start)
        sub_seed = int(np.random.SeedSequence([seed, 0, k]).generate_state(1)[0])
        g = synth_galaxies(count, sub_seed, id_prefix=f"gal{seed}")
        ids = np.array([f"gal{seed}-{start + i:07d}" for i in range(count)])
        for i in range(count):
            rel = f"cutouts/{ids[i]}.fits"
            per_band = per_band_every > 0 and (start + i) % per_band_every == 0
            data = cutout_fits_bytes(
                g["images"][i], g["mags"][i], g["z"][i], ids[i], per_band=per_band
            )
            store.write_bytes(f"{base}/{rel}", data)
            total += len(data)
            cat["file"].append(rel)
        cat["id"].extend(ids.tolist())
        for key in ("z", "type", "absmag_r", "size_arcsec", "hard"):
            cat[key].append(g[key])
        mag_cols.append(g["mags"])
        log.info("survey: %d/%d cutouts written", start + count, galaxies)

    s = synth_spectra(
        spectra,
        int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]),
        id_prefix=f"spec{seed}",
    )
    spec_files = []
    for i in range(spectra):
        rel = f"spectra/{s['ids'][i]}.fits"
        data = spectrum_fits_bytes(
            s["wave"],
            s["flux"][i],
            s["ivar"][i],
            s["mask"][i],
            z=float(s["z"][i]),
            object_class=str(s["object_class"][i]),
            obj_id=str(s["ids"][i]),
        )
        store.write_bytes(f"{base}/{rel}", data)
        total += len(data)
        spec_files.append(rel)

    mags = np.concatenate(mag_cols) if mag_cols else np.zeros((0, 5), np.float32)
    columns: dict[str, Any] = {"id": cat["id"], "file": cat["file"]}
    for key in ("z", "type", "absmag_r", "size_arcsec", "hard"):
        columns[key] = np.concatenate(cat[key]) if cat[key] else np.zeros(0, np.float32)
    for b, band in enumerate(BANDS):
        columns[f"mag_{band}"] = mags[:, b]
    catalog_url = f"{base}/catalog.parquet"
    spectra_catalog_url = f"{base}/spectra_catalog.parquet"
    total += _write_parquet(
        store,
        spectra_catalog_url,
        {
            "id": s["ids"].tolist(),
            "file": spec_files,
            "z": s["z"],
            "object_class": s["object_class"].tolist(),
            "snr": s["snr"],
            "hard": s["hard"],
        },
    )
    total += _write_parquet(store, catalog_url, columns)
    seconds = time.perf_counter() - t0
    log.info(
        "survey at %s: %d galaxies, %d spectra, %.1f MB in %.1f s",
        base,
        galaxies,
        spectra,
        total / 1e6,
        seconds,
    )
    return SurveySummary(
        url=base,
        galaxies=galaxies,
        spectra=spectra,
        seed=seed,
        catalog_url=catalog_url,
        spectra_catalog_url=spectra_catalog_url,
        bytes_written=total,
        seconds=seconds,
        files={"cutouts": galaxies, "spectra": spectra},
    )
