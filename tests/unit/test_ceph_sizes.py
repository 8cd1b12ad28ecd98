"""ceph/sizes.py: sizes as people write them, read as Ceph reads them (powers of 1024)."""

from __future__ import annotations

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.sizes import SizeError, format_size, parse_size

GIB = 1024**3


@pytest.mark.parametrize(
    "written, size",
    [
        (10737418240, 10 * GIB),
        ("10737418240", 10 * GIB),
        ("4096B", 4096),
        ("10G", 10 * GIB),
        ("10Gi", 10 * GIB),
        ("10GiB", 10 * GIB),
        ("10g", 10 * GIB),
        (" 10 G ", 10 * GIB),
        ("512M", 512 * 1024**2),
        ("64K", 65536),
        ("1.5T", 1536 * GIB),
        ("2P", 2 * 1024**5),
        (0, 0),
        ("0", 0),
    ],
)
def test_sizes_are_read_in_powers_of_1024(written, size):
    assert parse_size(written) == size


@pytest.mark.parametrize(
    "written, message",
    [
        ("10GB", "is ambiguous (GB can mean powers of 1000, or bits); fix: write 10G or 10GiB for powers of 1024"),
        ("10Gb", "is ambiguous (Gb can mean powers of 1000, or bits); fix: write 10G or 10GiB"),
        ("1.3M", "is not a whole number of bytes (1363148.8); fix: give it in a smaller unit or in bytes"),
        ("ten gigs", "is not a size; fix: give bytes, or a number with K, M, G, T or P (powers of 1024)"),
        ("10X", "is not a size; fix:"),
        ("-1G", "is not a size; fix:"),
        (-1, "is negative; fix:"),
        (True, "is not a size; fix:"),
        (1.5, "is not a size; fix:"),
    ],
)
def test_what_cannot_be_read_says_how_to_write_it(written, message):
    with pytest.raises(SizeError) as refused:
        parse_size(written)
    assert str(refused.value).startswith(message)


def test_a_size_error_is_a_value_error():
    assert issubclass(SizeError, ValueError)


@pytest.mark.parametrize(
    "size, shown",
    [(10 * GIB, "10 GiB"), (1536 * 1024, "1536 KiB"), (3 * 1024**4, "3 TiB"), (1000, "1000 bytes"), (0, "0 bytes")],
)
def test_sizes_are_shown_in_the_largest_exact_unit(size, shown):
    assert format_size(size) == shown
