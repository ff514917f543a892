#!/usr/bin/env python3
"""Exits 0 when pyspark's Spark Connect client can run here: its extras import and pandas is
in the range pyspark 4.3 supports; otherwise prints what is missing and exits 1.

(pyspark's own `check_dependencies()` is meant for its doctests: when a package is missing it
prints "Skipping doctests" and exits with status 0, so it cannot be used as a check.)
"""
import importlib
import sys

missing = []
for mod in ("pyspark", "grpc", "grpc_status", "google.rpc.status_pb2", "pandas", "numpy",
            "pyarrow", "zstandard"):
    try:
        importlib.import_module(mod)
    except ImportError:
        missing.append(mod)
if "pandas" not in missing:
    import pandas
    major_minor = tuple(int(x) for x in pandas.__version__.split(".")[:2])
    if not (2, 2) <= major_minor < (3, 0):
        missing.append(f"pandas>=2.2,<3 (found {pandas.__version__})")
if missing:
    print("missing: " + ", ".join(missing))
    sys.exit(1)
