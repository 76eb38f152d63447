"""`python -m genzoo` (and `torchrun -m genzoo train ...`) run the command line.

A rank of a torchrun job leaves through `os._exit` once the command has returned (its run saved, its process group
destroyed, its output flushed): gloo's C++ worker threads can still hold finished work when the interpreter is torn
down, and destroying it then aborts the process ("terminate called without an active exception", SIGABRT; seen
twice in full runs of the test suite, once in a two-rank FSDP2 `genzoo train` and once in a two-process FSDP test;
pytorch/pytorch PR 179291 describes the race), which torchrun reports as a failed job although the training
succeeded."""

import logging
import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    raise SystemExit(code)
