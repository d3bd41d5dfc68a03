"""Celery edge: the app factory and the thin tasks that call into :mod:`app`."""
