# argv.py OUT ARGS...: writes the arguments after OUT, one per line (NUL-free), then exits 0.
import sys
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("".join(a + "\n" for a in sys.argv[2:]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
