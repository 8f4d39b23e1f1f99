"""shotfit as an HTTP service for studios: FastAPI routes over a job store, with jobs run on Ray.

A face like the CLI: routes parse requests and call :mod:`shotfit.api` (through the worker task),
never :mod:`shotfit.cli`. ``create_app(settings)`` in :mod:`shotfit.service.app` builds the app;
``shotfit serve`` (``cli/serve.py``) runs it and owns the process (threads, signals, Ray).
"""
