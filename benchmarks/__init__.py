"""deepdenoise benchmark suites: each measures against a baseline in the same run.

Run from a checkout: ``python -m benchmarks [--quick] [--suite NAME ...] [--out DIR]``.
Suites: ``transport`` (raw pyzmq, the floor), ``end_to_end`` (the service, overhead
over pure inference), ``inference`` (ONNX Runtime vs torch eager, tiling, roofline),
``storage`` (our Zarr writer vs tensorstore and acquire-zarr), ``closed_loop``
(stamp -> denoised pixels in hand at 30/100/500 fps). Results: JSON, Markdown and PNG
figures in ``benchmarks/results/<machine tag>/`` plus an index ``summary.md``.
"""
