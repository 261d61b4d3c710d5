"""nmt-serve: translation over HTTP (OpenNMT-py's routes), concurrent requests batched together.

``batcher.py`` gathers the sentences of requests that arrive together (and ask for the same
search) into one translation call; ``app.py`` holds the routes, the request checks and the
security headers; ``body.py`` the limits, body reading and JSON errors every route shares;
``page.py`` serves the page (``static/``) at ``/``; ``lm.py`` the char-rnn routes of a character
model. Nothing here imports the training package.
"""
