"""Unpickling that can build plain containers and numpy arrays, and nothing else.

A pickle can name any importable callable and call it while loading; the CIFAR batches
only need dicts, lists, bytes and numpy arrays, so everything else is refused and loading
a hostile file can never run code.
"""

from __future__ import annotations

import builtins
import codecs
import importlib
import io
import pickle

import numpy as np

from gankit.errors import UserError


def _numpy_internal(module: str, name: str):
    """A private numpy callable from its NumPy 2 location, or its NumPy 1 one."""
    for mod in (f"numpy._core.{module}", f"numpy.core.{module}"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    return None


_RECONSTRUCT = _numpy_internal("multiarray", "_reconstruct")
_SCALAR = _numpy_internal("multiarray", "scalar")
_FROMBUFFER = _numpy_internal("numeric", "_frombuffer")

# (module, name) as written in the pickle -> the object it may resolve to. Both numpy module
# spellings are listed because files written under NumPy 1 say numpy.core and NumPy 2
# says numpy._core; resolving here avoids importing the deprecated numpy.core alias.
ALLOWED: dict[tuple[str, str], object] = {}
for _mod in ("numpy.core", "numpy._core"):
    ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _RECONSTRUCT
    ALLOWED[(f"{_mod}.multiarray", "scalar")] = _SCALAR
    ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _FROMBUFFER
ALLOWED[("numpy", "ndarray")] = np.ndarray
ALLOWED[("numpy", "dtype")] = np.dtype
for _name in ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float", "bool"):
    ALLOWED[("builtins", _name)] = getattr(builtins, _name)
    ALLOWED[("__builtin__", _name)] = getattr(builtins, _name)  # Python 2 spelling
# Protocol 0-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1").
ALLOWED[("_codecs", "encode")] = codecs.encode
ALLOWED = {k: v for k, v in ALLOWED.items() if v is not None}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` resolves only the names in :data:`ALLOWED`."""

    def find_class(self, module: str, name: str):
        """Return the allowed object for ``module.name`` or raise ``pickle.UnpicklingError``."""
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a plain data type") from None


def safe_loads(data: bytes, filename: str) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; UserError naming ``filename`` if refused
    or malformed.

    ``encoding="bytes"`` because the CIFAR files were written by Python 2, whose str keys
    (b"data", b"labels") must stay bytes rather than be decoded as text.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise UserError(f"{filename}: not a plain data pickle: {e}") from None
    except Exception as e:  # malformed pickles raise all sorts (EOFError, ValueError, ...)
        raise UserError(f"{filename}: corrupt pickle ({type(e).__name__}: {e})") from None
