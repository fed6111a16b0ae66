"""The public API is exactly what ``__all__`` declares."""

import edgebench as eb


def test_all_matches_public_names():
    public = {n for n in vars(eb) if not n.startswith("_") and not isinstance(getattr(eb, n), type(eb))}
    public -= {"annotations", "os"}
    assert sorted(public | {"__version__"}) == sorted(eb.__all__)


def test_every_name_in_all_resolves():
    for name in eb.__all__:
        assert getattr(eb, name) is not None, name


def test_every_error_is_an_edgebench_error():
    errors = [getattr(eb, n) for n in eb.__all__ if n.endswith("Error")]
    assert len(errors) >= 10
    assert all(issubclass(e, eb.EdgebenchError) for e in errors)
