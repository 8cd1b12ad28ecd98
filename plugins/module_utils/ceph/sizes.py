# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Sizes as people write them (10G, 512M, 1.5T, 4096) to bytes and back, for the ceph modules.

K, M, G, T and P are powers of 1024, as in Ceph's own tools (`rbd create --size 10G` is
10 GiB), with or without the i and the B (10G, 10Gi, 10GiB). KB, MB, GB, ... are refused:
they read as powers of 1000 to many people, and a quota or an image 7% off is a real bug.
"""

from __future__ import annotations

import re
from decimal import Decimal

UNIT_SHIFTS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50}

# a number, then a unit (K, Ki, KiB, ...; any case) or a bare B for bytes
_SIZE = re.compile(
    r"^(?P<number>\d+(?:\.\d+)?)\s*(?:(?P<unit>[KMGTP])(?P<i>i?)(?P<b>b?)|(?P<bytes>b))?$", re.IGNORECASE
)

SIZE_FIX = "give bytes, or a number with K, M, G, T or P (powers of 1024), like 10G, 512M or 1.5T"


class SizeError(ValueError):
    """A size that cannot be read; the message is `<problem>; fix: <fix>`, the caller prefixes the field."""


def parse_size(value):
    """Bytes (int) from an int or a size string; SizeError says what is wrong and how to write it."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SizeError("is not a size; fix: %s" % SIZE_FIX)
    if isinstance(value, int):
        if value < 0:
            raise SizeError("is negative; fix: %s" % SIZE_FIX)
        return value
    match = _SIZE.match(value.strip())
    if not match:
        raise SizeError("is not a size; fix: %s" % SIZE_FIX)
    unit = (match["unit"] or "").upper()
    if unit and match["b"] and not match["i"]:
        # 10GB is 10 * 1000**3 to a disk vendor and 10 * 1024**3 to Ceph; 10Gb is gigabits
        number = match["number"]
        raise SizeError(
            "is ambiguous (%s%s can mean powers of 1000, or bits); fix: write %s%s or %s%siB for powers of 1024"
            % (unit, match["b"], number, unit, number, unit)
        )
    exact = Decimal(match["number"]) * (1 << UNIT_SHIFTS[unit])
    if exact != exact.to_integral_value():
        raise SizeError("is not a whole number of bytes (%s); fix: give it in a smaller unit or in bytes" % exact)
    return int(exact)


def format_size(size):
    """The largest unit that divides the size exactly: 10737418240 -> '10 GiB', 1000 -> '1000 bytes'."""
    for unit, shift in sorted(UNIT_SHIFTS.items(), key=lambda item: -item[1]):
        if shift and size and size % (1 << shift) == 0:
            return "%d %siB" % (size >> shift, unit)
    return "%d bytes" % size
