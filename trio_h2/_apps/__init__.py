"""The application adapters (ASGI http, websocket and lifespan, WSGI, the demo).
They do not know which protocol carries an exchange."""
