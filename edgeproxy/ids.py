"""Fresh identifiers for requests, events and batches.

An id must be unique, not secret: the process's PRNG (seeded from the OS) gives 128 bits
without the system call `os.urandom` makes each time, which also releases the GIL and so
invites a switch to any thread waiting for it.
"""

from __future__ import annotations

import random

_random_bits = random.getrandbits


def fresh_id() -> str:
    """32 random hex digits (through bytes: formatting the int with a width costs twice as
    much)."""
    return _random_bits(128).to_bytes(16, "big").hex()
