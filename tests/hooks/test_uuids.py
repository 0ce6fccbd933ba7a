"""Card and suggestion uuids: random version 4 UUIDs, never repeated, not even by two forked workers."""

from __future__ import annotations

import os
import uuid

from cds_service.hooks.response import new_uuid


def test_uuids_are_random_version_4_and_never_repeat():
    made = [new_uuid() for _ in range(2000)]  # several pages of random bytes
    assert len(set(made)) == len(made)
    parsed = [uuid.UUID(u) for u in made]
    assert {u.version for u in parsed} == {4}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert [str(u) for u in parsed] == made  # canonical: lower case, dashes in their places
    # Every variant digit (8, 9, a, b) and every digit elsewhere is drawn.
    assert {u[19] for u in made} == set("89ab")
    assert set("".join(u[:8] + u[20:] for u in made).replace("-", "")) == set("0123456789abcdef")


def test_a_forked_worker_does_not_hand_out_its_parents_uuids():
    new_uuid()  # the parent holds a page it has only begun
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, ",".join(new_uuid() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        from_child = set(pipe.read().split(","))
    from_parent = {new_uuid() for _ in range(10)}
    assert len(from_child) == 10
    assert not from_child & from_parent
