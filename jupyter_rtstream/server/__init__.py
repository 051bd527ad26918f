"""I/O shell: the Jupyter server extension, its handlers, tick sources and stores."""
