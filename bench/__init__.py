"""Benchmark harness for Model Runtime: ``python -m bench`` (or ``make bench``).

Everything runs on 127.0.0.1: a canned OpenAI-shaped upstream (Debian's nginx), the server
under test as a subprocess, and Debian's h2load sending prepared gRPC frames. Every figure
is reported beside the same request sent directly to the upstream in the same run.
"""
