"""A session store with the digits model and its amd64 image, built once on the real engine."""

from __future__ import annotations

import contextlib

import pytest

import edgebench as eb


@pytest.fixture(scope="session")
def image_store(tmp_path_factory, digits, digits_rf):
    store = eb.Store(tmp_path_factory.mktemp("image-store"))
    eb.export_model(digits_rf, digits[0][:20], "digits-rf", store=store)
    return store


@pytest.fixture(scope="session")
def built(engine, image_store):
    image = eb.build_image("digits-rf:1", "linux/amd64", store=image_store, client=engine)
    yield image
    for tag in image.tags:
        with contextlib.suppress(Exception):
            engine.images.remove(tag, force=True)


def derived_image(engine, base, tag, *lines, files=None):
    """An image FROM ``base`` with extra Dockerfile lines: how the tests make broken images on purpose."""
    import io
    import tarfile

    dockerfile = f"FROM {base}\n" + "\n".join(lines) + "\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    engine.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True)
    return tag
