"""nmt-serve: translation over HTTP (OpenNMT-py's routes), concurrent requests batched together.

``batcher.py`` gathers the sentences of requests that arrive together into one translation call;
``app.py`` holds the routes, the request checks and the JSON errors. Nothing here imports the
training package.
"""
