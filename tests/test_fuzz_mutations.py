"""The byte mutator the fuzz tests share, and tests that it mutates honestly.

Hypothesis drives each fuzz target with a seed (derandomized, so CI sees the
same inputs every run); inside the property a seeded ``random.Random`` turns
one real input into many mutants and the target's pure function is called on
each. That gives well over 10,000 inputs per target within seconds, where
10,000 hypothesis examples would take minutes. Mutations are the classic
ones of byte-level fuzzers (flip, insert a token the format cares about,
delete, duplicate, splice, truncate), applied one to four at a time.
"""
from __future__ import annotations

import random
from typing import Callable, Iterator, List, Sequence

#: bytes that break most text formats: quotes, brackets, separators, control
#: and non-UTF-8 bytes, a BOM, a long run, numbers at the edge of their types.
GENERIC_TOKENS: Sequence[bytes] = (
    b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\r", b"\n", b"\t", b" ", b'"', b"'", b"\\",
    b"[", b"]", b"<", b">", b"&", b"=", b",", b"#", b";", b"$", b"{", b"}", b"%s", b"\xe2\x80\x9c",
    b"-1", b"0", b"4294967296", b"99999999999999999999999", b"1e309", b"nan", b"-0", b"0x10",
    b"A" * 300, b"\n" * 5,
)


def _flip(data: bytearray, rng: random.Random, tokens: Sequence[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _insert(data: bytearray, rng: random.Random, tokens: Sequence[bytes]) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.choice(tokens)


def _replace(data: bytearray, rng: random.Random, tokens: Sequence[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        data[at:at + rng.randint(1, 8)] = rng.choice(tokens)


def _delete(data: bytearray, rng: random.Random, tokens: Sequence[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        del data[at:at + rng.choice((1, 1, 2, 8, 64))]


def _duplicate(data: bytearray, rng: random.Random, tokens: Sequence[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        chunk = bytes(data[at:at + rng.randint(1, 80)])
        to = rng.randrange(len(data) + 1)
        data[to:to] = chunk


def _splice_line(data: bytearray, rng: random.Random, tokens: Sequence[bytes]) -> None:
    lines = bytes(data).split(b"\n")
    if len(lines) > 1:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
        data[:] = b"\n".join(lines)


def _truncate(data: bytearray, rng: random.Random, tokens: Sequence[bytes]) -> None:
    if data:
        del data[rng.randrange(len(data)):]


MUTATIONS: Sequence[Callable[[bytearray, random.Random, Sequence[bytes]], None]] = (
    _flip, _insert, _insert, _replace, _replace, _delete, _duplicate, _splice_line, _truncate,
)


def mutate(data: bytes, rng: random.Random, tokens: Sequence[bytes] = GENERIC_TOKENS) -> bytes:
    """One mutant of ``data``: one to four mutations drawn from ``rng``."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        rng.choice(MUTATIONS)(out, rng, tokens)
    return bytes(out)


def mutants(seeds: Sequence[bytes], seed: int, count: int,
            tokens: Sequence[bytes] = GENERIC_TOKENS) -> Iterator[bytes]:
    """``count`` mutants of inputs drawn from ``seeds``, reproducible from ``seed``."""
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(rng.choice(seeds), rng, tokens)


# --- the mutator itself ------------------------------------------------------

SAMPLE = b"[recovery]\npolicy = all\nmax_parallel = 8\n"


def test_same_seed_gives_same_mutants() -> None:
    assert list(mutants([SAMPLE], 7, 50)) == list(mutants([SAMPLE], 7, 50))


def test_mutants_differ_from_the_seed_and_from_each_other() -> None:
    out: List[bytes] = list(mutants([SAMPLE], 1, 500))
    assert sum(m != SAMPLE for m in out) > 450
    assert len(set(out)) > 400


def test_every_mutation_kind_can_change_the_input() -> None:
    for mutation in set(MUTATIONS):
        changed = False
        for seed in range(50):
            data = bytearray(SAMPLE)
            mutation(data, random.Random(seed), GENERIC_TOKENS)
            changed = changed or bytes(data) != SAMPLE
        assert changed, mutation.__name__
