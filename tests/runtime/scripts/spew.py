"""Write `total` bytes to stdout and `total` to stderr, interleaved in 64 KiB blocks of lines."""

import os
import sys

total = int(sys.argv[1])
line = b"x" * 99 + b"\n"
block = line * (65536 // len(line))
for fd in (1, 2) * (total // len(block)):
    os.write(fd, block)
rest = total % len(block)
for fd in (1, 2):
    os.write(fd, block[:rest])
