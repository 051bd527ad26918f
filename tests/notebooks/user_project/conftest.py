"""A researcher's ``conftest.py`` (the recipe of docs/notebook-ci.md): nothing but the plugin.

    pytest --nbval notebooks/ --rtstream-server
"""

pytest_plugins = ["jupyter_rtstream.testing"]
