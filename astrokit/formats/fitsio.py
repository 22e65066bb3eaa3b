"""Loading FITS bytes from the store: gzip, truncation checks, header-only reads.

Spectra and cutouts are small (kB to a few MB), so readers fetch a file's bytes once and
parse them in memory; :func:`read_header` instead reads only the blocks it needs (the
sniffing path and catalogue builders use it on S3 without downloading data units).
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
import zlib
from typing import IO, Any

from astropy.io import fits

from astrokit.formats.errors import CorruptFileError, FormatError

BLOCK = 2880
_GZIP_MAGIC = b"\x1f\x8b"


def describe(source: Any) -> str:
    """A printable name for a source (URL, path or file-like object)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None) or getattr(source, "path", None)
    return str(name) if name else f"<{type(source).__name__}>"


def load_bytes(source: Any, store: Any = None) -> tuple[bytes, str]:
    """Return the (decompressed) bytes of ``source`` and its printable name.

    ``source`` may be a URL or path (read through ``store``, or a store resolved from the URL),
    bytes, or a binary file-like object.
    """
    name = describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        name = "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        from astrokit.store import StoreError, resolve

        try:
            st, url = resolve(os.fspath(source), store)
            raw = st.read_bytes(url)
        except StoreError as exc:
            raise FormatError(name, f"cannot read the file ({exc})") from exc
    else:
        raw = source.read()
        if isinstance(raw, str):
            raw = raw.encode()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise CorruptFileError(name, f"truncated or corrupt gzip stream ({exc})") from exc
    return raw, name


def is_fits(data: bytes) -> bool:
    """True when the bytes start like a FITS file."""
    return data[:9] == b"SIMPLE  ="


def open_fits(data: bytes, name: str) -> fits.HDUList:
    """Parse FITS bytes into an HDUList, raising :class:`CorruptFileError` when truncated.

    The check compares every HDU's header+data span with the byte count, so a file cut short
    anywhere (inside a header or a data unit) is reported instead of being read as zeros.
    """
    if not is_fits(data):
        raise CorruptFileError(name, "not a FITS file (no SIMPLE card at the start)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns on truncation; we raise instead
            hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
            for hdu in hdul:
                info = hdu.fileinfo()
                if info is None:
                    continue
                if info["datLoc"] + info["datSpan"] > len(data):
                    # FITS pads to 2880-byte blocks; the unpadded data size is what matters
                    need = info["datLoc"] + _data_bytes(hdu.header)
                    if need > len(data):
                        raise CorruptFileError(
                            name,
                            f"truncated: HDU {hdul.index_of(hdu)} needs {need} bytes, "
                            f"file has {len(data)}",
                        )
    except FormatError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise CorruptFileError(name, f"unreadable FITS ({exc})") from exc
    return hdul


def _data_bytes(header: fits.Header) -> int:
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    size = 1
    for i in range(1, naxis + 1):
        size *= int(header.get(f"NAXIS{i}", 0))
    gcount = int(header.get("GCOUNT", 1))
    pcount = int(header.get("PCOUNT", 0))
    return abs(int(header["BITPIX"])) // 8 * gcount * (pcount + size)


def read_header(source: Any, *, store: Any = None, hdu: int = 0) -> fits.Header:
    """Read one HDU's header, reading only the 2880-byte blocks needed.

    Parameters
    ----------
    source : str or file-like
        URL/path (read via the store with ranged reads) or a binary file-like object.
    store : Store, optional
        Store to read through.
    hdu : int
        Index of the HDU (earlier HDUs' data units are skipped, not read).

    Raises
    ------
    CorruptFileError
        Not FITS, or the file ends before the header does.
    """
    name = describe(source)
    close = False
    if isinstance(source, (str, os.PathLike)):
        from astrokit.store import StoreError, resolve

        try:
            st, url = resolve(os.fspath(source), store)
            fh: IO = st.open(url, "rb", block_size=64 * 1024)
        except StoreError as exc:
            raise FormatError(name, f"cannot read the file ({exc})") from exc
        close = True
    else:
        fh = source
    opened = fh  # a GzipFile over it does not close it: closed itself below
    try:
        head = fh.read(2)
        fh.seek(0)
        if head == _GZIP_MAGIC:  # gzip streams cannot seek cheaply: decompress as we go
            fh = gzip.GzipFile(fileobj=fh)
        index = 0
        while True:
            header, text_len = _read_one_header(fh, name)
            if index == hdu:
                return header
            skip = _data_bytes(header)
            skip = (skip + BLOCK - 1) // BLOCK * BLOCK
            fh.seek(skip, io.SEEK_CUR)
            index += 1
            del text_len
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(name, f"unreadable header ({exc})") from exc
    finally:
        if close:
            opened.close()


def _read_one_header(fh: IO, name: str) -> tuple[fits.Header, int]:
    chunks = []
    while True:
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            if not chunks and not block:
                raise CorruptFileError(name, "requested HDU is past the end of the file")
            raise CorruptFileError(name, "truncated inside a FITS header")
        if not chunks and not (block.startswith(b"SIMPLE  =") or block.startswith(b"XTENSION=")):
            raise CorruptFileError(name, "not a FITS header block")
        chunks.append(block)
        # END card: a card starting with "END" followed by spaces
        for i in range(0, BLOCK, 80):
            card = block[i : i + 80]
            if card[:3] == b"END" and card[3:].strip() == b"":
                text = b"".join(chunks).decode("ascii", errors="replace")
                return fits.Header.fromstring(text), len(text)
