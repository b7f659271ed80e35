"""The protocol fixtures are byte-for-byte the public files their README names: sha256 against SHA256SUMS."""

import hashlib

from helpers import PROTOCOL_FIXTURES


def _recorded() -> dict[str, str]:
    """`./path` -> sha256 of the original file, as tests/fixtures/protocols/SHA256SUMS lists."""
    lines = (PROTOCOL_FIXTURES / "SHA256SUMS").read_text().splitlines()
    return {name.removeprefix("./"): digest for digest, name in (ln.split("  ", 1) for ln in lines if ln)}


def test_every_fixture_matches_its_recorded_sha256():
    stored = {p.relative_to(PROTOCOL_FIXTURES).as_posix(): p for p in PROTOCOL_FIXTURES.rglob("*")
              if p.is_file() and p.name not in ("README.md", "SHA256SUMS")}
    recorded = _recorded()
    assert set(stored) == set(recorded)  # no file unlisted, none missing
    for name, path in stored.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded[name], name


def test_the_readme_names_every_fixture():
    readme = (PROTOCOL_FIXTURES / "README.md").read_text()
    for name, digest in _recorded().items():
        assert digest in readme, name


def test_protocols_fixture_holds_the_original_bytes(protocols):
    for name, digest in _recorded().items():
        assert hashlib.sha256((protocols / name).read_bytes()).hexdigest() == digest, name
