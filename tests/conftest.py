"""Test-session set-up shared by every test file."""

import signal

# `make test` runs pytest beside the cold build, as a background job of a non-interactive
# shell, which starts it with SIGINT ignored. Python then leaves SIGINT ignored instead of
# installing its KeyboardInterrupt handler, which the command-line tests check is restored
# after an interrupted training run. Give the session Python's own handler back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
