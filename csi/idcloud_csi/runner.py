"""The one place that runs commands: LANG=C, a timeout, and no secret in any log line or error.

Secrets never reach a command line (a keyring file carries the cephx key), but a command's
output could still echo one; every text the runner logs or raises passes through redact().
"""

import logging
import os
import shlex
import subprocess
import threading

log = logging.getLogger("idcloud_csi")

_secrets = set()
_lock = threading.Lock()
REDACTED = "<redacted>"


def remember_secret(value):
    """Scrub `value` from every later log line and error message of this process."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text):
    if not text:
        return text
    text = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Installed on the driver's log handler: the formatted message is redacted as a whole."""

    def filter(self, record):
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class CommandFailed(Exception):
    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err
        detail = redact((err or out or "").strip())[-2000:]
        super().__init__(f"`{redact(shlex.join(cmd))}` failed (rc {rc}): {detail}")


class Runner:
    """run(cmd) -> (rc, stdout, stderr); check=True raises CommandFailed on a non-zero exit."""

    def __init__(self, timeout=120):
        self.timeout = timeout

    def run(self, cmd, check=True, env=None, timeout=None, input=None):
        full_env = dict(os.environ, LANG="C", LC_ALL="C")
        full_env.update(env or {})
        log.debug("$ %s", shlex.join(cmd))
        try:
            proc = subprocess.run(
                cmd,
                env=full_env,
                capture_output=True,
                text=True,
                timeout=timeout or self.timeout,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise CommandFailed(cmd, 127, "", f"{cmd[0]}: command not found (install it on this host)")
        except subprocess.TimeoutExpired:
            raise CommandFailed(cmd, -1, "", f"timed out after {timeout or self.timeout} s")
        if check and proc.returncode != 0:
            raise CommandFailed(cmd, proc.returncode, proc.stdout, proc.stderr)
        return proc.returncode, proc.stdout, proc.stderr
