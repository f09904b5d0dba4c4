"""Independent random streams from one root seed.

``seed + i`` for episode ``i`` makes runs with neighbouring seeds share almost every episode (seeds 0 and 1 share
4 of 5). :class:`numpy.random.SeedSequence` spawns children whose streams are independent of each other and of
every other root's, so runs with different seeds share nothing, while one run hands the same child seeds to
every planner or arm it compares (common random numbers).
"""

from __future__ import annotations

import numpy as np

STREAMS = {"episodes": 0, "data": 1, "evaluation": 2, "replicates": 3, "training": 4}
"""Named streams a run may draw (any other non-negative integer works too); each is independent of the others."""


def spawn_seeds(seed: int, n: int, stream: int | str = 0) -> list[int]:
    """``n`` integer seeds (``0 <= s < 2**31``) for stream ``stream`` of root ``seed``.

    Child ``i`` is ``SeedSequence(seed).spawn(stream + 1)[stream].spawn(n)[i]`` reduced to one 31-bit integer
    (what ``env.reset(seed=)``, Mesa and torch accept). The same arguments give the same seeds; asking for more
    seeds keeps the first ones.

    Args:
        seed: The run's root seed (>= 0).
        n: How many seeds.
        stream: Which independent stream: an index or a name from :data:`STREAMS`.
    """
    index = STREAMS[stream] if isinstance(stream, str) else int(stream)
    if seed < 0 or n < 0 or index < 0:
        raise ValueError(f"spawn_seeds: seed, n and stream must be >= 0, got {seed}, {n}, {index}.")
    parent = np.random.SeedSequence(seed, spawn_key=(index,))
    return [int(child.generate_state(1, np.uint32)[0] >> 1) for child in parent.spawn(n)]


__all__ = ["STREAMS", "spawn_seeds"]
