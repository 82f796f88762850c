"""The reference service: the chat app of the workbook, hardened, for engineers to deploy or copy.

Nothing in this package imports the rest of wslab (the lab harness, the demos, the checks); a test keeps it
so. Its modules, in the order the chapters build them:

- :mod:`.protocol`: the wire format as pydantic models; bad input becomes a :class:`~.protocol.ProtocolError`.
- :mod:`.manager`: a connection with a bounded queue and a writer of its own; a broadcast that never waits on
  one client, and closes one that cannot keep up (1013).
- :mod:`.wsprotocol`: uvicorn's WebSocket protocol with a close that never waits on a client that stopped
  reading.
- :mod:`.rooms`, :mod:`.secure_rooms`, :mod:`.auth`: rooms with presence and private messages; identity from a
  token (PyJWT) sent in the first frame, never from the URL or a field; Origin checks.
- :mod:`.presence`: a client's copy of the room's user list, kept from the changes the server sends.
- :mod:`.ratelimit`, :mod:`.app`, :mod:`.pages` and ``static/``: the complete app (``create_app()``) and its
  browser page.
- :mod:`.streaming`, :mod:`.feeds`: price and notification streams whose tasks end with their connection;
  notifications go to the user a token names (first frame again), and a client that comes back gets what it
  missed.
- :mod:`.broker`: rooms shared by several worker processes through Redis pub/sub.
- :mod:`.classroom`, :mod:`.class_grid` and ``static/class.html``: the live classroom (``wslab serve
  --class``), every learner's check verdicts on the instructor's page, built from the parts above.

Run it in production with uvicorn, behind a TLS-terminating proxy::

    export WSLAB_SECRET=...              # at least 32 bytes, the same for every worker: it signs the tokens
    export WSLAB_BROKER=redis://10.0.0.5:6379/0   # shared rooms across workers; leave unset for one process
    export WSLAB_ORIGINS=https://chat.example.org # the pages allowed to connect (default: this server's own)
    uvicorn wslab.reference.app:app --host 0.0.0.0 --port 8000 --workers 4 \\
        --ws wslab.reference.wsprotocol:WebSocketProtocol --ws-max-size 65536 \\
        --proxy-headers --forwarded-allow-ips 10.0.0.2

- ``--ws wslab.reference.wsprotocol:WebSocketProtocol``: a client kicked for being too slow is really gone,
  and a client that reads slowly still gets everything and then its close frame.
- ``--ws-max-size 65536`` (:data:`~.manager.MAX_FRAME`): a frame announced bigger than that is refused with
  1009 before its body is buffered; uvicorn's default would buffer 16 MiB first, before any login.
- ``--workers N`` with ``WSLAB_BROKER`` and one ``WSLAB_SECRET``: each worker verifies every worker's tokens;
  a small clock-skew leeway (:data:`~.auth.LEEWAY`) lets their clocks differ by a few seconds.
- ``WSLAB_PASSCODE``: a word every login must give (a workshop's room); the login itself is a workshop login
  that believes any name: put your own identity provider in front of ``POST /token`` for real users.
- The service logs who was closed and why (``wslab.reference.*`` loggers, INFO and up), never a token or a
  message body.
"""

__all__: list[str] = []
