"""Mesa, imported without its side effect on :mod:`multiprocessing`.

``import mesa`` imports ``mesa.batchrunner``, which calls ``multiprocessing.set_start_method("spawn",
force=True)`` for the whole process (Mesa 3.3). A user who builds a twin env in a program that forks workers
(a gymnasium vector env, a data loader) would silently get spawn, with its re-import of ``__main__`` and its
pickling requirements. The twins never use the batch runner, so this module imports Mesa once and puts the
start method back to what it was (unset stays unset, so the platform default applies).
"""

from __future__ import annotations

import multiprocessing
import sys

_method = multiprocessing.get_start_method(allow_none=True)
_first = "mesa" not in sys.modules  # imported earlier by the user: whatever that did is theirs
try:
    import mesa
except ImportError as _exc:  # an optional extra: say which one installs it
    from controlkit.core.extras import missing_extra

    raise missing_extra("mesa", "the digital twins (Mesa)") from _exc
if _first:
    multiprocessing.set_start_method(_method, force=True)

from mesa.datacollection import DataCollector  # noqa: E402
from mesa.discrete_space import PropertyLayer  # noqa: E402

__all__ = ["DataCollector", "PropertyLayer", "mesa"]
