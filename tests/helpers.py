"""Helpers shared by tests."""

from __future__ import annotations


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
