"""scipy's second-order-section filter without importing scipy.signal (75 MB of resident memory).

``import scipy.signal`` pulls in scipy.stats, scipy.optimize, scipy.interpolate...:
measured with scipy 1.17, the process grows from 26 MB (numpy) to 101 MB, which is most of
what a long export with music used. The K-weighting filter needs only scipy's compiled
``_sosfilt`` loop, so this loads that extension module by itself and calls it as
``scipy.signal.sosfilt`` does: the same arithmetic, so the same bits. Where scipy is laid
out differently (another version), it falls back to ``scipy.signal.sosfilt``.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable

import numpy as np

_NAME = "scipy.signal._sosfilt"
_LOADING = threading.Lock()


def _kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """scipy's ``_sosfilt(sos, x, zi)`` (in place on C-contiguous float64 x and zi), or None."""
    with _LOADING:  # an extension module is loaded once per process
        return _load_kernel()


@functools.cache
def _load_kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    loaded = sys.modules.get(_NAME)
    if loaded is None and "scipy.signal" not in sys.modules:
        try:
            import importlib.machinery
            import importlib.util
            from pathlib import Path

            import scipy

            folder = Path(scipy.__file__).parent / "signal"
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = folder / f"_sosfilt{suffix}"
                if path.is_file():
                    spec = importlib.util.spec_from_file_location(_NAME, path)
                    if spec is None or spec.loader is None:
                        return None
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                    # Registered under its own name: a later `import scipy.signal` reuses it.
                    loaded = sys.modules[_NAME] = module
                    break
        except Exception:  # noqa: BLE001 - any surprise: use scipy.signal itself
            return None
    kernel = getattr(loaded, "_sosfilt", None)
    return kernel if callable(kernel) else None


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None):
    """``scipy.signal.sosfilt(sos, x, zi=zi)`` for one float64 signal ``x`` (1-D) and ``zi`` (sections, 2).

    Returns ``y`` without ``zi``, ``(y, zf)`` with it, as scipy does.
    """
    kernel = _kernel()
    if kernel is None:
        from scipy.signal import sosfilt as scipy_sosfilt

        return scipy_sosfilt(sos, x) if zi is None else scipy_sosfilt(sos, x, zi=zi)
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    sections = sos.shape[0]
    y = np.array(np.asarray(x, dtype=np.float64).reshape(1, -1), dtype=np.float64, order="C")
    state = np.zeros((1, sections, 2)) if zi is None else np.array(zi, dtype=np.float64, order="C").reshape(1, sections, 2)
    kernel(sos, y, state)
    return y[0] if zi is None else (y[0], state[0])
