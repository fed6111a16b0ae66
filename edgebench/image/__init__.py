"""Inference images: build context (context.py), builder (builder.py), container tester (tester.py)."""
