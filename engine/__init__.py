"""Changeflow's domain and workflow runtime.

Nothing in this package imports Flask: the web app, the CLI and background workers all call the
functions here with an SQLAlchemy session and commit (or roll back) around each command.
"""
