from edgebench.core import errors


def test_errors_carry_structured_fields():
    err = errors.BuildError("build failed at step 3", model="digits-rf", image=None, command=["docker", "build"])
    assert err.details == {"model": "digits-rf", "command": ["docker", "build"]}
    assert err.to_dict() == {
        "error": "build failed at step 3", "type": "BuildError", "model": "digits-rf", "command": ["docker", "build"]
    }


def test_tree_matches_the_docstring():
    doc = errors.__doc__
    for name in dir(errors):
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.EdgebenchError):
            assert name in doc, f"{name} is missing from the drawn tree"


def test_user_input_errors_are_value_errors_and_missing_models_lookup_errors():
    assert issubclass(errors.InvalidNameError, ValueError)
    assert issubclass(errors.ModelNotFoundError, LookupError)
    assert issubclass(errors.ParityError, errors.ExportError)
