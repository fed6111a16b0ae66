"""The public API is exactly what ``__all__`` declares."""

import edgebench as eb


def test_all_matches_public_names():
    public = {n for n in vars(eb) if not n.startswith("_") and not isinstance(getattr(eb, n), type(eb))}
    public -= {"annotations", "os"}
    assert sorted(public | {"__version__"}) == sorted(eb.__all__)


def test_every_name_in_all_is_edgebench_own_class_or_function():
    import importlib

    for name in eb.__all__:
        obj = getattr(eb, name)
        if name in {"__version__", "DEFAULT_OPSET"}:
            continue
        assert callable(obj), f"{name} is {obj!r}"
        home = importlib.import_module(obj.__module__)
        assert obj.__module__.split(".")[0] == "edgebench" and getattr(home, obj.__name__) is obj, name
        assert obj.__doc__, f"{name} has no docstring"


def test_every_error_is_an_edgebench_error():
    errors = [getattr(eb, n) for n in eb.__all__ if n.endswith("Error")]
    assert len(errors) >= 10
    assert all(issubclass(e, eb.EdgebenchError) for e in errors)
