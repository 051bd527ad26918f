"""Notebook CI tests. ``user_project/`` is a researcher's project used as a fixture (copied
and run by ``test_user_notebook_ci.py``), not a test directory of ours."""

collect_ignore = ["user_project"]
