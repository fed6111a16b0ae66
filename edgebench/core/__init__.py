"""Pure domain of edgebench: model cards, parity math, names, errors. No I/O beyond what callers pass in."""
