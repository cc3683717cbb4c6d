"""The HTTP gateway: Starlette app, sessions, APIs."""
