"""Machinery shared by the whole suite and the benchmarks, one copy of each.

:mod:`helpers.hub` (a real JupyterHub), :mod:`helpers.s3` (a real S3 server, SeaweedFS),
:mod:`helpers.polling` (waiting with a deadline), :mod:`helpers.browser` (headless chromium),
:mod:`helpers.cluster` (a real Dask ``LocalCluster``, a worker killed mid-run),
:mod:`helpers.manager` (a cluster manager process), :mod:`helpers.notebooks` (run a notebook)
and :mod:`helpers.benchmarks` (run a benchmark script, read its JSON).
"""
