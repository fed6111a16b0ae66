"""The inference server that goes into images: the Open Inference Protocol (KServe V2) over HTTP/1.1.

Depends only on the standard library, numpy and onnxruntime, and imports nothing else from edgebench, so the
image carries this folder alone (as the package ``edgebench_serve``). Run it with ``python -m edgebench.serve``
(or ``python -m edgebench_serve`` in an image).
"""
