"""Pseudonymous keys: HMAC-SHA256 of the identifier under the salt, the same however often it is asked."""

import hashlib
import hmac
import threading

from cds_service.security.pseudonym import pseudonym, pseudonymizer


def _reference(value: str, salt: str) -> str:
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


def test_the_key_is_hmac_sha256_truncated_to_16_hex_characters():
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    assert pseudonym("what do ya want for nothing?", "Jefe") == "5bdcc146bf60754e"


def test_one_keyed_hash_serves_every_value_without_carrying_one_into_the_next():
    values = ["pat-1", "pat-2", "pat-1", "", "é" * 40, "x" * 5000]
    assert [pseudonym(v, "salt-a") for v in values] == [_reference(v, "salt-a") for v in values]
    assert pseudonym("pat-1", "salt-b") == _reference("pat-1", "salt-b") != pseudonym("pat-1", "salt-a")


def test_threads_get_the_same_keys():
    expected = {f"pat-{i}": _reference(f"pat-{i}", "shared") for i in range(200)}
    found: dict[str, str] = {}
    key = pseudonymizer("shared")

    def run(ids: list[str]) -> None:
        for value in ids:
            found[value] = key(value)

    ids = list(expected)
    threads = [threading.Thread(target=run, args=(ids[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == expected
