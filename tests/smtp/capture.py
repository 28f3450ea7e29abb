"""An aiosmtpd handler for the mailer's tests: it keeps every message it accepts, byte for
byte, and answers as the test tells it.

    PYTHONPATH=tests/smtp /usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c capture.Capture DIR

- Each accepted message becomes DIR/mail/<n>.eml (the exact bytes, CRLF and all) and
  DIR/mail/<n>.json ({"mail_from", "rcpt_tos", "subject", "parts": [{"type", "content"}]},
  the message read by Python's own MIME parser), the .json written last, by rename.
- DIR/replies, if there, holds one reply per line for the next messages (for example
  `451 4.3.0 try again later`); the first line is used, and removed, for each message; an
  empty line accepts it.
- A recipient whose address starts with `reject` is refused with 550.
"""

import email
import email.policy
import json
import os


class Capture:
    def __init__(self, directory):
        self.directory = directory
        self.mail = os.path.join(directory, "mail")
        os.makedirs(self.mail, exist_ok=True)
        self.count = len([f for f in os.listdir(self.mail) if f.endswith(".json")])

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def next_reply(self):
        replies = os.path.join(self.directory, "replies")
        if not os.path.exists(replies):
            return ""
        with open(replies) as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            return ""
        first, rest = lines[0], lines[1:]
        with open(replies + ".tmp", "w") as f:
            f.write("".join(line + "\n" for line in rest))
        os.replace(replies + ".tmp", replies)
        return first.strip()

    async def handle_DATA(self, server, session, envelope):
        reply = self.next_reply()
        if reply:
            return reply
        self.count += 1
        base = os.path.join(self.mail, "%06d" % self.count)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = [
            {"type": part.get_content_type(), "content": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"] or ""),
            "parts": parts,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.replace(base + ".json.tmp", base + ".json")
        return "250 OK queued as %06d" % self.count


class Timing:
    """For the mailer's benchmark: keeps nothing but when each message came and its
    X-Call-ID, one `<unix seconds> <call id>` line per message in DIR/arrivals."""

    def __init__(self, directory):
        self.arrivals = open(os.path.join(directory, "arrivals"), "a", buffering=1)

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_DATA(self, server, session, envelope):
        import time

        call_id = "-"
        for line in envelope.content.split(b"\r\n"):
            if not line:
                break
            if line.lower().startswith(b"x-call-id:"):
                call_id = line.split(b":", 1)[1].strip().decode()
        self.arrivals.write("%.6f %s\n" % (time.time(), call_id))
        return "250 OK"
