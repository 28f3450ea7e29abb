"""An aiosmtpd for the mailer's tests that requires AUTH (PLAIN or LOGIN, allowed over plain
text: loopback only) with one login and password, and keeps messages as capture.Capture does.

    PYTHONPATH=tests/smtp /usr/bin/python3 tests/smtp/auth.py PORT DIR LOGIN PASSWORD

A wrong login or password gets aiosmtpd's 535; MAIL before AUTH gets its 530.
"""

import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from capture import Capture


def main():
    port, directory, login, password = sys.argv[1:5]

    def authenticator(server, session, envelope, mechanism, auth_data):
        accepted = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == login.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd answers (235, or 535) itself.
        return AuthResult(success=accepted, handled=False)

    controller = Controller(
        Capture(directory),
        hostname="127.0.0.1",
        port=int(port),
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    threading.Event().wait()


main()
